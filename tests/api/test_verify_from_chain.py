"""Verification starts from the chain and trusts nothing off chain: each way of breaking the store
(issue 12's table, one test a row) is named with its record and fails the run, which goes on to the end.
Each of these passed as "verified" or "erased", or aborted the run, before the logs."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path
from unittest.mock import ANY

import pytest
from eth_account import Account
from sqlalchemy import text
from sqlmodel import col, select

from api.context import Crm
from api.errors import ConsentRequired, CustomerIsErased
from api.evidence import records
from api.evidence.anchoring import anchor_pending
from api.evidence.recording import NewInteraction, record_interactions
from api.evidence.verification import Check, Outcome
from api.principal import Principal
from api.settings import Settings
from api.usecases.anchoring import send_waiting
from api.usecases.consent import (
    consent_history,
    follow_consents,
    give_consent,
    send_staged_consents,
    stage_consents,
    withdraw_consent,
)
from api.usecases.customer_keys import customer_binding
from api.usecases.customers import PII_FIELD, register_customer, show_customer
from api.usecases.erasure import erase_customer, reshred_erased
from api.usecases.export import export_member
from api.usecases.loyalty import (
    PointsRequest,
    earn_points,
    earn_points_batch,
    send_staged_points,
    stage_earnings,
)
from api.usecases.partners import register_partner
from api.usecases.reconciliation import reconcile_store
from api.usecases.verification import verify
from ledger.clients import ConsentStatus as ChainConsentStatus
from ledger.clients import purpose_id
from ledger.clients.loyalty import points_events
from ledger.errors import AnchorRootAlreadyAnchored
from offchain.errors import DecryptionFailed
from offchain.models import (
    Batch,
    ConsentReceipt,
    ConsentStatus,
    Customer,
    CustomerCreate,
    ErasureReceipt,
    Interaction,
    PointEvent,
)

P = Principal.of_partner
OPERATOR = Principal.operator()


def record(crm: Crm, partner: str, member: bytes, count: int, tag: str = "") -> list[int]:
    items = [
        NewInteraction(member, "purchase", {"total": i + 0.5}, external_key=f"{tag}INV-{i}")
        for i in range(count)
    ]
    return record_interactions(crm, partner, items).recorded


def customer(crm: Crm, partner: str, name: str) -> bytes:
    return register_customer(crm, P(partner), CustomerCreate(name=name, email=f"{name.lower()}@example.org"))


@pytest.fixture
def store(crm: Crm, alice: bytes) -> dict[str, object]:
    """acme: alice (live, 10 interactions) and bob (erased); cafe: carol (4 interactions)."""
    bob = customer(crm, "acme", "Bob")
    carol = customer(crm, "cafe", "Carol")
    ids = record(crm, "acme", alice, 10)
    bob_ids = record(crm, "acme", bob, 3, "B")
    carol_ids = record(crm, "cafe", carol, 4)
    anchor_pending(crm, "acme")
    anchor_pending(crm, "cafe")
    erase_customer(crm, P("acme"), bob)
    report = verify(crm, OPERATOR)
    assert not report.failures, report.failures
    return {
        "alice": alice,
        "bob": bob,
        "carol": carol,
        "ids": ids,
        "bob_ids": bob_ids,
        "carol_ids": carol_ids,
    }


def failures(crm: Crm, **kwargs: object) -> dict[str, str]:
    report = verify(crm, OPERATOR, **kwargs)  # type: ignore[arg-type]
    return {f.label: f.detail for f in report.failures}


def test_row1_a_deleted_batch_and_its_interactions_are_missing_leaves(crm, store):
    with crm.unit_of_work() as db:
        batch = db.exec(select(Batch).order_by(col(Batch.id))).first()
        assert batch is not None
        for row in db.exec(select(Interaction).where(Interaction.batch_id == batch.id)):
            db.delete(row)
        db.flush()
        db.delete(batch)
    found = failures(crm)
    missing = [label for label in found if label.startswith("leaf ") and label.endswith(" of acme")]
    assert len(missing) == 8  # batch_max_leaves: every leaf of the first head is named
    assert any(label.startswith("head ") for label in found)  # and the head the store lost
    assert "no record at that place" in found["leaf 1 of acme"]  # leaf 0 is the genesis leaf


def test_row2_a_replaced_store_is_older_than_the_chain(crm, store):
    with crm.unit_of_work() as db:  # the store as it would be recreated empty
        for table in (
            "interactions",
            "erasure_receipts",
            "consent_receipts",
            "point_events",
            "enrolments",
            "batches",
            "customers",
            "partners",
        ):
            db.exec(text(f"DELETE FROM {table}"))
    found = failures(crm)
    logs = [detail for label, detail in found.items() if label.startswith("log of ")]
    assert len(logs) == 2 and all("the store knows no such partner" in d for d in logs)


def test_row3_a_live_payload_set_to_null_is_not_an_erasure(crm, store):
    target = store["ids"][2]
    with crm.unit_of_work() as db:
        row = db.get(Interaction, target)
        row.payload_ciphertext = None
    found = failures(crm)
    assert found[f"interaction {target}"] == "the payload is missing and no erasure of the member is anchored"


def test_row4_an_interaction_moved_to_an_erased_member_is_tampered(crm, store):
    target = store["ids"][3]
    with crm.unit_of_work() as db:
        db.get(Interaction, target).member_id = store["bob"]
    found = failures(crm)
    assert "the member was erased, yet a payload is stored" in found[f"interaction {target}"]
    receipt = next(detail for label, detail in found.items() if label.startswith("erasure receipt"))
    assert "it counts 3 interactions of the member; the store holds 4" in receipt


def test_row5_a_batch_pointed_at_another_partners_head_is_foreign(crm, store):
    with crm.unit_of_work() as db:
        acme_batch = db.exec(select(Batch).where(Batch.partner_id == 1).order_by(col(Batch.id))).first()
        cafe_batch = db.exec(select(Batch).where(Batch.partner_id == 3)).first()
        root, size = bytes(acme_batch.root), acme_batch.first_index + acme_batch.size
    # partner C cannot re-anchor A's head: the chain refuses any root anchored before
    with pytest.raises(AnchorRootAlreadyAnchored):
        crm.coalition.anchor.anchor(crm.signer("cafe"), root, size + 4, [])
    with crm.unit_of_work() as db:
        cafe_id = cafe_batch.onchain_batch_id
        db.exec(text("UPDATE batches SET onchain_batch_id = -1 WHERE id = :i").bindparams(i=cafe_batch.id))
        db.exec(
            text("UPDATE batches SET onchain_batch_id = :o WHERE id = :i").bindparams(
                o=cafe_id, i=acme_batch.id
            )
        )
    found = failures(crm)
    assert "not of acme" in found[f"batch {acme_batch.id} of acme"]
    assert any("its batch points at on-chain batch" in d for d in found.values())


def test_row6_an_edited_erasure_receipt_is_caught_by_its_own_json(crm, store):
    with crm.unit_of_work() as db:
        receipt = db.exec(select(ErasureReceipt)).one()
        document = json.loads(receipt.receipt_json)
        document["interactions"] = 0
        receipt.receipt_json = json.dumps(document)
    found = failures(crm)
    label = f"erasure receipt {receipt.id} of acme"
    assert "is not in the anchored batch" in found[label] or "does not hash" in found[label]


def test_row7_a_key_deleted_without_an_erasure_is_named_and_the_run_goes_on(crm, store):
    alice = store["alice"]
    wrapped, _ = crm.keystore.table_names
    with crm.keystore._engine.begin() as keys:  # test-only: the key row deleted behind the vault's back
        deleted = keys.execute(text(f"DELETE FROM {wrapped} WHERE member = :m").bindparams(m=alice))
        assert deleted.rowcount == 1
    crm.vault._cache.clear()  # test-only: as a new process would start
    report = verify(crm, OPERATOR)
    found = {f.label: f.detail for f in report.failures}
    assert all("key is missing" in found[f"interaction {i}"] for i in store["ids"])
    assert report.counts[Outcome.VERIFIED] == 4  # carol's, after alice's: the run went on


def test_row8_edited_consent_rows_are_not_on_chain(crm, store):
    alice = store["alice"]
    given = give_consent(crm, P("acme"), alice, "profiling")
    withdrawn = withdraw_consent(crm, P("acme"), alice, "profiling")
    expiring = give_consent(
        crm, P("acme"), alice, "loyalty", expires_at=datetime.now(UTC) + timedelta(days=30)
    )
    kept = give_consent(crm, P("acme"), alice, "marketing")
    assert all(e.on_chain for e in consent_history(crm, OPERATOR, alice))
    with crm.unit_of_work() as db:
        db.get(ConsentReceipt, withdrawn.id).status = ConsentStatus.GIVEN
        db.get(ConsentReceipt, expiring.id).expires_at = None
    history = {e.receipt.id: e.on_chain for e in consent_history(crm, OPERATOR, alice)}
    assert history == {given.id: True, withdrawn.id: False, expiring.id: False, kept.id: True}
    found = failures(crm)
    assert (
        "the store says given, the chain says withdrawn" in found[f"consent receipt {withdrawn.id} of acme"]
    )
    assert "expiry" in found[f"consent receipt {expiring.id} of acme"]


def test_row9_an_inflated_point_event_is_flagged_and_reconciled(crm, store):
    alice = store["alice"]
    give_consent(crm, P("acme"), alice, "loyalty")
    event = earn_points(crm, P("acme"), PointsRequest(alice, 100, "INV-P1")).event
    assert not failures(crm)
    with crm.unit_of_work() as db:
        db.get(PointEvent, event.id).amount += 1000
    found = failures(crm)
    assert "earn of 1,100 points" in found[f"point event {event.id} of acme"]
    report = verify(crm, OPERATOR)
    reconciled = [f.detail for f in report.failures if f.record == "points reconciliation"]
    assert any("the store says a balance of 1,100, the chain 100" in d for d in reconciled)
    assert any(label.startswith("points event 0x") for label in found)  # the chain's 100, unmatched


def test_point_events_are_checked_a_window_of_blocks_at_a_time(crm, store, monkeypatch):
    """verify reads the chain's point events a window of blocks at a time (its memory stays flat over a
    million events); with windows of one event each, an honest history passes and an edited row, a
    deleted one and one that claims another block are each named, with the chain's events they leave
    unmatched."""
    monkeypatch.setattr(records, "POINTS_PER_WINDOW", 1)
    alice = store["alice"]
    give_consent(crm, P("acme"), alice, "loyalty")
    events = [
        earn_points(crm, P("acme"), PointsRequest(alice, 10 * n, f"INV-W{n}")).event for n in (1, 2, 3, 4)
    ]
    assert len({e.block_number for e in events}) == 4 and not failures(crm)
    with crm.unit_of_work() as db:
        db.get(PointEvent, events[1].id).amount += 1
        db.delete(db.get(PointEvent, events[2].id))
        db.get(PointEvent, events[3].id).block_number = events[0].block_number
    found = failures(crm)
    assert "earn of 21 points" in found[f"point event {events[1].id} of acme"]
    assert f"in block {events[0].block_number}" in found[f"point event {events[3].id} of acme"]
    assert f"point event {events[0].id} of acme" not in found
    unmatched = sorted(d for label, d in found.items() if label.startswith("points event 0x"))
    assert [d.split(" of ")[1].split(" points")[0] for d in unmatched] == ["20", "30", "40"]


def test_an_auditor_run_opens_no_key_and_says_what_ran(crm, store, monkeypatch):
    def no_keys(*_args: object, **_kwargs: object) -> object:
        raise AssertionError("an auditor's run opened a key")

    for name in ("bulk_keys", "decrypt", "commit", "customer_keys"):
        monkeypatch.setattr(crm.vault, name, no_keys)
    report = verify(crm, OPERATOR, auditor=True)
    assert not report.failures
    assert Check.CONTENT not in report.checks
    assert {Check.HEADS, Check.LEAVES, Check.ERASURES, Check.CONSENT, Check.POINTS} <= set(report.checks)
    assert report.counts[Outcome.PROVEN] == 14 and report.counts[Outcome.ERASED] == 3
    # what needs no key is still caught: a leaf hash edited behind the system's back
    with crm.unit_of_work() as db:
        db.get(Interaction, store["carol_ids"][0]).leaf_hash = bytes(32)
    report = verify(crm, Principal.of_auditor(crm.signer("acme").address))
    assert [f.interaction_id for f in report.failures] == [store["carol_ids"][0]]


def test_an_erasures_withdrawals_count_only_for_a_member_the_store_says_is_erased(crm, store):
    dave = customer(crm, "acme", "Dave")
    give_consent(crm, P("acme"), dave, "loyalty")
    erase_customer(crm, P("acme"), dave)  # on chain: the consent withdrawn with no receipt (hash zero)
    assert not failures(crm)
    with crm.unit_of_work() as db:  # the store now pretends dave was never erased
        db.exec(
            text("UPDATE customers SET status = 'active', erased_at = NULL WHERE member_id = :m").bindparams(
                m=dave
            )
        )
    found = failures(crm)
    assert any(
        label.startswith("consent record 0x" + "00" * 32) and "that the store has no receipt for" in detail
        for label, detail in found.items()
    ), found


def test_row10_a_customer_marked_erased_without_an_erasure_is_named(crm, store):
    """The store says a customer was erased, but holds no erasure receipt for it, none is anchored, and
    the MemberRegistry does not say so either: an erasure nobody can prove (or a live customer hidden
    as erased), whatever its interactions say."""
    dave = customer(crm, "acme", "Dave")  # no interactions: nothing else of his can be flagged
    erin = customer(crm, "acme", "Erin")
    record(crm, "acme", erin, 2, "E")
    anchor_pending(crm, "acme")
    assert not failures(crm)
    with crm.unit_of_work() as db:
        for member in (dave, erin):
            db.exec(
                text(
                    "UPDATE customers SET status = 'erased', erased_at = '2026-01-01 00:00:00' "
                    "WHERE member_id = :m"
                ).bindparams(m=member)
            )
    for auditor in (False, True):
        found = failures(crm, auditor=auditor)
        for member in (dave, erin):
            detail = found[f"customer 0x{member.hex()} of acme"]
            assert "marked erased in the store" in detail and "no erasure receipt" in detail
            assert "the MemberRegistry does not record it erased" in detail
    assert not crm.coalition.members.member(dave).erased


def test_an_erasure_made_only_in_the_store_is_named(crm, store, monkeypatch):
    """Medium 8: a partner that erases in its store (receipt anchored, key shredded) but never on chain
    leaves the member's consents, points and decisions open there; the anchored receipt proved it."""
    dave = customer(crm, "acme", "Dave")
    record(crm, "acme", dave, 2, "D")
    monkeypatch.setattr(crm.coalition.members, "erase", lambda *_args: None)  # the chain is skipped
    receipt, _ = erase_customer(crm, P("acme"), dave)
    assert receipt.anchored_batch_id is not None and not crm.coalition.members.member(dave).erased
    for auditor in (False, True):
        detail = failures(crm, auditor=auditor)[f"erasure receipt {receipt.id} of acme"]
        assert "the MemberRegistry does not record member" in detail and "only in the store" in detail


def test_an_erasure_made_only_on_chain_is_named(crm, store):
    """Medium 8, the other way round: the chain erased a member (a home partner's direct call, or a
    store restored from before the erasure) and the store holds no receipt, and still holds the key."""
    erin = customer(crm, "acme", "Erin")
    record(crm, "acme", erin, 1, "E")
    anchor_pending(crm, "acme")
    assert not failures(crm)
    crm.coalition.members.erase(crm.signer("acme"), erin)
    found = failures(crm)
    assert "no erasure receipt" in found[f"erasure of 0x{erin.hex()} by acme"]
    assert "restored from a backup" in found[f"key of 0x{erin.hex()} of acme"]


def test_a_key_store_restored_after_an_erasure_opens_nothing_is_shredded_again_and_fails_verify(
    crm, store, tmp_path
):
    """Medium 7: erasure deletes the ciphertexts (personal data, payloads), so an old key store finds
    nothing to open; and opening the store with such a key store shreds the key again (the chain is the
    shred list) and `verify` fails on it."""
    dave = customer(crm, "acme", "Dave")
    record(crm, "acme", dave, 2, "D")
    anchor_pending(crm, "acme")
    keys = tmp_path / "keys.sqlite"
    backup = tmp_path / "keys-backup.sqlite"
    with closing(sqlite3.connect(keys)) as live, closing(sqlite3.connect(backup)) as copy:
        live.backup(copy)
    erase_customer(crm, P("acme"), dave)
    with crm.unit_of_work() as db:
        row = db.get(Customer, dave)
        assert row is not None and row.pii_ciphertext == b""
        assert all(
            i.payload_ciphertext is None
            for i in db.exec(select(Interaction).where(Interaction.member_id == dave))
        )
    crm.close()
    for suffix in ("-wal", "-shm"):
        Path(f"{keys}{suffix}").unlink(missing_ok=True)
    shutil.copyfile(backup, keys)  # the old key store, restored

    reopened = Crm.open(crm.settings, crm.coalition)
    try:
        assert not reopened.vault.is_erased("acme", dave)  # the key is back in the file...
        with reopened.unit_of_work() as db:
            row = db.get(Customer, dave)
            assert row is not None
            sealed = row.pii_ciphertext
        with pytest.raises(DecryptionFailed):  # ...and finds no personal data to open
            reopened.vault.decrypt("acme", dave, PII_FIELD, sealed)
        with pytest.raises(CustomerIsErased):
            show_customer(reopened, P("acme"), dave)
        assert reshred_erased(reopened) == [("acme", dave, ANY)]
        assert reopened.vault.is_erased("acme", dave)
        found = failures(reopened)
        assert "shredded again" in found[f"key of 0x{dave.hex()} of acme"]
        with pytest.raises(CustomerIsErased):
            export_member(reopened, P("acme"), dave)
        assert reshred_erased(reopened) == []  # once shredded, the next opening finds nothing
    finally:
        reopened.close()


def test_an_erased_members_point_references_cannot_be_linked_to_its_invoices(crm, store):
    """Medium 6: the chain's point references were SHA-256 of the partner's name and the invoice
    number, and the store kept the invoice numbers after erasure: 6 of 6 were linked back. Now every
    reference is keyed under the member's data key, and erasure leaves no invoice number or time of
    the member's in clear in the store."""
    dave = customer(crm, "acme", "Dave")
    invoices = [f"INV-7731{i}-Q" for i in range(6)]
    give_consent(crm, P("acme"), dave, "loyalty")
    earn_points_batch(
        crm, P("acme"), [PointsRequest(dave, 10 + i, external_key=v) for i, v in enumerate(invoices)]
    )
    items = [
        NewInteraction(
            dave,
            "purchase",
            {"total": 1.5},
            external_key=v,
            occurred_at=datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC),
        )
        for v in invoices
    ]
    record_interactions(crm, "acme", items)
    anchor_pending(crm, "acme")
    erase_customer(crm, P("acme"), dave)
    assert not failures(crm)

    # the attack: the partner's name and a list of invoice numbers, hashed as the references were
    refs = {e.ref for e in points_events(crm.coalition.loyalty, crm.signer("acme").address)}
    guesses = {hashlib.sha256(f"acme\x00{v}".encode()).digest() for v in invoices}
    assert len(refs & guesses) == 0
    with crm.unit_of_work() as db:
        rows = list(db.exec(select(Interaction).where(Interaction.member_id == dave)))
        events = list(db.exec(select(PointEvent).where(PointEvent.member_id == dave)))
    assert len(rows) == 6 and len(events) == 6
    assert all(r.external_key is None and r.occurred_at.year == 1970 for r in rows)
    assert all(e.external_key is None for e in events)
    if crm.engine.dialect.name == "sqlite":  # the files themselves, free pages and WAL included
        store_file = Path(str(crm.engine.url.database))
        files = [store_file, Path(f"{store_file}-wal"), Path(crm.settings.home) / "keys.sqlite"]
        held = b"".join(f.read_bytes() for f in files if f.exists())
        assert sum(held.count(v.encode()) for v in invoices) == 0
        assert held.count(b"2026-03-04") == 0


def test_a_home_holding_one_partner_reports_the_other_logs_as_not_held_here(crm, store, tmp_path):
    """A low of issue 30: a home with one partner failed `verify --all` for every other partner's log."""
    accounts = crm.coalition.chain.backend.accounts
    alone = Crm.open(
        Settings(environment="development", home=tmp_path / "borealis-only", batch_max_leaves=8),
        crm.coalition,
    )
    try:
        register_partner(alone, "borealis", accounts[1])
        report = verify(alone, OPERATOR)
        assert not report.failures, report.failures
        elsewhere = {r.label: r.detail for r in report.results if r.outcome is Outcome.NOT_HELD}
        assert set(elsewhere) == {f"log of {accounts[0].address}", f"log of {accounts[2].address}"}
        assert all("a partner this home does not hold" in d for d in elsewhere.values())
        # a partner whose key the home holds is its own: its store lost it
        alone.signers["cafe"] = accounts[2]
        found = {f.label: f.detail for f in verify(alone, OPERATOR).failures}
        assert "this home holds its key" in found[f"log of {accounts[2].address}"]
    finally:
        alone.close()


def test_a_signed_consent_relayed_by_another_partner_counts_as_signed_on_chain(crm, store):
    """Medium 4: a member's signed consent towards cafe, relayed by borealis, left cafe's `verify` and
    `reconcile` failing for good (no receipt in cafe's store). Now it counts as signed on chain, cafe
    follows it into its store, and a withdrawal relayed anywhere stops cafe's processing at once."""
    key = Account.create()
    bea = register_customer(
        crm,
        P("acme"),
        CustomerCreate(name="Bea", email="bea@example.org"),
        signer=key.address,
        binding=customer_binding(crm, key),
    )
    cafe, loyalty = crm.signer("cafe").address, purpose_id("loyalty")

    def signed_via(relayer: str, status: ChainConsentStatus) -> bytes:
        receipt = hashlib.sha256(os.urandom(32)).digest()  # the relaying partner's receipt document
        authorization = crm.coalition.members.authorize_consent(key, bea, cafe, loyalty, status, receipt, 0)
        crm.coalition.consent.record_signed(
            crm.signer(relayer), bea, cafe, loyalty, status, receipt, 0, authorization
        )
        return receipt

    given = signed_via("borealis", ChainConsentStatus.GIVEN)
    report = verify(crm, OPERATOR)
    assert not report.failures, report.failures
    (relayed,) = [r for r in report.results if r.label == f"consent record 0x{given.hex()} of cafe"]
    assert relayed.outcome is Outcome.PROVEN and "relayed by borealis" in relayed.detail
    assert reconcile_store(crm, OPERATOR).ok
    earn_points(crm, P("cafe"), PointsRequest(bea, 5))  # the chain's consent governs

    assert follow_consents(crm, P("cafe")).recorded == 1
    assert follow_consents(crm, P("cafe")).recorded == 0  # idempotent
    (followed,) = consent_history(crm, OPERATOR, bea, "cafe")
    assert followed.on_chain and followed.receipt.status is ConsentStatus.GIVEN
    assert not failures(crm)

    withdrawn = signed_via("acme", ChainConsentStatus.WITHDRAWN)  # withdrawn at acme, for cafe
    with pytest.raises(ConsentRequired):
        earn_points(crm, P("cafe"), PointsRequest(bea, 5))
    assert not failures(crm) and reconcile_store(crm, OPERATOR).ok
    assert follow_consents(crm, OPERATOR).withdrawn == 1
    history = consent_history(crm, OPERATOR, bea, "cafe")
    assert [e.receipt.status for e in history][-1] is ConsentStatus.WITHDRAWN and all(
        e.on_chain for e in history
    )
    assert withdrawn != given

    # relayed by the controller itself, the receipt is the controller's own: gone, it is missing
    own = signed_via("cafe", ChainConsentStatus.GIVEN)
    found = failures(crm)
    assert "the store has no receipt for" in found[f"consent record 0x{own.hex()} of cafe"]


def test_records_in_flight_are_pending_not_missing_and_anchor_settles_them(crm, store):
    """Seen as a new user (issue 30): an import stopped with transactions in flight (sent, mined, not
    yet settled in the store) was reported as missing records; they are pending, and `anchor` (what
    verify advises) settles them."""
    dave = customer(crm, "acme", "Dave")
    stage_consents(crm, P("acme"), [dave], "loyalty")
    send_staged_consents(crm, P("acme"), wait=False)
    stage_earnings(crm, P("acme"), [PointsRequest(dave, 7, external_key="F-1")])
    send_staged_points(crm, P("acme"), wait=False)  # mined at once here; the store settles it later

    report = verify(crm, OPERATOR)
    assert not report.failures, report.failures
    pending = {r.label.split(" ")[0]: r.detail for r in report.results if r.outcome is Outcome.UNANCHORED}
    assert "mined, not yet settled" in pending["consent"] and "mined, not yet settled" in pending["point"]
    assert send_waiting(crm, OPERATOR).total == 2  # what `ledgercrm anchor` runs first: settled
    report = verify(crm, OPERATOR)
    assert not report.problems, report.problems
