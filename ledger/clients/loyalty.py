from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from eth_account.signers.local import LocalAccount
from eth_utils import event_abi_to_log_topic, to_checksum_address

from ledger.chain import SignedTx, TxResult
from ledger.clients.base import ZERO32, ContractClient, as_bytes32
from ledger.clients.members import Authorization

# The contract's caps (LoyaltyPoints.MAX_EARN, MAX_SUPPLY): checked here too, so that input is refused
# before anything is written.
MAX_EARN = 1_000_000_000
MAX_SUPPLY = 10**18
# LoyaltyPoints.MAX_ISSUE_PER_PERIOD, over ISSUE_PERIOD seconds, per partner
MAX_ISSUE_PER_PERIOD = 10**13
ISSUE_PERIOD = 24 * 3600

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

    def balances_of(self, members: Sequence[bytes]) -> list[int]:
        """Many members' balances, batched against a remote node."""
        found = self.chain.call_many(self.contract, "balanceOf", [(as_bytes32(m),) for m in members])
        return [int(value) for value in found]

    def issued_by(self, partner: str) -> int:
        return int(self._call(self.contract.functions.issuedBy(to_checksum_address(partner))))

    def redeemed_at(self, partner: str) -> int:
        return int(self._call(self.contract.functions.redeemedAt(to_checksum_address(partner))))

    def position_of(self, partner: str) -> int:
        """Redeemed at `partner` minus issued by it: what the coalition owes the partner (if positive)."""
        return int(self._call(self.contract.functions.positionOf(to_checksum_address(partner))))

    def issued_this_period(self, partner: str) -> tuple[int, int]:
        """Points `partner` issued in the current period, and when the period ends (unix time)."""
        issued, ends = self._call(self.contract.functions.issuedThisPeriod(to_checksum_address(partner)))
        return int(issued), int(ends)

    def total_supply(self) -> int:
        return int(self._call(self.contract.functions.totalSupply()))

    def total_forfeited(self) -> int:
        """Points forfeited by erased members (still owed by their issuers, to the coalition's pool)."""
        return int(self._call(self.contract.functions.totalForfeited()))


@dataclass(frozen=True)
class PointsEvent:
    """One `PointsEarned` or `PointsRedeemed` event, as the chain logged it."""

    kind: str  # "earn" or "redeem"
    member: bytes
    partner: str
    amount: int
    ref: bytes
    block_number: int


def points_events(client: LoyaltyClient, partner: str) -> list[PointsEvent]:
    """Every earn by and redemption at `partner`, oldest first, from the event log (one eth_getLogs per
    kind, decoded here: the fields are fixed-size words)."""
    address = to_checksum_address(partner)
    found: list[PointsEvent] = []
    for kind, event in (
        ("earn", client.contract.events.PointsEarned),
        ("redeem", client.contract.events.PointsRedeemed),
    ):
        topic = "0x" + bytes(event_abi_to_log_topic(event().abi)).hex()
        logs = client.chain.raw_logs(
            {
                "address": client.contract.address,
                "fromBlock": 0,
                "toBlock": "latest",
                "topics": [topic, None, "0x" + bytes(12).hex() + address[2:].lower()],
            }
        )
        for log in logs:
            data = log.data
            found.append(
                PointsEvent(
                    kind,
                    log.topics[1],
                    address,
                    int.from_bytes(data[0:32], "big"),
                    data[32:64],
                    log.block_number,
                )
            )
    return sorted(found, key=lambda e: e.block_number)
