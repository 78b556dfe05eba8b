import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlmodel import select

from api.errors import ConsentRequired, CustomerIsErased, InvalidInput, NotFound
from api.evidence.anchoring import anchor_pending
from api.evidence.recording import NewInteraction, record_interactions
from api.evidence.verification import Outcome, verify_all
from api.principal import Principal
from api.usecases.consent import consent_history, consent_valid, give_consent, withdraw_consent
from api.usecases.customers import register_customer, show_customer
from api.usecases.erasure import erase_customer
from api.usecases.loyalty import PointsRequest, earn_points, earn_points_batch, reconcile, redeem_points
from ledger import errors as chain_errors
from ledger.merkle import leaf_hash
from offchain.db import DATABASE_FILE
from offchain.errors import CustomerErased
from offchain.models import CustomerCreate, PointEvent

P = Principal.of_partner

OP = Principal.operator()


def test_consent_history_and_validity_come_from_the_chain(crm, alice):
    given = give_consent(crm, P("acme"), alice, "loyalty")
    assert given.tx_hash and given.block_number
    assert consent_valid(crm, OP, "acme", alice, "loyalty")
    assert not consent_valid(crm, OP, "borealis", alice, "loyalty")
    # "valid at T" is answered in chain time (dev chains' clocks need not follow the wall clock)
    given_at = crm.coalition.chain.w3.eth.get_block(given.block_number)["timestamp"]
    crm.coalition.chain.backend.time_travel(given_at + 3600)
    withdraw_consent(crm, P("acme"), alice, "loyalty")
    assert not consent_valid(crm, OP, "acme", alice, "loyalty")
    assert consent_valid(crm, OP, "acme", alice, "loyalty", at=datetime.fromtimestamp(given_at + 5, UTC))
    assert not consent_valid(crm, OP, "acme", alice, "loyalty", at=datetime.fromtimestamp(given_at - 5, UTC))
    history = consent_history(crm, OP, alice)
    assert [e.receipt.status.value for e in history] == ["given", "withdrawn"]
    assert all(e.on_chain for e in history)
    # the receipt carries DPV fields and ids, never personal data
    assert '"legalBasis":"dpv:Consent"' in history[0].receipt.receipt_json
    assert (
        "Alice" not in history[0].receipt.receipt_json and "alice.q@" not in history[0].receipt.receipt_json
    )


def test_bad_consent_changes_nothing(crm, alice):
    with pytest.raises(chain_errors.ConsentExpiryInPast):
        give_consent(crm, P("acme"), alice, "loyalty", expires_at=datetime(2000, 1, 1, tzinfo=UTC))
    with pytest.raises(NotFound):
        give_consent(crm, P("acme"), b"\x03" * 32, "loyalty")
    with pytest.raises(InvalidInput):
        give_consent(crm, P("acme"), alice, "")
    assert consent_history(crm, OP, alice) == []


def test_earning_needs_consent_and_points_reconcile(crm, alice):
    with pytest.raises(ConsentRequired):
        earn_points(crm, P("acme"), PointsRequest(alice, 100))
    with crm.unit_of_work() as db:
        assert db.exec(select(PointEvent)).all() == []
    assert crm.coalition.loyalty.balance_of(alice) == 0

    give_consent(crm, P("acme"), alice, "loyalty")
    earn_points(crm, P("acme"), PointsRequest(alice, 700, external_key="INV-1"))
    redeem_points(crm, P("acme"), PointsRequest(alice, 250))  # alice has no key: her home partner redeems
    assert crm.coalition.loyalty.balance_of(alice) == 450
    with pytest.raises(InvalidInput):
        earn_points(crm, P("acme"), PointsRequest(alice, 5, external_key="INV-1"))
    with pytest.raises(chain_errors.LoyaltyInsufficientBalance):
        redeem_points(crm, P("acme"), PointsRequest(alice, 10_000))
    assert reconcile(crm, OP).ok

    bob = register_customer(crm, P("acme"), CustomerCreate(name="Bob"))
    give_consent(crm, P("acme"), bob, "loyalty")
    earn_points_batch(crm, P("acme"), [PointsRequest(alice, 1), PointsRequest(bob, 2)])
    report = reconcile(crm, OP)
    assert report.ok and report.members_checked == 2 and report.partners_checked == 3

    with crm.unit_of_work() as db:  # an off-chain record edited behind the system's back
        event = db.exec(select(PointEvent).where(PointEvent.external_key == "INV-1")).one()
        event.amount = 7000
    mismatches = reconcile(crm, OP).mismatches
    assert any("the store says a balance of 6,751, the chain 451" in m for m in mismatches)
    assert any(m.startswith("partner acme") for m in mismatches)


def test_erasure(crm, alice):
    bob = register_customer(crm, P("acme"), CustomerCreate(name="Bob Keeper", email="bob.k@example.org"))
    for member in (alice, bob):
        record_interactions(
            crm, "acme", [NewInteraction(member, "email", {"subject": f"hello {i}"}) for i in range(3)]
        )
    anchor_pending(crm, "acme")
    dek = crm.vault._dek("acme", alice)  # test-only: the raw key, to look for it on disk afterwards

    with pytest.raises(NotFound):
        erase_customer(crm, P("borealis"), alice)  # only the owning partner erases
    receipt, anchored = erase_customer(crm, P("acme"), alice)
    assert receipt.interactions_count == 3
    # the receipt is the next leaf of acme's log, after its genesis leaf and six interactions, proven
    assert receipt.leaf_index == 7 and receipt.proof is not None
    proof = [receipt.proof[i : i + 32] for i in range(0, len(receipt.proof), 32)]
    assert crm.coalition.anchor.verify_inclusion(
        anchored.onchain_batch_id, 7, leaf_hash(receipt.receipt_hash), proof
    )

    with pytest.raises(CustomerIsErased):
        show_customer(crm, P("acme"), alice)
    with pytest.raises(CustomerErased):
        crm.vault.commit("acme", alice, b"anything")
    with pytest.raises(CustomerIsErased):
        record_interactions(crm, "acme", [NewInteraction(alice, "visit", {})])
    assert show_customer(crm, P("acme"), bob).pii["name"] == "Bob Keeper"

    report = verify_all(crm)
    assert report.ok, report.problems
    assert report.counts[Outcome.ERASED] == 3 and report.counts[Outcome.VERIFIED] == 3

    with pytest.raises(CustomerIsErased, match="already erased"):  # a second erase says so
        erase_customer(crm, P("acme"), alice)
    assert crm.coalition.members.member(alice).erased

    if crm.engine.dialect.name == "sqlite":
        crm.engine.dispose()
        crm.keystore.close()
        files = [
            p
            for p in Path(crm.settings.home).rglob("*")
            if re.search(r"\.(db|sqlite)(-wal|-shm|-journal)?$", p.name)
        ]
        assert any(p.name.startswith("keys.sqlite") for p in files) and any(
            p.name.startswith(DATABASE_FILE) for p in files
        )
        for path in files:
            raw = path.read_bytes()
            assert dek not in raw, path
            for pii in (b"Alice Quartermain", b"alice.q@example.org", b"+44 20 7946 0101"):
                assert pii not in raw, (path, pii)


def test_consent_expires_in_chain_time(crm, alice):
    now = crm.coalition.chain.w3.eth.get_block("latest")["timestamp"]
    give_consent(crm, P("acme"), alice, "profiling", expires_at=datetime.fromtimestamp(now + 600, UTC))
    assert consent_valid(crm, OP, "acme", alice, "profiling")
    crm.coalition.chain.backend.time_travel(now + 601)
    assert not consent_valid(crm, OP, "acme", alice, "profiling")
    history = consent_history(crm, OP, alice, "acme")
    assert history[0].receipt.expires_at is not None and history[0].on_chain


def test_erased_pii_cannot_be_decrypted_even_with_the_ciphertext(crm, alice):
    from offchain.models import Customer

    with crm.unit_of_work() as db:
        sealed = db.get(Customer, alice).pii_ciphertext
    erase_customer(crm, P("acme"), alice)
    with pytest.raises(CustomerErased):
        crm.vault.decrypt("acme", alice, "pii", sealed)
