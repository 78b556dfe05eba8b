"""Batches are signed with a gas bound, not an estimate (ledger/clients): every full batch of the
costliest shape fits its bound, each bound is within a stated margin of that worst case (a node packs
blocks by the transactions' limits, so a loose bound leaves blocks half empty), and a batch is cut
before its bound passes the budget under a 30M block.

The costliest shapes, measured: a member's first enrolment, first consent and first earn (cold slots,
new slots), a member with a key (its second slot and its binding signature), the largest amount, and
ids, receipts and references of no zero byte (the dearest calldata). Full-size batches run on anvil
only: py-evm would take seconds for each. A bound set below what its batch uses fails here: the
simulation runs out of gas before anything is signed.
"""

import os

import pytest
from eth_account import Account

from ledger.clients import ConsentStatus, purpose_id
from ledger.clients.base import BATCH_GAS_BUDGET
from ledger.clients.consent import RECORD_BATCH_GAS_BASE, RECORD_BATCH_GAS_PER_ITEM, RECORD_BATCH_MAX
from ledger.clients.loyalty import (
    EARN_BATCH_GAS_BUDGET,
    MAX_EARN,
    earn_batch_fits,
    earn_batch_gas,
)
from ledger.clients.members import (
    ENROL_BATCH_GAS_BUDGET,
    ENROL_BATCH_GAS_PER_KEY,
    ENROL_BATCH_MAX,
    Authorization,
    enrol_batch_gas,
)
from ledger.coalition import Coalition
from tests.ledger.test_prepare import anvil_only

LOYALTY = purpose_id("loyalty")
# A bound may be at most this much above the worst case it covers: the margin the clients state (9-11%)
# and a little more for the batch's fixed part.
MARGIN = 1.15


def dear() -> bytes:
    """32 random bytes without a zero byte: calldata at its dearest (16 gas a byte)."""
    return bytes(b % 255 + 1 for b in os.urandom(32))


def ready(coalition: Coalition, count: int, *, consent: bool = True) -> list[bytes]:
    """`count` fresh members enrolled by account 0, with its attested loyalty consent."""
    sender = coalition.chain.backend.accounts[0]
    members = [dear() for _ in range(count)]
    for start in range(0, count, ENROL_BATCH_MAX):
        part = members[start : start + ENROL_BATCH_MAX]
        coalition.members.enrol(sender, part, [None] * len(part))
    for start in range(0, count if consent else 0, RECORD_BATCH_MAX):
        part = members[start : start + RECORD_BATCH_MAX]
        coalition.consent.record_batch(sender, part, LOYALTY, ConsentStatus.GIVEN, [dear() for _ in part])
    return members


class TestAFullBatchOfTheCostliestShapeFitsItsBound:
    def test_an_enrolment_of_members_without_a_key(self, coalition):
        anvil_only(coalition)
        members = [dear() for _ in range(ENROL_BATCH_MAX)]
        bound = enrol_batch_gas(ENROL_BATCH_MAX, 0)
        assert bound <= ENROL_BATCH_GAS_BUDGET
        tx = coalition.members.enrol(coalition.chain.backend.accounts[0], members, [None] * len(members))
        assert tx.gas_used <= bound <= MARGIN * tx.gas_used, (tx.gas_used, bound)
        assert len(tx.events_named("MemberEnrolled")) == ENROL_BATCH_MAX

    def test_an_enrolment_of_members_with_keys(self, coalition):
        """Each binds its own key with its signature: ~82k a member (the bound counted 52k until
        2026-12-07, and three of them ran out of gas in the simulation)."""
        anvil_only(coalition)
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

    def test_a_consent_batch_of_first_consents(self, coalition):
        anvil_only(coalition)
        members = ready(coalition, RECORD_BATCH_MAX, consent=False)
        bound = RECORD_BATCH_GAS_BASE + RECORD_BATCH_GAS_PER_ITEM * RECORD_BATCH_MAX
        assert bound <= BATCH_GAS_BUDGET
        tx = coalition.consent.record_batch(
            coalition.chain.backend.accounts[0],
            members,
            LOYALTY,
            ConsentStatus.GIVEN,
            [dear() for _ in members],
            2**64 - 1,  # the largest expiry: the dearest calldata
        )
        assert tx.gas_used <= bound <= MARGIN * tx.gas_used, (tx.gas_used, bound)
        assert len(tx.events_named("ConsentRecorded")) == RECORD_BATCH_MAX

    def test_an_earn_batch_of_first_earns_members_each_once(self, coalition):
        """Members each once (Online Retail II's invoices are in date order): the batch is cut where
        one more would pass the budget, and all of it fits."""
        anvil_only(coalition)
        many = [dear() for _ in range(1000)]
        fits = earn_batch_fits(many)
        assert earn_batch_gas(many[:fits]) <= EARN_BATCH_GAS_BUDGET < earn_batch_gas(many[: fits + 1])
        members = ready(coalition, fits)
        tx = coalition.loyalty.earn_batch(
            coalition.chain.backend.accounts[0], members, [MAX_EARN] * fits, [dear() for _ in members]
        )
        bound = earn_batch_gas(members)
        assert tx.gas_used <= bound <= MARGIN * tx.gas_used, (tx.gas_used, bound)
        assert coalition.loyalty.balances_of(members[:3]) == [MAX_EARN] * 3

    def test_a_partners_first_earn_ever_in_a_batch_of_one(self, coalition):
        """The batch's own part at its dearest: the partner's issued total, the supply and the period's
        count written from zero (~104k; a base of 100k ran a batch of two out of gas in its simulation)."""
        anvil_only(coalition)
        sender = coalition.chain.backend.accounts[0]
        assert coalition.loyalty.issued_by(sender.address) == 0
        members = ready(coalition, 1)
        tx = coalition.loyalty.earn_batch(sender, members, [MAX_EARN], [dear()])
        bound = earn_batch_gas(members)
        assert tx.gas_used <= bound <= MARGIN * tx.gas_used, (tx.gas_used, bound)

    def test_an_earn_batch_of_one_members_run(self, coalition):
        """One member's items side by side (the import sorts a batch by member): the first item, then
        each further one at its bound's cheapest rate, cut at the budget."""
        anvil_only(coalition)
        (one,) = ready(coalition, 1)
        run = [one] * earn_batch_fits([one] * 10_000)
        assert earn_batch_gas(run) <= EARN_BATCH_GAS_BUDGET < earn_batch_gas([*run, one])
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
        keyed = (ENROL_BATCH_GAS_BUDGET - enrol_batch_gas(ENROL_BATCH_MAX, 0)) // ENROL_BATCH_GAS_PER_KEY + 1
        signers = [Account.create().address] * keyed + [None] * (ENROL_BATCH_MAX - keyed)
        bindings = [Authorization(b"\x01" * 65, 0)] * keyed + [None] * (ENROL_BATCH_MAX - keyed)
        assert enrol_batch_gas(ENROL_BATCH_MAX, keyed) > ENROL_BATCH_GAS_BUDGET
        with pytest.raises(ValueError, match="gas budget"):
            coalition.members.prepare_enrol(sender, [dear() for _ in signers], signers, bindings)
        # one member fewer with a key fits
        assert enrol_batch_gas(ENROL_BATCH_MAX, keyed - 1) <= ENROL_BATCH_GAS_BUDGET
        assert coalition.chain.w3.eth.get_transaction_count(sender.address, "pending") == nonce

    def test_a_consent_batch(self, coalition):
        sender = coalition.chain.backend.accounts[0]
        members = [dear() for _ in range(RECORD_BATCH_MAX + 1)]
        with pytest.raises(ValueError, match="smaller batches"):
            coalition.consent.prepare_record_batch(
                sender, members, LOYALTY, ConsentStatus.GIVEN, [dear() for _ in members]
            )
