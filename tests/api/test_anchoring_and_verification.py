import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
from sqlmodel import col, select, update

from api.errors import LogOutOfStep
from api.evidence import anchoring, outbox
from api.evidence.anchoring import anchor_due, anchor_pending, pending_leaves
from api.evidence.recording import NewInteraction, record_interactions
from api.evidence.verification import Outcome, verify_all, verify_interaction
from ledger.clients.anchor import AnchorClient
from ledger.errors import AnchorRootAlreadyAnchored
from offchain.models import AnchorStatus, Batch, Interaction
from offchain.repositories import batches

# The rules these tests hold are Python's, above the store's SQL and the chain's node: each store and
# each chain is taken once, PostgreSQL with eth-tester and SQLite with anvil, not every pair (PostgreSQL
# with anvil: ~8 s, to test_outbox_senders.py's two senders on PostgreSQL; SQLite with eth-tester: ~7 s,
# to the same senders on a SQLite home, and a direct write waiting for a sender, on both stores)
two_combinations = pytest.mark.parametrize(
    ("db_url", "session_coalition"),
    [("sqlite", "anvil"), ("postgresql", "eth-tester")],
    indirect=True,
)


def record(crm, member, count, start=0):
    items = [
        NewInteraction(member, "purchase", {"invoice": f"INV-{i}", "total": i * 1.5}, external_key=f"INV-{i}")
        for i in range(start, start + count)
    ]
    return record_interactions(crm, "acme", items).recorded


def test_pending_leaves_are_batched_anchored_and_verified(crm, alice):
    ids = record(crm, alice, 20)
    assert pending_leaves(crm, "acme")[0] == 20
    assert anchor_due(crm, "acme")  # 20 >= batch_max_leaves (8)
    before = crm.coalition.anchor.batch_count()
    outcomes = anchor_pending(crm, "acme")
    assert [o.size for o in outcomes] == [8, 8, 4]
    assert crm.coalition.anchor.batch_count() == before + 3  # one transaction per batch
    assert pending_leaves(crm, "acme")[0] == 0
    with crm.unit_of_work() as db:
        rows = db.exec(select(Interaction).order_by(col(Interaction.id))).all()
    with crm.unit_of_work() as db:
        statuses = {db.get_one(Batch, r.batch_id).status for r in rows}
    assert statuses == {AnchorStatus.ANCHORED}
    assert [r.leaf_index for r in rows] == list(range(1, 21))  # one log after its genesis leaf (leaf 0)
    assert crm.coalition.anchor.head(crm.signer("acme").address).size == 21  # the genesis leaf and 20
    for interaction_id in ids[:3] + ids[-2:]:
        assert verify_interaction(crm, "acme", interaction_id).outcome is Outcome.VERIFIED
    report = verify_all(crm)
    assert report.ok and report.counts[Outcome.VERIFIED] == 20


@two_combinations
def test_age_threshold_makes_a_small_batch_due(crm, alice):
    record(crm, alice, 2)
    assert not anchor_due(crm, "acme")
    assert anchor_due(crm, "acme", now=datetime.now(UTC) + timedelta(seconds=61))


@two_combinations
def test_unanchored_records_are_reported(crm, alice):
    record(crm, alice, 3)
    report = verify_all(crm, "acme")
    assert not report.ok and report.counts[Outcome.UNANCHORED] == 3


@two_combinations
def test_edits_behind_the_systems_back_are_detected(crm, alice):
    ids = record(crm, alice, 8)
    anchor_pending(crm, "acme")
    with crm.unit_of_work() as db:
        flipped = db.get(Interaction, ids[0])
        flipped.payload_ciphertext = flipped.payload_ciphertext[:-1] + bytes(
            [flipped.payload_ciphertext[-1] ^ 1]
        )
        moved = db.get(Interaction, ids[1])
        moved.occurred_at = moved.occurred_at - timedelta(days=30)
        forged = db.get(Interaction, ids[2])
        forged.leaf_hash = bytes(32)
        swapped = db.get(Interaction, ids[3])
        # a real ciphertext of another interaction of the same customer: decrypts, but is not this leaf's
        swapped.payload_ciphertext = db.get(Interaction, ids[4]).payload_ciphertext
        db.delete(db.get(Interaction, ids[5]))
    report = verify_all(crm, "acme")
    by_id = {r.interaction_id: r for r in report.results}
    assert "does not decrypt" in by_id[ids[0]].detail
    assert "occurredAt" in by_id[ids[1]].detail
    assert "not in the anchored batch" in by_id[ids[2]].detail
    assert "does not match its committed leaf hash" in by_id[ids[3]].detail
    assert report.counts[Outcome.MISSING] == 1
    assert report.counts[Outcome.TAMPERED] == 4
    assert by_id[ids[6]].outcome is Outcome.VERIFIED
    assert verify_interaction(crm, "acme", ids[2]).outcome is Outcome.TAMPERED


@two_combinations
def test_a_crash_before_sending_loses_nothing_and_anchors_once(crm, alice, monkeypatch):
    record(crm, alice, 5)
    before = crm.coalition.anchor.batch_count()

    def crash(signed):
        raise KeyboardInterrupt("killed after the hash was written, before the send")

    monkeypatch.setattr(crm.coalition.anchor, "broadcast", crash)
    with pytest.raises(KeyboardInterrupt):
        anchor_pending(crm, "acme")
    with crm.unit_of_work() as db:
        (batch,) = db.exec(select(Batch)).all()
        assert batch.status is AnchorStatus.SUBMITTED and batch.tx_hash
    monkeypatch.undo()
    anchor_pending(crm, "acme")
    assert crm.coalition.anchor.batch_count() == before + 1
    assert verify_all(crm, "acme").counts[Outcome.VERIFIED] == 5


@two_combinations
def test_a_crash_after_sending_is_not_anchored_twice(crm, alice, monkeypatch):
    record(crm, alice, 5)
    before = crm.coalition.anchor.batch_count()
    real = outbox.Outbox.confirm

    def crash(self, mined):
        if self.rows is batches.OUTBOX:
            raise KeyboardInterrupt("killed after the transaction was mined, before the store heard of it")
        return real(self, mined)

    monkeypatch.setattr(outbox.Outbox, "confirm", crash)
    with pytest.raises(KeyboardInterrupt):
        anchor_pending(crm, "acme")
    assert crm.coalition.anchor.batch_count() == before + 1
    monkeypatch.setattr(outbox.Outbox, "confirm", real)
    outcomes = anchor_pending(crm, "acme")
    assert crm.coalition.anchor.batch_count() == before + 1  # recognised by its hash, not resent
    assert [o.size for o in outcomes] == [5]
    assert verify_all(crm, "acme").counts[Outcome.VERIFIED] == 5


@two_combinations
def test_a_crash_while_batching_leaves_a_pending_batch_that_resumes(crm, alice):
    record(crm, alice, 3)
    with crm.unit_of_work() as db:  # the batch is built and its anchor signed: the process dies here
        built = anchoring._Anchors(crm, "acme").next_batch(8)(db)
    assert built is not None
    (batch_id,), _ = built
    with crm.unit_of_work() as db:
        db.exec(update(Batch).values(status=AnchorStatus.PENDING))
    assert batch_id is not None
    outcomes = anchor_pending(crm, "acme")
    assert [o.batch_id for o in outcomes] == [batch_id]
    assert verify_all(crm, "acme").ok


# --- the store's log and the chain's, in step --------------------------------------------------------


def batched(crm, member, count, start=0):
    """`record`, each interaction also put in a pending batch (as an import records them)."""
    items = [
        NewInteraction(member, "purchase", {"invoice": f"INV-{i}"}, external_key=f"INV-{i}")
        for i in range(start, start + count)
    ]
    return record_interactions(crm, "acme", items, batch=True).batches


def _nonce(crm) -> int:
    return int(crm.coalition.chain.w3.eth.get_transaction_count(crm.signer("acme").address, "pending"))


@two_combinations
def test_a_store_whose_next_batch_skips_leaves_the_chain_has_not_got_signs_nothing(crm, alice):
    record(crm, alice, 8)
    anchor_pending(crm, "acme")  # the chain's head: 9 leaves (the genesis leaf and 8)
    pending = batched(crm, alice, 3, start=8)
    with crm.unit_of_work() as db:  # a broken (or doctored) store: its next batch claims to start at 11
        db.exec(update(Batch).where(col(Batch.id).in_(pending)).values(first_index=11))
    before = _nonce(crm)
    with pytest.raises(
        LogOutOfStep, match="log on chain has 9 leaves; the store's next batch starts at leaf 11"
    ):
        anchoring.submit(crm, "acme", pending)
    assert _nonce(crm) == before  # nothing signed, nothing sent
    assert crm.coalition.anchor.head(crm.signer("acme").address).size == 9


@two_combinations
def test_a_store_older_than_the_chain_is_refused_before_anything_is_signed(crm, alice):
    record(crm, alice, 8)
    anchor_pending(crm, "acme")
    batched(crm, alice, 2, start=8)
    with crm.unit_of_work() as db:
        (batch,) = batches.pending(db, crm.partner(db, "acme").id, 1)
        root, size = bytes(batch.root), batch.first_index + batch.size
        proof = bytes(batch.consistency or b"")
    # the chain moved on without this store (say, a backup restored after the batch was anchored)
    consistency = [proof[i : i + 32] for i in range(0, len(proof), 32)]
    crm.coalition.anchor.anchor(crm.signer("acme"), root, size, consistency)
    before = _nonce(crm)
    with pytest.raises(LogOutOfStep, match="the store is older than the chain"):
        anchoring.submit(crm, "acme", [batch.id])
    assert _nonce(crm) == before


def _asked(monkeypatch, client, names=("head", "lookup", "wait")) -> list[str]:
    """The names of `client`'s views and lookups called from here on, in order."""
    asked: list[str] = []

    def noted(name, real):
        def call(*args):
            asked.append(name)
            return real(*args)

        return call

    for name in names:
        monkeypatch.setattr(client, name, noted(name, getattr(client, name)))
    return asked


@two_combinations
def test_a_batch_after_the_head_this_process_saw_mined_is_signed_without_reading_the_head(
    crm, alice, monkeypatch
):
    record(crm, alice, 8)
    anchor_pending(crm, "acme")  # mined and confirmed here: its receipt says the head is at 9
    pending = batched(crm, alice, 3, start=8)
    asked = _asked(monkeypatch, crm.coalition.anchor, ("head",))
    anchoring.submit(crm, "acme", pending)
    assert asked == []
    monkeypatch.undo()
    assert [o.size for o in anchoring.settle(crm, "acme")] == [3]
    assert crm.coalition.anchor.head(crm.signer("acme").address).size == 12


@two_combinations
def test_a_head_another_process_anchored_since_is_refused_by_the_contract_and_nothing_is_sent(crm, alice):
    """This process saw the head at 9; another one holding the partner's key anchors the store's next
    batch meanwhile. The head is not read again, so the contract's simulation is what refuses it."""
    record(crm, alice, 8)
    anchor_pending(crm, "acme")
    (batch_id,) = batched(crm, alice, 2, start=8)
    with crm.unit_of_work() as db:
        (batch,) = batches.pending(db, crm.partner(db, "acme").id, 1)
        root, size, proof = bytes(batch.root), batch.first_index + batch.size, bytes(batch.consistency)
    elsewhere = AnchorClient(crm.coalition.chain, crm.coalition.anchor.contract)  # its own process
    elsewhere.anchor(crm.signer("acme"), root, size, [proof[i : i + 32] for i in range(0, len(proof), 32)])
    assert crm.coalition.anchor.size_seen(crm.signer("acme").address) == 9
    before = _nonce(crm)
    with pytest.raises(AnchorRootAlreadyAnchored):
        anchoring.submit(crm, "acme", [batch_id])
    assert _nonce(crm) == before
    with crm.unit_of_work() as db:  # still pending: nothing claimed it
        assert [b.id for b in batches.pending(db, crm.partner(db, "acme").id, 1)] == [batch_id]


def test_batches_in_flight_that_take_the_head_to_the_next_batch_are_not_waited_for(crm, alice, monkeypatch):
    """Pipelined, each chunk's anchor follows the previous one before that is sent (on a node: the
    sender thread, slowed down here so that it certainly has not): in step, and nothing waits for it."""
    backend = crm.coalition.chain.backend
    slow = backend.tx_context

    def tx_context(*args, **kwargs):
        if threading.current_thread() is not threading.main_thread():
            time.sleep(0.5)
        return slow(*args, **kwargs)

    monkeypatch.setattr(backend, "tx_context", tx_context)
    first = batched(crm, alice, 8)
    asked = _asked(monkeypatch, crm.coalition.anchor)
    with crm.coalition.chain.pipelined():
        anchoring.submit(crm, "acme", first)  # leaves 1..8: the chain's head is read (1), then queued
        assert asked == ["head"]
        second = batched(crm, alice, 4, start=8)
        anchoring.submit(crm, "acme", second)  # starts at 9, where the batch in flight ends
        assert asked == ["head"]  # neither the head (the node is busy) nor the batch in flight asked
    monkeypatch.undo()
    outcomes = anchoring.settle(crm, "acme")
    assert [o.size for o in outcomes] == [8, 4]
    assert crm.coalition.anchor.head(crm.signer("acme").address).size == 13
    assert verify_all(crm, "acme").ok
