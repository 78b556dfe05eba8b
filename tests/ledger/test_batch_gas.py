"""Batches are signed with a gas bound, not an estimate (ledger/clients): every full batch of the
costliest shape fits its bound, each bound is within a stated margin of that worst case (a node packs
blocks by the transactions' limits, so a loose bound leaves blocks half empty), and a batch is cut
before its bound passes the budget: the node's block gas limit less 1M, under a 30M block (anvil's
default, py-evm's) and a 60M one (the devnet's, mainnet's since 2025) alike.

The costliest shapes, measured: a member's first enrolment, first consent and first earn (cold slots,
new slots), a member with a key (its second slot and its binding signature), the largest amount, and
ids, receipts and references of no zero byte (the dearest calldata). Full-size batches run on anvil
only (py-evm would take seconds for each), on a node of each block size. A bound set below what its
batch uses fails here: the simulation runs out of gas before anything is signed.
"""

import os
from collections.abc import Iterator

import pytest
from eth_account import Account

from ledger.anvil import free_port, start_anvil
from ledger.backends import RpcBackend
from ledger.clients import ConsentStatus, purpose_id
from ledger.clients.consent import RECORD_BATCH_GAS_BASE, RECORD_BATCH_GAS_PER_ITEM, record_batch_max
from ledger.clients.loyalty import MAX_EARN, earn_batch_fits, earn_batch_gas, earn_batch_max
from ledger.clients.members import (
    ENROL_BATCH_GAS_PER_KEY,
    Authorization,
    enrol_batch_gas,
    enrol_batch_max,
)
from ledger.coalition import Coalition
from ledger.errors import BackendError

LOYALTY = purpose_id("loyalty")
# A bound may be at most this much above the worst case it covers: the margin the clients state (9-11%)
# and a little more for the batch's fixed part.
MARGIN = 1.15


def dear() -> bytes:
    """32 random bytes without a zero byte: calldata at its dearest (16 gas a byte)."""
    return bytes(b % 255 + 1 for b in os.urandom(32))


@pytest.fixture(scope="module", params=[30_000_000, 60_000_000], ids=["30M", "60M"])
def node(request: pytest.FixtureRequest) -> Iterator[Coalition]:
    """A deployment on an anvil of its own whose blocks hold `request.param` gas."""
    try:
        port = free_port()
        process = start_anvil(port, gas_limit=request.param)
    except BackendError as exc:
        pytest.skip(f"anvil is not available: {exc}")
    try:
        backend = RpcBackend(f"http://127.0.0.1:{port}")
        yield Coalition.deploy(backend, founders=backend.accounts[:3], deployer=backend.accounts[0])
    finally:
        process.terminate()
        process.wait(timeout=15)


@pytest.fixture
def full(node: Coalition) -> Iterator[Coalition]:
    """`node`, rolled back after the test."""
    snapshot = node.chain.backend.snapshot()
    try:
        yield node
    finally:
        node.chain.backend.revert(snapshot)


def ready(coalition: Coalition, count: int, *, consent: bool = True) -> list[bytes]:
    """`count` fresh members enrolled by account 0, with its attested loyalty consent."""
    sender = coalition.chain.backend.accounts[0]
    members = [dear() for _ in range(count)]
    budget = coalition.chain.batch_gas_budget()
    for start in range(0, count, enrol_batch_max(budget)):
        part = members[start : start + enrol_batch_max(budget)]
        coalition.members.enrol(sender, part, [None] * len(part))
    for start in range(0, count if consent else 0, record_batch_max(budget)):
        part = members[start : start + record_batch_max(budget)]
        coalition.consent.record_batch(sender, part, LOYALTY, ConsentStatus.GIVEN, [dear() for _ in part])
    return members


class TestAFullBatchOfTheCostliestShapeFitsItsBound:
    def test_an_enrolment_of_members_without_a_key(self, full):
        coalition = full
        budget = coalition.chain.batch_gas_budget()
        size = enrol_batch_max(budget)
        members = [dear() for _ in range(size)]
        bound = enrol_batch_gas(size, 0)
        assert bound <= budget
        tx = coalition.members.enrol(coalition.chain.backend.accounts[0], members, [None] * len(members))
        assert tx.gas_used <= bound <= MARGIN * tx.gas_used, (tx.gas_used, bound)
        assert len(tx.events_named("MemberEnrolled")) == size

    def test_an_enrolment_of_members_with_keys(self, full):
        """Each binds its own key with its signature: ~82k a member (the bound counted 52k until
        2026-12-07, and three of them ran out of gas in the simulation)."""
        coalition = full
        keys = [Account.create() for _ in range(25)]
        members = [dear() for _ in keys]
        bindings = [
            coalition.members.authorize_binding(k, m, nonce=0) for k, m in zip(keys, members, strict=True)
        ]
        tx = coalition.members.enrol(
            coalition.chain.backend.accounts[0], members, [k.address for k in keys], bindings
        )
        bound = enrol_batch_gas(len(members), len(members))
        assert tx.gas_used <= bound <= MARGIN * tx.gas_used, (tx.gas_used, bound)
        assert [coalition.members.member(m).signer for m in members] == [k.address for k in keys]

    def test_a_consent_batch_of_first_consents(self, full):
        coalition = full
        budget = coalition.chain.batch_gas_budget()
        size = record_batch_max(budget)
        members = ready(coalition, size, consent=False)
        bound = RECORD_BATCH_GAS_BASE + RECORD_BATCH_GAS_PER_ITEM * size
        assert bound <= budget
        tx = coalition.consent.record_batch(
            coalition.chain.backend.accounts[0],
            members,
            LOYALTY,
            ConsentStatus.GIVEN,
            [dear() for _ in members],
            2**64 - 1,  # the largest expiry: the dearest calldata
        )
        assert tx.gas_used <= bound <= MARGIN * tx.gas_used, (tx.gas_used, bound)
        assert len(tx.events_named("ConsentRecorded")) == size

    def test_an_earn_batch_of_first_earns_members_each_once(self, full):
        """Members each once (Online Retail II's invoices are in date order): the batch is cut where
        one more would pass the budget, and all of it fits."""
        coalition = full
        budget = coalition.chain.batch_gas_budget()
        many = [dear() for _ in range(2000)]
        fits = earn_batch_fits(many, budget)
        assert earn_batch_gas(many[:fits]) <= budget < earn_batch_gas(many[: fits + 1])
        members = ready(coalition, fits)
        tx = coalition.loyalty.earn_batch(
            coalition.chain.backend.accounts[0], members, [MAX_EARN] * fits, [dear() for _ in members]
        )
        bound = earn_batch_gas(members)
        assert tx.gas_used <= bound <= MARGIN * tx.gas_used, (tx.gas_used, bound)
        assert coalition.loyalty.balances_of(members[:3]) == [MAX_EARN] * 3

    def test_a_partners_first_earn_ever_in_a_batch_of_one(self, full):
        """The batch's own part at its dearest: the partner's issued total, the supply and the period's
        count written from zero (~104k; a base of 100k ran a batch of two out of gas in its simulation)."""
        coalition = full
        sender = coalition.chain.backend.accounts[0]
        assert coalition.loyalty.issued_by(sender.address) == 0
        members = ready(coalition, 1)
        tx = coalition.loyalty.earn_batch(sender, members, [MAX_EARN], [dear()])
        bound = earn_batch_gas(members)
        assert tx.gas_used <= bound <= MARGIN * tx.gas_used, (tx.gas_used, bound)

    def test_an_earn_batch_of_one_members_run(self, full):
        """One member's items side by side (the import sorts a batch by member): the first item, then
        each further one at its bound's cheapest rate, cut at the budget."""
        coalition = full
        budget = coalition.chain.batch_gas_budget()
        (one,) = ready(coalition, 1)
        fits = earn_batch_fits([one] * 20_000, budget)
        assert earn_batch_gas([one] * fits) <= budget < earn_batch_gas([one] * (fits + 1))
        # anvil refuses a request past ~2 MB (2 MB answered, 3 MB "Invalid request"): 11,777 items' calldata
        # (1.1 MB, twice that in hex) would pass it; an import reads at most `earn_batch_max` items a batch
        run = [one] * min(fits, earn_batch_max(budget))
        sender = coalition.chain.backend.accounts[0]
        # as dear in calldata as MAX_EARN (four bytes of no zero), and ~5,800 of them stay under the
        # partner's issue cap per period
        amount = 0x01010101
        tx = coalition.loyalty.earn_batch(sender, run, [amount] * len(run), [dear() for _ in run])
        bound = earn_batch_gas(run)
        assert tx.gas_used <= bound <= MARGIN * tx.gas_used, (tx.gas_used, bound)
        assert coalition.loyalty.balance_of(one) == len(run) * amount


class TestABatchPastItsBudgetIsRefusedBeforeSigning:
    """A bound above the block's limit would be capped to it, and the simulation would end in an
    out-of-gas error that names nothing: such a batch is refused by the client first."""

    def test_an_enrolment(self, coalition):
        sender = coalition.chain.backend.accounts[0]
        nonce = coalition.chain.w3.eth.get_transaction_count(sender.address, "pending")
        budget = coalition.chain.batch_gas_budget()
        size = enrol_batch_max(budget)
        keyed = (budget - enrol_batch_gas(size, 0)) // ENROL_BATCH_GAS_PER_KEY + 1
        signers = [Account.create().address] * keyed + [None] * (size - keyed)
        bindings = [Authorization(b"\x01" * 65, 0)] * keyed + [None] * (size - keyed)
        assert enrol_batch_gas(size, keyed) > budget
        with pytest.raises(ValueError, match="gas budget"):
            coalition.members.prepare_enrol(sender, [dear() for _ in signers], signers, bindings)
        # one member fewer with a key fits
        assert enrol_batch_gas(size, keyed - 1) <= budget
        assert coalition.chain.w3.eth.get_transaction_count(sender.address, "pending") == nonce

    def test_a_consent_batch(self, coalition):
        sender = coalition.chain.backend.accounts[0]
        members = [dear() for _ in range(record_batch_max(coalition.chain.batch_gas_budget()) + 1)]
        with pytest.raises(ValueError, match="smaller batches"):
            coalition.consent.prepare_record_batch(
                sender, members, LOYALTY, ConsentStatus.GIVEN, [dear() for _ in members]
            )


class TestTheBudgetIsTheNodesBlockLessAMillion:
    def test_the_sizes_under_a_30m_block_are_what_they_were_and_a_60m_block_takes_about_twice(self):
        assert (enrol_batch_max(29_000_000), record_batch_max(29_000_000)) == (1000, 340)
        assert (enrol_batch_max(59_000_000), record_batch_max(59_000_000)) == (2100, 692)
        for budget in (29_000_000, 59_000_000):
            assert enrol_batch_gas(enrol_batch_max(budget), 0) <= budget
            assert RECORD_BATCH_GAS_BASE + RECORD_BATCH_GAS_PER_ITEM * record_batch_max(budget) <= budget
        # a node of a tiny block still gets batches of one (its simulation, not this, says no)
        assert enrol_batch_max(100_000) == record_batch_max(0) == 1
        assert enrol_batch_max(500_000) == 14  # what fits, below a hundred

    def test_each_node_reports_its_own(self, full):
        limit = int(full.chain.w3.eth.get_block("latest")["gasLimit"])
        assert limit in (30_000_000, 60_000_000)
        assert full.chain.batch_gas_budget() == full.members.batch_gas_budget() == limit - 1_000_000

    def test_a_recordbatch_past_a_30m_blocks_budget_is_signed_for_a_60m_node_only(self, full):
        """341 consents: a bound of 29.1M, past a 30M block's budget and within a 60M one's."""
        sender = full.chain.backend.accounts[0]
        members = ready(full, 341, consent=False)
        receipts = [dear() for _ in members]
        if full.chain.batch_gas_budget() < 29_100_000:
            with pytest.raises(ValueError, match="smaller batches"):
                full.consent.prepare_record_batch(sender, members, LOYALTY, ConsentStatus.GIVEN, receipts)
            return
        tx = full.consent.record_batch(sender, members, LOYALTY, ConsentStatus.GIVEN, receipts)
        assert len(tx.events_named("ConsentRecorded")) == 341
