from __future__ import annotations

from collections.abc import Sequence

from eth_account.signers.local import LocalAccount
from eth_utils import to_checksum_address

from ledger.chain import SignedTx, TxResult
from ledger.clients.base import ZERO32, ContractClient, as_bytes32
from ledger.clients.members import Authorization

# The contract's caps (LoyaltyPoints.MAX_EARN, MAX_SUPPLY): checked here too, so that input is refused
# before anything is written.
MAX_EARN = 1_000_000_000
MAX_SUPPLY = 10**18

# earnBatch gas per item is ~40k for a member's first points (a new balance slot, the registry's and
# the consent registry's checks) and less after (benchmarks/ledger_gas.py); a bound of 50k per item
# spares a gas estimate per batch and keeps EARN_BATCH_MAX items under a 30M block with room to spare.
EARN_BATCH_GAS_BASE = 100_000
EARN_BATCH_GAS_PER_ITEM = 50_000
EARN_BATCH_MAX = 800


class LoyaltyClient(ContractClient):
    def earn(self, sender: LocalAccount, member: bytes, amount: int, ref: bytes = ZERO32) -> TxResult:
        return self._send(sender, self.contract.functions.earn(as_bytes32(member), amount, as_bytes32(ref)))

    def redeem(self, sender: LocalAccount, member: bytes, amount: int, ref: bytes = ZERO32) -> TxResult:
        return self._send(sender, self.contract.functions.redeem(as_bytes32(member), amount, as_bytes32(ref)))

    def redeem_signed(
        self,
        relayer: LocalAccount,
        member: bytes,
        amount: int,
        ref: bytes,
        authorization: Authorization,
    ) -> TxResult:
        """Redeem at `relayer` (the partner named in the signature) what the member signed
        (`MemberRegistryClient.authorize_redeem`)."""
        fn = self.contract.functions.redeemSigned(
            as_bytes32(member), amount, as_bytes32(ref), authorization.deadline, authorization.signature
        )
        return self._send(relayer, fn)

    def earn_batch(
        self, sender: LocalAccount, members: Sequence[bytes], amounts: Sequence[int], refs: Sequence[bytes]
    ) -> TxResult:
        """One transaction for the whole batch; all or nothing."""
        return self.chain.send(self.contract, self.prepare_earn_batch(sender, members, amounts, refs))

    def prepare_earn_batch(
        self, sender: LocalAccount, members: Sequence[bytes], amounts: Sequence[int], refs: Sequence[bytes]
    ) -> SignedTx:
        """`earn_batch`, signed and not sent (for an outbox that records the hash first)."""
        fn = self.contract.functions.earnBatch(
            [as_bytes32(m) for m in members], list(amounts), [as_bytes32(r) for r in refs]
        )
        return self.chain.prepare(
            fn, sender, gas=EARN_BATCH_GAS_BASE + EARN_BATCH_GAS_PER_ITEM * len(members)
        )

    def redeem_batch(
        self, sender: LocalAccount, members: Sequence[bytes], amounts: Sequence[int], refs: Sequence[bytes]
    ) -> TxResult:
        fn = self.contract.functions.redeemBatch(
            [as_bytes32(m) for m in members], list(amounts), [as_bytes32(r) for r in refs]
        )
        return self._send(sender, fn)

    def balance_of(self, member: bytes) -> int:
        return int(self._call(self.contract.functions.balanceOf(as_bytes32(member))))

    def issued_by(self, partner: str) -> int:
        return int(self._call(self.contract.functions.issuedBy(to_checksum_address(partner))))

    def redeemed_at(self, partner: str) -> int:
        return int(self._call(self.contract.functions.redeemedAt(to_checksum_address(partner))))

    def position_of(self, partner: str) -> int:
        """Redeemed at `partner` minus issued by it: what the coalition owes the partner (if positive)."""
        return int(self._call(self.contract.functions.positionOf(to_checksum_address(partner))))

    def total_supply(self) -> int:
        return int(self._call(self.contract.functions.totalSupply()))

    def total_forfeited(self) -> int:
        """Points forfeited by erased members (still owed by their issuers, to the coalition's pool)."""
        return int(self._call(self.contract.functions.totalForfeited()))
