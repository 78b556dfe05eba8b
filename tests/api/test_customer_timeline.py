"""Each record's history: a change of personal data is a leaf of the partner's log (a keyed commitment,
proven on chain, unlinked by erasure), and the member's timeline lists every change in order."""

from __future__ import annotations

import pytest

from api.errors import InvalidInput, NotFound
from api.evidence.verification import Outcome, verify_all
from api.principal import Principal
from api.usecases.anchoring import anchor_now
from api.usecases.consent import give_consent
from api.usecases.customers import update_customer
from api.usecases.erasure import erase_customer
from api.usecases.interactions import NewInteraction, add_interaction, record_interactions
from api.usecases.loyalty import PointsRequest, earn_points
from api.usecases.timeline import customer_timeline
from offchain.models import InteractionKind
from offchain.repositories import interactions

ACME = Principal.of_partner("acme")


def _record_updates(crm, member):
    with crm.unit_of_work() as db:
        partner = crm.partner(db, "acme")
        rows = interactions.of_member(db, partner.id, member)
    return [r for r in rows if r.kind is InteractionKind.RECORD_UPDATE]


def test_a_personal_data_change_is_a_leaf_proven_on_chain_and_in_the_timeline(crm, alice):
    update_customer(crm, ACME, alice, {"email": "alice.new@example.org", "phone": "+44 20 7946 0999"})
    (change,) = _record_updates(crm, alice)
    assert change.payload_ciphertext is not None and b"alice.new" not in change.payload_ciphertext
    anchor_now(crm, ACME)
    report = verify_all(crm, "acme")
    assert report.ok and report.counts[Outcome.VERIFIED] == 1, report.results
    give_consent(crm, ACME, alice, "loyalty")
    earn_points(crm, ACME, PointsRequest(alice, 40))
    entries = customer_timeline(crm, ACME, alice)
    assert [e["event"] for e in entries] == [
        "registered",
        "personal data updated",
        "consent given",
        "points earned",
    ]
    update = entries[1]
    assert (
        update["detail"] == "changed: email, phone" and update["anchored"] and update["leaf"] == 1
    )  # leaf 0: the log's genesis
    assert "alice.new" not in repr(entries)
    assert all(e["block"] is not None for e in entries[1:])


def test_an_update_that_changes_nothing_or_fails_leaves_no_trace(crm, alice):
    with pytest.raises(InvalidInput):
        update_customer(crm, ACME, alice, {"email": "not an address"})
    update_customer(crm, ACME, alice, {"name": "Alice Quartermain"})  # the same name: nothing changed
    assert _record_updates(crm, alice) == []


def test_erasure_unlinks_the_changes_and_ends_the_timeline(crm, alice):
    update_customer(crm, ACME, alice, {"name": "Alice Q. Quartermain"})
    anchor_now(crm, ACME)
    erase_customer(crm, ACME, alice)
    anchor_now(crm, ACME)
    (change,) = _record_updates(crm, alice)
    assert change.payload_ciphertext is None
    entries = customer_timeline(crm, ACME, alice)
    assert entries[-1]["event"] == "erased" and entries[-1]["anchored"]
    assert [e["detail"] for e in entries if e["event"] == "personal data updated"] == ["content erased"]
    report = verify_all(crm, "acme")
    assert report.ok and report.counts[Outcome.ERASED] == 1, report.results


def test_a_record_update_cannot_be_recorded_on_its_own(crm, alice):
    """Someone claiming a change of personal data that never happened, through the interaction path."""
    for kind in ("record_update", InteractionKind.RECORD_UPDATE):
        item = NewInteraction(alice, kind, {"changed": {"email": "x@example.org"}})
        with pytest.raises(InvalidInput, match="customer update"):
            add_interaction(crm, ACME, item)
        with pytest.raises(InvalidInput, match="customer update"):
            record_interactions(crm, ACME, [item])
    assert _record_updates(crm, alice) == []


def test_another_partner_sees_no_timeline(crm, alice):
    with pytest.raises(NotFound):
        customer_timeline(crm, Principal.of_partner("borealis"), alice)
