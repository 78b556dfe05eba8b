import pytest
from sqlmodel import select

from api.errors import InvalidInput, NotAConsortiumPartner, NotFound
from api.evidence.recording import NewInteraction, record_interaction, record_interactions
from api.principal import Principal
from api.usecases.customers import register_customer, show_customer
from api.usecases.partners import register_partner
from offchain.models import Customer, CustomerCreate, Interaction

P = Principal.of_partner


def test_a_customer_is_readable_by_its_partner_only(crm, alice):
    view = show_customer(crm, P("acme"), alice)
    assert view.pii == {
        "name": "Alice Quartermain",
        "email": "alice.q@example.org",
        "phone": "+44 20 7946 0101",
        "country": "GB",
    }
    with pytest.raises(NotFound):
        show_customer(crm, P("borealis"), alice)
    with pytest.raises(NotFound):
        show_customer(crm, P("acme"), b"\x01" * 32)


def test_member_ids_are_random_and_pii_is_stored_encrypted(crm):
    data = CustomerCreate(name="Bob Twin", email="bob@example.org")
    first, second = register_customer(crm, P("acme"), data), register_customer(crm, P("acme"), data)
    assert first != second and len(first) == 32
    with crm.unit_of_work() as db:
        stored = db.get(Customer, first)
        assert stored is not None
        assert b"Bob Twin" not in stored.pii_ciphertext and b"bob@example.org" not in stored.pii_ciphertext


def test_only_consortium_partners_can_be_registered(crm):
    outsider = crm.coalition.chain.backend.accounts[7]
    with pytest.raises(NotAConsortiumPartner):
        register_partner(crm, "outsider", outsider)
    with pytest.raises(InvalidInput):
        register_partner(crm, "Not A Slug!", crm.coalition.chain.backend.accounts[0])


def test_interactions_are_sealed_and_idempotent_by_external_key(crm, alice):
    first = record_interactions(
        crm,
        "acme",
        [
            NewInteraction(alice, "purchase", {"invoice": "489434", "total": 83.4}, external_key="489434"),
            NewInteraction(alice, "support_ticket", {"text": "parcel arrived damaged"}),
        ],
    )
    assert len(first.recorded) == 2 and first.duplicates == []
    again = record_interactions(
        crm,
        "acme",
        [NewInteraction(alice, "purchase", {"invoice": "489434", "total": 83.4}, external_key="489434")],
    )
    assert again.recorded == [] and again.duplicates == ["489434"]
    with crm.unit_of_work() as db:
        rows = db.exec(select(Interaction)).all()
    assert len(rows) == 2
    assert all(b"parcel arrived damaged" not in (r.payload_ciphertext or b"") for r in rows)
    assert all(len(r.leaf_hash) == 32 for r in rows)


def test_a_failed_bulk_request_records_nothing(crm, alice):
    with pytest.raises(NotFound):
        record_interactions(
            crm,
            "acme",
            [NewInteraction(alice, "visit", {"store": "Leeds"}), NewInteraction(b"\x02" * 32, "visit", {})],
        )
    with pytest.raises(InvalidInput):
        record_interaction(crm, "acme", NewInteraction(alice, "visit", {"bad": float("nan")}))
    with pytest.raises(InvalidInput, match="unknown interaction kind 'telepathy'"):
        record_interaction(crm, "acme", NewInteraction(alice, "telepathy", {}))
    with crm.unit_of_work() as db:
        assert db.exec(select(Interaction)).all() == []


def test_a_partner_cannot_record_for_another_partners_customer(crm, alice):
    with pytest.raises(NotFound):
        record_interaction(crm, "borealis", NewInteraction(alice, "email", {"subject": "hi"}))


def test_a_partners_customer_number_is_registered_once(crm):
    register_customer(crm, P("acme"), CustomerCreate(name="Dora", external_ref="C-42"))
    with pytest.raises(InvalidInput):
        register_customer(crm, P("acme"), CustomerCreate(name="Dora again", external_ref="C-42"))
    register_customer(crm, P("borealis"), CustomerCreate(name="Dora elsewhere", external_ref="C-42"))
