"""Who acts: every use case takes a Principal and refuses what that principal may not do."""

import pytest

from api.context import Crm
from api.errors import NotAllowed, NotFound
from api.evidence.recording import NewInteraction
from api.principal import Principal
from api.usecases.anchoring import anchor_now
from api.usecases.consent import consent_history, give_consent
from api.usecases.customers import register_customer, show_customer
from api.usecases.erasure import erase_customer
from api.usecases.interactions import add_interaction, record_interactions
from api.usecases.loyalty import balance, reconcile
from api.usecases.partners import positions
from api.usecases.verification import verify
from offchain.models import CustomerCreate

ACME, BOREALIS = Principal.of_partner("acme"), Principal.of_partner("borealis")
AUDITOR = Principal.of_auditor("0x" + "ab" * 20)


def test_only_a_partner_registers_records_or_erases(crm: Crm, alice: bytes):
    for who in (AUDITOR, Principal.of_customer(alice), Principal.operator()):
        with pytest.raises(NotAllowed):
            register_customer(crm, who, CustomerCreate(name="Mallory"))
        with pytest.raises(NotAllowed):
            record_interactions(crm, who, [NewInteraction(alice, "visit", {})])
        with pytest.raises(NotAllowed):
            give_consent(crm, who, alice, "loyalty")
        with pytest.raises(NotAllowed):
            erase_customer(crm, who, alice)
        with pytest.raises(NotAllowed):
            show_customer(crm, who, alice)
    assert show_customer(crm, ACME, alice).pii["name"] == "Alice Quartermain"


def test_a_partner_acts_only_as_itself(crm: Crm, alice: bytes):
    with pytest.raises(NotFound):  # another partner's customer: as if it did not exist
        show_customer(crm, BOREALIS, alice)
    with pytest.raises(NotFound):
        add_interaction(crm, BOREALIS, NewInteraction(alice, "visit", {}))
    with pytest.raises(NotAllowed):
        anchor_now(crm, BOREALIS, "acme")
    assert [p.name for p in positions(crm, BOREALIS)] == ["borealis"]
    added = add_interaction(crm, ACME, NewInteraction(alice, "visit", {}))
    assert added.interaction_id is not None
    report = verify(crm, BOREALIS)  # borealis's scope: none of acme's rows
    assert report.results == []
    assert [r.interaction_id for r in verify(crm, ACME).results] == [added.interaction_id]


def test_a_customer_reads_only_its_own(crm: Crm, alice: bytes):
    bob = register_customer(crm, ACME, CustomerCreate(name="Bob"))
    give_consent(crm, ACME, alice, "loyalty")
    assert len(consent_history(crm, Principal.of_customer(alice), alice)) == 1
    with pytest.raises(NotFound):
        consent_history(crm, Principal.of_customer(bob), alice)
    with pytest.raises(NotFound):
        balance(crm, Principal.of_customer(bob), alice)
    assert balance(crm, Principal.of_customer(alice), alice) == 0


def test_reconciling_the_store_is_the_operators(crm: Crm):
    with pytest.raises(NotAllowed):
        reconcile(crm, ACME)
    assert reconcile(crm, Principal.operator()).ok
