"""Anchoring: a partner's pending leaves -> a Merkle batch -> one `anchor` transaction, through the
one outbox (api/evidence/outbox.py).

A batch is written (pending) together with each interaction's batch id, leaf index and proof, in one
store transaction; its anchor is then signed, its hash recorded (submitted) and sent; once mined, the
on-chain batch id and block are written (anchored). `anchor_pending` takes each batch through every
step before the next; an import instead `submit`s its batches as it goes, `settle`s those mined so far
without waiting, and at its end settles them all.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlmodel import Session

from api.context import Crm
from api.evidence.outbox import NextBatch, Outbox
from ledger.chain import SignedTx
from ledger.merkle import MerkleTree
from offchain.repositories import batches, interactions
from offchain.repositories.partners import PartnerRecord


@dataclass(frozen=True)
class AnchorOutcome:
    batch_id: int  # the store's id
    onchain_batch_id: int
    size: int
    root: bytes
    block_number: int

    @classmethod
    def of(cls, row: Any) -> AnchorOutcome:
        """From a confirmed batch row (`batches.OUTCOME_COLUMNS`)."""
        return cls(row.id, row.onchain_batch_id, row.size, bytes(row.root), row.block_number)


def new_batch(
    db: Session, partner_id: int, leaves: Sequence[bytes]
) -> tuple[int, bytes, list[tuple[int, bytes]]]:
    """Write a pending batch of `leaves` (in this order): its store id, its root, and each leaf's index
    and inclusion proof (sibling hashes from the leaf up, concatenated) for its interaction row."""
    tree = MerkleTree(leaves)
    batch_id = batches.add(db, partner_id, tree.root, tree.size)
    return batch_id, tree.root, [(index, b"".join(tree.proof(index))) for index in range(tree.size)]


def pending_leaves(crm: Crm, partner_name: str) -> tuple[int, datetime | None]:
    """How many interactions wait for a batch, and when the oldest of them was recorded."""
    with crm.unit_of_work() as db:
        return interactions.pending_summary(db, crm.partner(db, partner_name).id)


def anchor_due(crm: Crm, partner_name: str, now: datetime | None = None) -> bool:
    """Whether the size or age threshold of the settings says a batch should go out now."""
    count, oldest = pending_leaves(crm, partner_name)
    if count == 0:
        return False
    age = (now or datetime.now(UTC)) - oldest if oldest else timedelta(0)
    return count >= crm.settings.batch_max_leaves or age.total_seconds() >= crm.settings.batch_max_age_seconds


def anchor_pending(crm: Crm, partner_name: str, max_leaves: int | None = None) -> list[AnchorOutcome]:
    """Finish any interrupted batch, then anchor every pending leaf, `max_leaves` per batch, each batch
    mined before the next is built."""
    anchors = _Anchors(crm, partner_name)
    outcomes = anchors.settle(wait=True)
    return outcomes + anchors.send(anchors.next_batch(max_leaves), wait=True)


def submit(crm: Crm, partner_name: str, batch_ids: Collection[int]) -> None:
    """Send the anchors of these pending batches without waiting for them (`settle` confirms them)."""
    if not batch_ids:
        return
    anchors = _Anchors(crm, partner_name)
    anchors.send(anchors.next_batch(None, among=batch_ids), wait=False)


def submit_pending(crm: Crm, partner_name: str, max_leaves: int | None = None) -> None:
    """Batch every pending leaf and send each batch's anchor (and any batch left pending) without
    waiting: the node mines while the next batch is built. `settle` then confirms them."""
    anchors = _Anchors(crm, partner_name)
    anchors.send(anchors.next_batch(max_leaves), wait=False)


def settle(crm: Crm, partner_name: str, *, wait: bool = True) -> list[AnchorOutcome]:
    """Mark anchored the partner's sent batches that are mined (with `wait`, waiting for every one the
    node holds); a batch the node never saw goes back to pending, for the next send."""
    return _Anchors(crm, partner_name).settle(wait=wait)


def anchor_batch(crm: Crm, partner_name: str, batch_id: int) -> AnchorOutcome:
    """Take one batch as far as anchored (an erasure receipt's), from wherever it was left."""
    anchors = _Anchors(crm, partner_name)
    anchors.settle(wait=True)
    anchors.send(anchors.next_batch(None, among=[batch_id]), wait=True)
    with crm.unit_of_work() as db:
        (row,) = batches.outcomes(db, [batch_id])
    return AnchorOutcome.of(row)


class _Anchors:
    """The partner's batches in the outbox."""

    def __init__(self, crm: Crm, partner_name: str) -> None:
        self.crm = crm
        with crm.unit_of_work() as db:
            self.partner: PartnerRecord = crm.partner(db, partner_name)
        self.outbox = Outbox(crm, batches.OUTBOX, crm.coalition.anchor)

    def settle(self, *, wait: bool) -> list[AnchorOutcome]:
        return [AnchorOutcome.of(row) for row in self.outbox.settle(self.partner.id, wait=wait)]

    def send(self, next_batch: NextBatch, *, wait: bool) -> list[AnchorOutcome]:
        return [AnchorOutcome.of(row) for row in self.outbox.send(next_batch, wait=wait)]

    def next_batch(self, max_leaves: int | None, among: Collection[int] | None = None) -> NextBatch:
        """The outbox's next transaction: a batch left pending (only those `among`, if given) or else,
        unless `among` is given, a new batch of the oldest unbatched leaves."""
        size = max_leaves or self.crm.settings.batch_max_leaves
        anchor = self.crm.coalition.anchor
        signer = self.crm.signer(self.partner.name)

        def take(db: Session) -> tuple[list[int], SignedTx] | None:
            found = batches.pending(db, self.partner.id, 1, among)
            if found:
                (batch,) = found
                batch_id, root, leaves = batch.id, bytes(batch.root), batch.size
            elif among is None and (rows := interactions.take_unbatched(db, self.partner.id, size)):
                batch_id, root, placed = new_batch(db, self.partner.id, [leaf for _, leaf in rows])
                ids = [row_id for row_id, _ in rows]
                interactions.place(
                    db, batch_id, [(i, index, proof) for i, (index, proof) in zip(ids, placed, strict=True)]
                )
                leaves = len(rows)
            else:
                return None
            return [batch_id], anchor.prepare_anchor(signer, root, leaves)

        return take
