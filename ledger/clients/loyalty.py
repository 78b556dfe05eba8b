from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from eth_account.signers.local import LocalAccount
from eth_utils import event_abi_to_log_topic, to_checksum_address

from ledger.caps import MAX_EARN as MAX_EARN
from ledger.chain import SignedTx, TxResult
from ledger.clients.base import ZERO32, ContractClient, as_bytes32
from ledger.clients.members import Authorization

# The contract's caps (LoyaltyPoints.MAX_EARN, in ledger.caps for the import's reader, MAX_SUPPLY):
# checked here too, so that input is refused before anything is written.
MAX_SUPPLY = 10**18
# LoyaltyPoints.MAX_ISSUE_PER_PERIOD, over ISSUE_PERIOD seconds, per partner
MAX_ISSUE_PER_PERIOD = 10**13
ISSUE_PERIOD = 24 * 3600

# earnBatch gas per item, measured on anvil with the largest amount and references of no zero byte
# (tests/ledger/test_batch_gas.py): 36.7k for a member's first earn in a run of its items (a new balance slot,
# the registry's and the consent registry's cold slots; ~20k where the balance is not zero), 4.55k for each
# further item of the run (the warm balance, the event, the calldata), ~53k for the batch, and 104k for the
# partner's very first (its issued total, the supply and the period's count from zero). The bound
# (`earn_batch_gas`) counts 115k, 40k per run and 5k per further item (+9-10%), so a batch needs no gas
# estimate; `earn_batch_fits` cuts a batch where that bound would pass the node's budget, 1M under its block
# (`ContractClient.batch_gas_budget`). Every transaction is a block on anvil, whose time per block grows with
# the chain's whole state, so fewer, fuller batches are what keeps a large import linear there: a node packs a
# block by the transactions' gas limits, and a batch is alone in its block when its bound is near the limit.
# (50k and 7k under a 24M budget until 2026-12-07: a 100k import's earnBatches carried 2,404 items, used 15.5M
# of 23.1M and filled half a block each.)
EARN_BATCH_GAS_BASE = 115_000
EARN_BATCH_GAS_PER_ITEM = 40_000  # the first item of a run of one member's items
EARN_BATCH_GAS_PER_REPEAT = 5_000  # each further item of the run
# Staged items read per batch (`earn_batch_max`): a little under what fits when they come in runs (a
# synthetic member's 20 purchases: 6,750 gas an item, ~4,280 items in 29M), 6,877 gas an item; the rest
# of what is read waits (Online Retail II's invoices are in date order, not by customer: ~720 of them
# fit in 29M, members each once).
EARN_BATCH_GAS_PER_READ = 6_877


def earn_batch_max(budget: int) -> int:
    """How many staged items to read for one earnBatch within `budget` gas: 4,200 under a 30M block,
    8,562 under 60M."""
    return max(1, (budget - EARN_BATCH_GAS_BASE) // EARN_BATCH_GAS_PER_READ)


def earn_batch_gas(members: Sequence[bytes]) -> int:
    """The gas bound of an earnBatch of these members' items, in this order (see above)."""
    runs = sum(1 for i, member in enumerate(members) if i == 0 or member != members[i - 1])
    repeats = len(members) - runs
    return EARN_BATCH_GAS_BASE + EARN_BATCH_GAS_PER_ITEM * runs + EARN_BATCH_GAS_PER_REPEAT * repeats


def earn_batch_fits(members: Sequence[bytes], budget: int) -> int:
    """How many of the first `members` (in this order) one earnBatch takes within `budget` gas (at
    least one)."""
    gas = EARN_BATCH_GAS_BASE
    for i, member in enumerate(members):
        gas += EARN_BATCH_GAS_PER_ITEM if i == 0 or member != members[i - 1] else EARN_BATCH_GAS_PER_REPEAT
        if gas > budget:
            return max(i, 1)
    return len(members)


class LoyaltyClient(ContractClient):
    receipt_logs = False  # its outbox confirms rows by status and block (ContractClient)

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
        arguments = ([as_bytes32(m) for m in members], list(amounts), [as_bytes32(r) for r in refs])
        return self.chain.prepare_function(
            self.contract, "earnBatch", arguments, sender, gas=earn_batch_gas(members)
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


def points_events(
    client: LoyaltyClient, partner: str, from_block: int = 0, to_block: int | None = None
) -> list[PointsEvent]:
    """Every earn by and redemption at `partner` in blocks `from_block`..`to_block` (None: the latest),
    oldest first, from the event log (one eth_getLogs per kind, decoded here: the fields are
    fixed-size words)."""
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
                "fromBlock": from_block,
                "toBlock": "latest" if to_block is None else to_block,
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
