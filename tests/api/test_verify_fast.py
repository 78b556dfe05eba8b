"""`verify_all` reads rows in chunks, keys in bulk and proofs against whole-batch trees; these tests hold
it to the outcomes of the straightforward row-by-row check it replaced (`reference_verify_all`, kept
here verbatim as the oracle), on a store with every kind of damage the verifier knows about."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import func
from sqlmodel import Session, col, select, update

from api.context import Crm
from api.errors import CheckStopped, InvalidInput
from api.evidence import documents, helper, verification
from api.evidence.anchoring import anchor_pending
from api.evidence.documents import PAYLOAD_FIELD, interaction_document
from api.evidence.recording import NewInteraction, record_interactions
from api.evidence.verification import Outcome, Verification, VerificationReport, verify_all
from api.principal import Principal
from api.usecases.customers import register_customer
from api.usecases.erasure import erase_customer
from api.usecases.verification import verify
from ledger.clients import BatchInfo
from ledger.errors import AnchorUnknownBatch
from ledger.merkle import MerkleTree, leaf_hash, verify_inclusion
from offchain.canonical import Canonical
from offchain.errors import CustomerErased, DecryptionFailed
from offchain.models import (
    AnchorStatus,
    Batch,
    CustomerCreate,
    ErasureReceipt,
    Interaction,
    InteractionKind,
    Partner,
)
from offchain.repositories.interactions import InteractionRow

P = Principal.of_partner

# --- the oracle: verify_all as it was before it was made fast (ORM rows, one key lookup per row) -----


def reference_verify_all(
    crm: Crm, partner_name: str | None = None, member: bytes | None = None
) -> VerificationReport:
    report = VerificationReport()
    roots: dict[int, BatchInfo | None] = {}
    with crm.unit_of_work() as db:
        partners = [crm.partner(db, partner_name)] if partner_name else list(db.exec(select(Partner)))
        for partner in partners:
            batches = {b.id: b for b in db.exec(select(Batch).where(Batch.partner_id == partner.id))}
            query = select(Interaction).where(Interaction.partner_id == partner.id)
            if member is not None:
                query = query.where(Interaction.member_id == member)
            for row in db.exec(query.order_by(col(Interaction.id))):
                batch = batches.get(row.batch_id) if row.batch_id is not None else None
                report.results.append(_reference_check_row(crm, partner.name, row, batch, roots))
            if member is None:
                report.results.extend(_reference_missing_leaves(crm, db, batches.values(), roots))
    return report


def _reference_check_row(crm, partner, row, batch, roots):
    if batch is None or batch.status is not AnchorStatus.ANCHORED or batch.onchain_batch_id is None:
        return Verification(
            row.id, Outcome.UNANCHORED, f"status {AnchorStatus.PENDING if batch is None else batch.status}"
        )
    if row.leaf_index is None or row.proof is None or len(row.proof) % 32:
        return Verification(row.id, Outcome.TAMPERED, "the row has no usable leaf index or proof")
    onchain = _reference_onchain_batch(crm, batch.onchain_batch_id, roots)
    if onchain is None:
        return Verification(row.id, Outcome.TAMPERED, f"the chain has no batch {batch.onchain_batch_id}")
    proof = [row.proof[i : i + 32] for i in range(0, len(row.proof), 32)]
    proven = verify_inclusion(row.leaf_hash, row.leaf_index, onchain.size, proof, onchain.root)
    if not proven.ok:
        return Verification(row.id, Outcome.TAMPERED, f"the leaf is not in the anchored batch: {proven}")
    if row.payload_ciphertext is None:
        return Verification(row.id, Outcome.ERASED, "content erased; the leaf is still proven on chain")
    try:
        document = crm.vault.decrypt(partner, row.member_id, PAYLOAD_FIELD, row.payload_ciphertext)
    except CustomerErased:
        return Verification(row.id, Outcome.ERASED, "the customer's key is erased")
    except DecryptionFailed:
        return Verification(row.id, Outcome.TAMPERED, "the payload does not decrypt under the customer's key")
    if leaf_hash(crm.vault.commit(partner, row.member_id, document)) != row.leaf_hash:
        return Verification(row.id, Outcome.TAMPERED, "the payload does not match its committed leaf hash")
    parsed = json.loads(document)
    expected = {
        "member": "0x" + row.member_id.hex(),
        "kind": str(row.kind),
        "occurredAt": row.occurred_at.astimezone(UTC).isoformat(timespec="microseconds"),
        "externalKey": row.external_key,
    }
    for name, value in expected.items():
        if parsed.get(name) != value:
            return Verification(row.id, Outcome.TAMPERED, f"the row's {name} differs from the committed one")
    return Verification(row.id, Outcome.VERIFIED)


def _reference_missing_leaves(crm, db, batches, roots):
    receipts = {
        r.anchored_batch_id: r.receipt_hash
        for r in db.exec(select(ErasureReceipt).where(col(ErasureReceipt.anchored_batch_id).is_not(None)))
    }
    missing = []
    for batch in batches:
        if batch.status is not AnchorStatus.ANCHORED or batch.onchain_batch_id is None:
            continue
        onchain = _reference_onchain_batch(crm, batch.onchain_batch_id, roots)
        if onchain is None:
            continue
        if batch.id in receipts:
            if onchain.root != leaf_hash(receipts[batch.id]):
                missing.append(Verification(None, Outcome.TAMPERED, f"erasure receipt of batch {batch.id}"))
            continue
        stored = db.exec(select(func.count()).where(Interaction.batch_id == batch.id)).one()
        for _ in range(onchain.size - int(stored)):
            missing.append(
                Verification(None, Outcome.MISSING, f"batch {batch.onchain_batch_id} has a leaf with no row")
            )
    return missing


def _reference_onchain_batch(crm, onchain_id, roots):
    if onchain_id not in roots:
        try:
            roots[onchain_id] = crm.coalition.anchor.batch(onchain_id)
        except AnchorUnknownBatch:
            roots[onchain_id] = None
    return roots[onchain_id]


# --- a store with one of everything -------------------------------------------------------------------


def customer(crm: Crm, partner: str, name: str) -> bytes:
    return register_customer(crm, P(partner), CustomerCreate(name=name, email=f"{name.lower()}@example.org"))


def record(crm: Crm, partner: str, member: bytes, keys: Iterable[str], kind: str = "purchase") -> list[int]:
    start = datetime(2024, 5, 1, 9, 30, tzinfo=UTC)
    items = [
        NewInteraction(
            member,
            kind,
            {"invoice": key, "lines": [{"sku": "A1", "qty": n + 1, "price": 2.5}], "note": 'caf\u00e9 "q"\n'},
            occurred_at=start + timedelta(hours=n),
            external_key=key,
        )
        for n, key in enumerate(keys)
    ]
    return record_interactions(crm, partner, items).recorded


def ids_of(db: Session, keys: list[str]) -> list[int]:
    rows = db.exec(
        select(Interaction.external_key, Interaction.id).where(col(Interaction.external_key).in_(keys))
    )
    found = {key: id_ for key, id_ in rows}
    return [int(found[k] or 0) for k in keys]


@pytest.fixture
def damaged(crm: Crm) -> dict[str, bytes]:
    """acme: alice (lots, with every kind of edit behind the system's back), bob (erased properly),
    dora (shredded without the erasure use case: her ciphertexts are still there), eve (no interactions
    of her own); borealis: carol.
    Plus rows never anchored, and batches that are whole, edited, or gone from the chain."""
    alice, bob, dora = (
        customer(crm, "acme", "Alice"),
        customer(crm, "acme", "Bob"),
        customer(crm, "acme", "Dora"),
    )
    eve = customer(crm, "acme", "Eve")
    carol = customer(crm, "borealis", "Carol")
    # odd keys (a quote, a backslash, non-ASCII, a control character) so the document's tail needs escapes
    odd = ['q"uote', "back\\slash", "gr\u00fc\u00dfe-\u2603", "tab\there", "\U0001f600-emoji"]
    record(crm, "acme", alice, [f"A-{n:02d}" for n in range(30)] + odd)
    record(crm, "acme", bob, [f"B-{n}" for n in range(5)], kind="return")
    record(crm, "acme", dora, [f"D-{n}" for n in range(4)], kind="visit")
    record(crm, "borealis", carol, [f"C-{n}" for n in range(10)])
    anchor_pending(crm, "acme")
    anchor_pending(crm, "borealis")
    record(crm, "acme", alice, ["A-late-1", "A-late-2"])  # pending: never anchored
    erase_customer(crm, P("acme"), bob)
    crm.vault.shred("acme", dora)
    with crm.unit_of_work() as db:
        (a0, a1, a2, a3, a4, a5, a6, a7, a9, a10, a11, a12, a13, a14, a17, a20, a24) = ids_of(
            db, [f"A-{n:02d}" for n in (0, 1, 2, 3, 4, 5, 6, 7, 9, 10, 11, 12, 13, 14, 17, 20, 24)]
        )
        (c0, c3) = ids_of(db, ["C-0", "C-3"])

        def row(i: int) -> Interaction:
            found = db.get(Interaction, i)
            assert found is not None
            return found

        def flip(data: bytes, at: int = -1) -> bytes:
            changed = bytearray(data)
            changed[at] ^= 1
            return bytes(changed)

        # batch of A-00..07 (tree still builds from the leaves: per-row differences fall back)
        row(a0).payload_ciphertext = flip(row(a0).payload_ciphertext or b"")
        row(a1).occurred_at = row(a1).occurred_at - timedelta(days=30)
        row(a2).payload_ciphertext = row(a4).payload_ciphertext  # decrypts, but is not this leaf's
        row(a3).proof = flip(row(a3).proof or b"", 5)  # proof leads elsewhere
        row(a5).kind = InteractionKind.EMAIL
        row(a6).external_key = "A-06-renamed"
        row(a7).member_id = eve  # another acme customer: the AAD no longer matches
        # batch of A-08..15: one row gone (no tree: every row checks its own proof), a forged leaf hash,
        # a truncated proof, an index outside the batch, a proof removed, a ciphertext of another partner
        row(a9).leaf_hash = bytes(32)
        db.delete(row(a10))
        row(a11).proof = (row(a11).proof or b"")[:-32]
        row(a12).leaf_index = 99
        row(a13).proof = None
        row(a14).payload_ciphertext = row(c0).payload_ciphertext
        # borealis's batch of C-0..7, complete but with a forged leaf: the tree's root is not the chain's
        # (its audit path for that leaf is still the stored proof, so only the root comparison catches it)
        row(c3).leaf_hash = bytes(32)
        db.flush()
        # batch of A-16..23: the chain has no such batch; batch of A-24..31: not anchored after all
        batch_17 = db.get(Batch, row(a17).batch_id)
        assert batch_17 is not None
        batch_17.onchain_batch_id = 10_000
        batch_24 = db.get(Batch, row(a24).batch_id)
        assert batch_24 is not None and row(a20).batch_id != batch_24.id
        batch_24.status = AnchorStatus.SUBMITTED
    return {"alice": alice, "bob": bob, "dora": dora, "eve": eve, "carol": carol}


# The damaged store's whole-log checks are held to the row-by-row ones in process (eth-tester); on anvil
# (the node as a process of its own, where a run takes a helper process) the helper's test below holds
# the whole run to the one-process run and to the row-by-row one, on both stores. The helper's failures
# are tried on one store.
ETH_TESTER = pytest.mark.parametrize("session_coalition", ["eth-tester"], indirect=True)
ANVIL = pytest.mark.parametrize("session_coalition", ["anvil"], indirect=True)
SQLITE = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)


def by_detail(report: VerificationReport) -> dict[str, int]:
    found: dict[str, int] = {}
    for r in report.results:
        key = f"{r.outcome}: {r.detail.split(':')[0]}"
        found[key] = found.get(key, 0) + 1
    return found


def rows_only(report: VerificationReport) -> list[tuple[int | None, Outcome]]:
    """Each row's outcome (the wording may differ: the whole-log run knows more about why)."""
    return sorted((r.interaction_id, r.outcome) for r in report.results if r.interaction_id is not None)


@ETH_TESTER
def test_the_whole_log_check_gives_each_row_its_row_by_row_outcome(
    crm: Crm, damaged: dict[str, bytes], monkeypatch
):
    """The whole-log run (leaves rebuilt head by head, proofs compared with the rebuilt audit paths)
    and the row-by-row run (each member's rows proven on their own against the chain's heads) agree on
    every row; the whole-log run also names what no row shows (the leaf gone, the batch pointed at a
    batch the chain does not have)."""
    report = verify_all(crm)
    one_by_one = VerificationReport()
    for member in damaged.values():
        one_by_one.results.extend(verify_all(crm, member=member).results)
    assert rows_only(report) == rows_only(one_by_one)
    counts = by_detail(report)
    for expected in (
        "tampered: the payload does not decrypt under the customer's key",
        "tampered: the row's occurredAt differs from the committed one",
        "tampered: the row's kind differs from the committed one",
        "tampered: the row's externalKey differs from the committed one",
        "tampered: the payload does not match its committed leaf hash",
        "tampered: the leaf is not in the anchored batch",
        "tampered: points at on-chain batch 10000, which the chain does not have",
        "missing: the chain's head",
        "erased: content erased; the leaf is still proven on chain",
        "unanchored: status submitted",  # its batch was sent, not mined
        "verified: ",
    ):
        assert any(key.startswith(expected) for key in counts), (expected, sorted(counts.items()))
    assert counts["erased: content erased; the leaf is still proven on chain"] == 5
    # dora's key was shredded without the erasure use case: no anchored receipt, so not an erasure
    assert counts["tampered: the customer's key is gone and no erasure of the member is anchored"] == 4
    assert any(r.record.startswith("leaf ") and r.outcome is Outcome.MISSING for r in report.results)
    # chunks of 3 rows: batches and customers straddle chunk boundaries
    monkeypatch.setattr(verification, "ROWS_PER_CHUNK", 3)
    assert verify_all(crm).results == report.results


def test_a_clean_store_verifies_and_every_document_takes_the_fast_path(crm: Crm, alice: bytes, monkeypatch):
    odd = ['q"uote', "back\\slash", "gr\u00fc\u00dfe-\u2603", "bell\x07", "\U0001f600", None]
    items = [
        NewInteraction(alice, kind, {"n": n}, external_key=key)
        for n, (kind, key) in enumerate(zip(list(InteractionKind) * 2, odd, strict=False))
    ]
    record_interactions(crm, "acme", items)
    record(crm, "acme", alice, [f"K-{n}" for n in range(11)])
    anchor_pending(crm, "acme")

    def no_parsing(partner: object, row: object, document: object) -> None:
        raise AssertionError(f"parsed the document of {row}")

    monkeypatch.setattr(documents, "disagreement", no_parsing)
    report = verify_all(crm)
    assert report.ok and report.counts[Outcome.VERIFIED] == 17


def test_erasure_during_a_run_wins(crm: Crm, alice: bytes, monkeypatch):
    """The keys read for a chunk are not used after a shred: no row checked afterwards verifies (and,
    with no erasure receipt anchored, a key gone is not an erasure but a finding)."""
    record(crm, "acme", alice, [f"K-{n}" for n in range(6)])
    anchor_pending(crm, "acme")
    real = crm.vault.bulk_keys

    def then_shred(partner, members):
        keys = real(partner, members)
        crm.vault.shred("acme", alice)  # e.g. another thread erasing the customer right now
        return keys

    monkeypatch.setattr(crm.vault, "bulk_keys", then_shred)
    report = verify_all(crm)
    assert [r.detail for r in report.results] == [
        "the customer's key is gone and no erasure of the member is anchored"
    ] * 6


def test_verify_interaction_still_checks_one_row(crm: Crm, alice: bytes):
    (first, second) = record(crm, "acme", alice, ["K-1", "K-2"])
    anchor_pending(crm, "acme")
    with crm.unit_of_work() as db:
        db.exec(update(Interaction).where(col(Interaction.id) == second).values(kind=InteractionKind.VISIT))
    assert verification.verify_interaction(crm, "acme", first).outcome is Outcome.VERIFIED
    assert verification.verify_interaction(crm, "acme", second) == Verification(
        second, Outcome.TAMPERED, "the row's kind differs from the committed one"
    )


# --- the two shortcuts, on their own ------------------------------------------------------------------


def _row(member: bytes, kind: InteractionKind, key: str | None, when: datetime) -> InteractionRow:
    return InteractionRow(1, 1, member, kind, key, when, b"", bytes(32), 1, 0, b"")


@settings(max_examples=300, deadline=None)
@given(
    member=st.binary(min_size=32, max_size=32),
    kind=st.sampled_from(list(InteractionKind)),
    key=st.none() | st.text(min_size=1, max_size=20),
    when=st.datetimes(timezones=st.timezones()),
    data=st.dictionaries(st.text(max_size=8), st.integers() | st.text(max_size=8), max_size=4),
    other=st.none() | st.text(min_size=1, max_size=20),
)
def test_the_document_tail_is_exactly_what_parsing_would_find(member, kind, key, when, data, other):
    try:
        document = interaction_document("acme", member, kind, data, when, key)
    except InvalidInput:  # a value canonical JSON refuses (e.g. a lone surrogate): never recorded
        return
    row = _row(member, kind, key, when)
    assert document.endswith(documents.tail("acme", row))
    assert documents.disagreement("acme", row, json.loads(document)) is None
    changed = _row(member, kind, other, when)
    # a row that disagrees never has the document's tail (so it is parsed and reported)
    agrees = documents.disagreement("acme", changed, json.loads(document)) is None
    assert document.endswith(documents.tail("acme", changed)) == agrees


@settings(max_examples=300, deadline=None)
@given(
    partner=st.text(min_size=1, max_size=12),
    member=st.binary(min_size=32, max_size=32),
    kind=st.sampled_from(list(InteractionKind)),
    key=st.none() | st.text(min_size=1, max_size=20),
    when=st.datetimes(timezones=st.timezones()),
    data=st.dictionaries(
        st.text(max_size=8), st.integers(-(2**53), 2**53) | st.text(max_size=8) | st.floats(), max_size=4
    ),
)
def test_a_document_of_data_serialized_ahead_is_byte_for_byte_the_canonical_one(
    partner, member, kind, key, when, data
):
    """Imports hand `interaction_document` their data already in RFC 8785 form (`Canonical`), and the
    document is then put together from its parts: the same bytes as building and serializing it."""
    try:
        ahead = Canonical.of(data)
        expected = interaction_document(partner, member, kind, data, when, key)
    except (InvalidInput, ValueError):  # what canonical JSON refuses (NaN, a lone surrogate): never recorded
        with pytest.raises((InvalidInput, ValueError)):
            interaction_document(partner, member, kind, Canonical.of(data), when, key)
        return
    assert interaction_document(partner, member, kind, ahead, when, key) == expected


@pytest.mark.parametrize("partner, key", [("acme", "K-\ud800"), ("\udfff", "K-1")])
def test_a_lone_surrogate_is_refused_however_the_data_comes(partner, key):
    when = datetime(2024, 1, 1, tzinfo=UTC)
    for data in ({"a": 1}, Canonical.of({"a": 1})):
        with pytest.raises(InvalidInput, match="not valid JSON data"):
            interaction_document(partner, bytes(32), InteractionKind.PURCHASE, data, when, key)


@pytest.mark.parametrize("size", [*range(1, 18), 31, 32, 33, 100])
def test_a_trees_own_audit_paths_are_exactly_the_proofs_verify_inclusion_accepts(size: int):
    tree = MerkleTree.from_data([n.to_bytes(4, "big") for n in range(size)])
    for index in range(size):
        assert verify_inclusion(tree.leaf(index), index, size, tree.proof(index), tree.root).ok


@ETH_TESTER
def test_verified_interactions_are_verify_alls_outcomes_with_the_documents(
    crm: Crm, damaged: dict[str, bytes]
):
    """What scoring and exports read: every row's outcome is the one `verify_all` gives, a document comes
    with exactly the verified rows, and it is the document that was committed (the data as recorded)."""
    for partner in ("acme", "borealis"):
        rows = [r for r in verify_all(crm, partner).results if r.interaction_id is not None]
        found = verification.verified_interactions(crm, partner)
        assert [(v.interaction_id, v.outcome, v.detail) for v in found] == [
            (r.interaction_id, r.outcome, r.detail) for r in rows
        ]
        for item in found:
            assert (item.document is not None) == (item.outcome is Outcome.VERIFIED)
            if item.document is not None:
                assert item.document["partner"] == partner
                assert item.document["member"] == "0x" + item.member.hex()
                assert item.document["data"]["invoice"] == item.document["externalKey"]
    # only some members: their rows, the same outcomes
    alice, carol = damaged["alice"], damaged["carol"]
    some = verification.verified_interactions(crm, "acme", [alice, carol])
    assert some and {v.member for v in some} == {alice}  # carol is borealis's: none of acme's rows
    every = {v.interaction_id: v for v in verification.verified_interactions(crm, "acme")}
    # (the wording may differ: the whole-log run knows more about why a row fails)
    assert all(
        (every[v.interaction_id].outcome, every[v.interaction_id].document) == (v.outcome, v.document)
        for v in some
    )


# --- the content checks in a second process (api/evidence/helper.py) -----------------------------------


@dataclass
class Helped:
    answered: list[int]  # per chunk, the rows the helper's answers decided
    waits: bool = True  # for the helper's every answer first (False: as a run does, taking over)


@pytest.fixture
def beside(monkeypatch) -> Helped:
    """A whole run shares its content checks with a helper process whatever the store's size and chain
    (a test's store is small and its chain may be in process), in chunks of 3 rows, so that partners,
    customers and batches straddle chunks."""
    monkeypatch.setattr(verification, "helps", lambda crm: True)
    monkeypatch.setattr(helper, "MIN_ROWS", 0)
    monkeypatch.setattr(verification, "ROWS_PER_CHUNK", 3)
    helped = Helped([])
    real = verification.Beside.chunk

    def counted(self, partner, index, ids):
        while helped.waits and not self._rows_done:  # every answer in, whatever the machine's load
            self._take()
        found = real(self, partner, index, ids)
        helped.answered.append(len(found or {}))
        return found

    monkeypatch.setattr(verification.Beside, "chunk", counted)
    return helped


@ANVIL
def test_a_run_with_a_second_process_reports_exactly_what_one_process_does(
    crm: Crm, damaged: dict[str, bytes], beside: Helped, monkeypatch
):
    """Every result, in order, in the same words, on a store with every kind of damage (tampered,
    erased, shredded without an erasure, unanchored, missing rows and heads)."""
    with monkeypatch.context() as alone:
        alone.setattr(verification, "helps", lambda crm: False)
        one = verify(crm, Principal.operator())
    assert not beside.answered
    two = verify(crm, Principal.operator())
    assert sum(beside.answered) > 0  # the helper's answers decided rows
    assert list(two.results) == list(one.results) and two.checks == one.checks
    beside.waits = False  # the chunks split between the two processes as the machine's load has it
    assert list(verify(crm, Principal.operator()).results) == list(one.results)
    one_by_one = VerificationReport()
    for member in damaged.values():
        one_by_one.results.extend(verify_all(crm, member=member).results)
    assert rows_only(two) == rows_only(one_by_one)
    assert {r.outcome for r in two.results} >= {
        Outcome.VERIFIED,
        Outcome.TAMPERED,
        Outcome.ERASED,
        Outcome.UNANCHORED,
        Outcome.MISSING,
    }


@ANVIL
@SQLITE
def test_a_shred_after_the_helper_was_forked_wins_over_its_answers(
    crm: Crm, alice: bytes, beside: Helped, monkeypatch
):
    """The helper holds the keys read before it was forked; a shred in the run's process after that
    makes its answers for her rows unusable: none of them verifies (no erasure receipt is anchored, so
    a key gone is a finding)."""
    record(crm, "acme", alice, [f"K-{n}" for n in range(6)])
    anchor_pending(crm, "acme")
    real = verification._Partner.rows_beside

    def shred_first(self, helped):
        crm.vault.shred("acme", alice)  # e.g. another thread erasing her right now
        return real(self, helped)

    monkeypatch.setattr(verification._Partner, "rows_beside", shred_first)
    report = verify(crm, Principal.operator())
    assert [r.detail for r in report.results if r.interaction_id is not None] == [
        "the customer's key is gone and no erasure of the member is anchored"
    ] * 6
    assert sum(beside.answered) > 0  # the helper did answer: its answers were refused


@ANVIL
@SQLITE
def test_a_helper_killed_mid_run_fails_the_run_in_words(crm: Crm, alice: bytes, beside: Helped, monkeypatch):
    record(crm, "acme", alice, [f"K-{n}" for n in range(6)])
    anchor_pending(crm, "acme")
    monkeypatch.setattr(verification, "_helper_work", lambda *args: time.sleep(60))  # never answers
    helpers: list[verification.Beside] = []
    real = verification.Beside.__init__

    def kept(self, *args):
        real(self, *args)
        helpers.append(self)

    monkeypatch.setattr(verification.Beside, "__init__", kept)
    real_rows = verification._Partner.rows_beside

    def kill_first(self, helped):
        os.kill(helped._helper.pid, signal.SIGKILL)
        return real_rows(self, helped)

    monkeypatch.setattr(verification._Partner, "rows_beside", kill_first)
    with pytest.raises(CheckStopped) as stopped:
        verify(crm, Principal.operator())
    assert str(stopped.value) == (
        "the second process checking the interactions' content stopped before it had answered for every"
        " row (it ended, killed by signal 9 (SIGKILL)): the run is incomplete and reports nothing; run"
        " `ledgercrm verify` again"
    )
    assert helpers and helpers[0]._helper.pid is None  # reaped


@ANVIL
@SQLITE
def test_a_helper_that_raises_fails_the_run_naming_only_the_error_kind(
    crm: Crm, alice: bytes, beside: Helped, monkeypatch
):
    record(crm, "acme", alice, ["K-1"])
    anchor_pending(crm, "acme")

    def leaky(*args):
        raise ValueError("plaintext: Alice Quartermain")

    monkeypatch.setattr(verification, "_helper_work", leaky)
    with pytest.raises(CheckStopped, match=r"\(it failed \(ValueError\)\)") as stopped:
        verify(crm, Principal.operator())
    assert "Alice" not in str(stopped.value)
