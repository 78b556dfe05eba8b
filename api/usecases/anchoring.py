"""The anchoring outbox: pending leaves -> a Merkle batch -> one `anchor` transaction.

Each step is committed before the next one starts, so a crash at any point loses nothing and anchors
nothing twice:
1. a batch row (pending) is written together with each interaction's batch id, leaf index and proof;
2. the anchor transaction is signed, and its hash written (submitted), *before* it is sent;
3. once mined, the on-chain batch id and block are written (anchored).
`resume` picks up any batch left in step 1 or 2: a submitted batch whose transaction the node knows is
waited for, never sent again; only one the node never saw is signed anew. `anchor_pending` takes each
batch through all three steps before the next; `submit_pending` (imports) stops after sending each one,
`settle_mined` settles those already mined, and `resume` then settles them all.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

from sqlalchemy import bindparam, func, update
from sqlmodel import Session, col, select

from api.usecases.context import Crm
from ledger.clients import AnchoredBatch
from ledger.merkle import MerkleTree
from offchain.models import AnchorStatus, Batch, Interaction

UNFINISHED = (AnchorStatus.PENDING, AnchorStatus.SUBMITTED)


@dataclass(frozen=True)
class AnchorOutcome:
    batch_id: int  # the store's id
    onchain_batch_id: int
    size: int
    root: bytes
    block_number: int


def pending_leaves(crm: Crm, partner_name: str) -> tuple[int, datetime | None]:
    """How many interactions wait for a batch, and when the oldest of them was recorded."""
    with crm.unit_of_work() as db:
        partner = crm.partner(db, partner_name)
        count, oldest = db.exec(
            select(func.count(), func.min(Interaction.created_at)).where(
                Interaction.partner_id == partner.id, col(Interaction.batch_id).is_(None)
            )
        ).one()
    return int(count), oldest


def anchor_due(crm: Crm, partner_name: str, now: datetime | None = None) -> bool:
    """Whether the size or age threshold of the settings says a batch should go out now."""
    count, oldest = pending_leaves(crm, partner_name)
    if count == 0:
        return False
    age = (now or datetime.now(UTC)) - oldest if oldest else timedelta(0)
    return count >= crm.settings.batch_max_leaves or age.total_seconds() >= crm.settings.batch_max_age_seconds


def anchor_pending(crm: Crm, partner_name: str, max_leaves: int | None = None) -> list[AnchorOutcome]:
    """Finish any interrupted batch, then anchor every pending leaf, `max_leaves` per batch."""
    size = max_leaves or crm.settings.batch_max_leaves
    outcomes = resume(crm, partner_name)
    while (batch_id := _build_batch(crm, partner_name, size)) is not None:
        outcomes.append(anchor_batch(crm, partner_name, batch_id))
    return outcomes


def resume(crm: Crm, partner_name: str) -> list[AnchorOutcome]:
    """Complete every batch a previous run left pending or submitted."""
    with crm.unit_of_work() as db:
        partner = crm.partner(db, partner_name)
        unfinished = db.exec(
            select(Batch.id)
            .where(Batch.partner_id == partner.id, col(Batch.status).in_(UNFINISHED))
            .order_by(col(Batch.id))
        ).all()
    return [anchor_batch(crm, partner_name, batch_id) for batch_id in unfinished if batch_id is not None]


def new_single_leaf_batch(partner_id: int, leaf: bytes) -> Batch:
    """A one-leaf batch for a record that is not an interaction (an erasure receipt), in the outbox."""
    return Batch(partner_id=partner_id, root=MerkleTree([leaf]).root, size=1)


def _build_batch(crm: Crm, partner_name: str, max_leaves: int) -> int | None:
    with crm.unit_of_work() as db:
        partner = crm.partner(db, partner_name)
        rows = db.exec(
            select(Interaction.id, Interaction.leaf_hash)
            # the (batch_id, partner_id, id) index yields them in order
            .where(col(Interaction.batch_id).is_(None), Interaction.partner_id == partner.id)
            .order_by(col(Interaction.id))
            .limit(max_leaves)
            .with_for_update(skip_locked=True)  # PostgreSQL: two workers never batch the same leaf
        ).all()
        if not rows:
            return None
        batch_id, placed = new_batch(db, crm.pid(partner), [bytes(leaf) for _, leaf in rows])
        # Core executemany by primary key: loading and flushing a thousand ORM objects (ciphertexts
        # included) cost more than the rest of anchoring.
        table = Interaction.__table__  # type: ignore[attr-defined]
        db.connection().execute(
            update(table)
            .where(table.c.id == bindparam("row_id"))
            .values(batch_id=bindparam("batch"), leaf_index=bindparam("index"), proof=bindparam("path")),
            [
                {"row_id": row_id, "batch": batch_id, "index": index, "path": proof}
                for (row_id, _), (index, proof) in zip(rows, placed, strict=True)
            ],
        )
        return batch_id


def new_batch(db: Session, partner_id: int, leaves: Sequence[bytes]) -> tuple[int, list[tuple[int, bytes]]]:
    """Write a pending batch of `leaves` (in this order) to the outbox: its store id, and each leaf's
    index and inclusion proof (sibling hashes from the leaf up, concatenated) for its interaction row."""
    tree = MerkleTree(leaves)
    batch = Batch(partner_id=partner_id, root=tree.root, size=tree.size)
    db.add(batch)
    db.flush()
    assert batch.id is not None
    return batch.id, [(index, b"".join(tree.proof(index))) for index in range(tree.size)]


def anchor_batch(crm: Crm, partner_name: str, batch_id: int) -> AnchorOutcome:
    """Take one batch of the outbox as far as anchored, from whatever step it was left at."""
    anchor = crm.coalition.anchor
    batch = _load(crm, batch_id)
    found = _settled(crm, batch)
    if isinstance(found, AnchorOutcome):
        return found
    if found == "pending":
        assert batch.tx_hash is not None
        return _mark_anchored(crm, batch_id, anchor.wait_anchor(batch.tx_hash))
    # pending in the store, or the node never saw it (the crash came between writing the hash and sending)
    return _mark_anchored(crm, batch_id, anchor.wait_anchor(_submit(crm, partner_name, batch)))


def settle_mined(crm: Crm, batch_ids: Sequence[int]) -> tuple[list[AnchorOutcome], list[int]]:
    """Mark anchored those of these submitted batches whose transactions are mined, without waiting for
    the others: the outcomes, and the batches still in flight (to settle later, or by `resume`, which
    also resends one the node never saw). A long import settles its earlier chunks' anchors as it goes,
    so its batches do not all read "submitted" until it ends."""
    settled: list[AnchorOutcome] = []
    waiting: list[int] = []
    for batch_id in batch_ids:
        found = _settled(crm, _load(crm, batch_id))
        if isinstance(found, AnchorOutcome):
            settled.append(found)
        else:
            waiting.append(batch_id)
    return settled, waiting


def _load(crm: Crm, batch_id: int) -> Batch:
    with crm.unit_of_work() as db:
        batch = db.get(Batch, batch_id)
        assert batch is not None
        return batch


def _settled(crm: Crm, batch: Batch) -> AnchorOutcome | Literal["pending"] | None:
    """A batch's outcome if it is anchored or its transaction is mined (then marked anchored here);
    "pending" while the node holds its transaction unmined; None if it has no transaction the node knows."""
    if batch.status is AnchorStatus.ANCHORED:
        return _outcome(batch)
    if batch.status is not AnchorStatus.SUBMITTED or not batch.tx_hash:
        return None
    assert batch.id is not None
    found = crm.coalition.anchor.lookup_anchor(batch.tx_hash)
    return found if found is None or found == "pending" else _mark_anchored(crm, batch.id, found)


def submit_pending(crm: Crm, partner_name: str, max_leaves: int | None = None) -> int:
    """Batch every pending leaf and send each batch's anchor without waiting for it to be mined; the
    number of batches sent. `resume` then settles them all: the node mines while we build the next
    batch, instead of each batch waiting for the one before. Batches left unfinished by an earlier run
    are not touched here (`resume` finishes those too)."""
    size = max_leaves or crm.settings.batch_max_leaves
    sent = 0
    while (batch_id := _build_batch(crm, partner_name, size)) is not None:
        submit(crm, partner_name, batch_id)
        sent += 1
    return sent


def submit(crm: Crm, partner_name: str, batch_id: int) -> None:
    """Send a pending batch's anchor without waiting for it (`resume` settles it)."""
    with crm.unit_of_work() as db:
        batch = db.get(Batch, batch_id)
        assert batch is not None and batch.status is AnchorStatus.PENDING
    _submit(crm, partner_name, batch)


def _submit(crm: Crm, partner_name: str, batch: Batch) -> str:
    """Sign the batch's anchor, record its hash (submitted), then send it: the outbox's steps 2 and 3."""
    anchor = crm.coalition.anchor
    signed = anchor.prepare_anchor(crm.signer(partner_name), batch.root, batch.size)
    with crm.unit_of_work() as db:
        db.exec(
            update(Batch)
            .where(col(Batch.id) == batch.id)
            .values(status=AnchorStatus.SUBMITTED, tx_hash=signed.tx_hash, submitted_at=datetime.now(UTC))
        )
    anchor.broadcast_anchor(signed)
    return signed.tx_hash


def _mark_anchored(crm: Crm, batch_id: int, anchored: AnchoredBatch) -> AnchorOutcome:
    with crm.unit_of_work() as db:
        batch = db.get(Batch, batch_id)
        assert batch is not None
        batch.status = AnchorStatus.ANCHORED
        batch.tx_hash = anchored.tx.tx_hash
        batch.onchain_batch_id = anchored.batch_id
        batch.block_number = anchored.block_number
        batch.anchored_at = datetime.now(UTC)
        db.flush()
        return _outcome(batch)


def _outcome(batch: Batch) -> AnchorOutcome:
    assert batch.id is not None and batch.onchain_batch_id is not None and batch.block_number is not None
    return AnchorOutcome(batch.id, batch.onchain_batch_id, batch.size, batch.root, batch.block_number)
