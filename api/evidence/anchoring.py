"""Anchoring: a partner's pending leaves are appended to its log -> the new tree head goes on chain in
one `anchor` transaction, with the consistency proof from the previous head, through the one outbox
(api/evidence/outbox.py).

Each partner's interactions and erasure receipts are one append-only RFC 6962 log, whose leaf 0 is the
partner's genesis leaf (InteractionAnchor.genesisLeaf: bound to the partner, the contract and the
chain; no record holds it), so no other partner can anchor one of its roots. A batch is the
leaves one append adds: it is written (pending) with each leaf's index in the log and inclusion proof
against the new head, the new head's root, its compact range (what the next append starts from: the
whole log is never rebuilt) and the consistency proof, in one store transaction; its anchor is then
signed, its hash recorded (submitted) and sent; once mined, the on-chain batch id and block are
written (anchored). The contract accepts a head only on top of the previous one, so batches are sent
in log order, each after the one before it is mined. `anchor_pending` takes each batch through every
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
from api.errors import LogOutOfStep
from api.evidence.log import GENESIS_SIZE as GENESIS_SIZE
from api.evidence.log import log_start as log_start
from api.evidence.outbox import FailedTransaction, NextBatch, Outbox
from ledger.chain import SignedTx
from ledger.clients.anchor import MAX_HEADS_PER_CALL
from ledger.merkle import Frontier, LogAppend, leaf_hash
from offchain.repositories import batches, erasures, interactions
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
    db: Session, partner_id: int, leaves: Sequence[bytes], start: Frontier
) -> tuple[int, bytes, list[tuple[int, bytes]]]:
    """Append `leaves` (in this order) to the partner's log as a pending batch: its store id, the new
    head's root, and each leaf's index in the log and inclusion proof against that head (sibling hashes
    from the leaf up, concatenated). O(len(leaves) + log n): built from the compact range the previous
    batch left, never from the whole log; the first batch from `start` (`log_start`)."""
    size, packed = batches.tip(db, partner_id)
    old = start if size == 0 else Frontier.decode(size, packed)
    step = LogAppend(old, leaves)
    batch_id = batches.add(
        db,
        partner_id,
        step.root,
        len(leaves),
        first_index=old.size,
        frontier=step.frontier.encode(),
        consistency=b"".join(step.consistency_proof()),
    )
    return batch_id, step.root, list(zip(range(old.size, step.size), step.proofs(), strict=True))


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
    return anchor_pending_report(crm, partner_name, max_leaves)[0]


def anchor_pending_report(
    crm: Crm, partner_name: str, max_leaves: int | None = None
) -> tuple[list[AnchorOutcome], list[FailedTransaction]]:
    """`anchor_pending`, and the anchor transactions found mined and failed on the way (their batches
    went back to pending and were signed anew, so re-checked against the chain as it is now)."""
    anchors = _Anchors(crm, partner_name)
    outcomes = anchors.settle(wait=True)
    settled_failures = len(anchors.outbox.failed)
    outcomes += anchors.send(anchors.next_batch(max_leaves), wait=True)
    if len(anchors.outbox.failed) > settled_failures:
        # one failed during this send: its batch is pending again, and one more pass signs it anew (a
        # second failure in a row stops there, reported)
        outcomes += anchors.send(anchors.next_batch(max_leaves), wait=True)
    return outcomes, anchors.outbox.failed


def submit(crm: Crm, partner_name: str, batch_ids: Collection[int], *, heads: int = 1) -> None:
    """Send the anchors of these pending batches without waiting for them (`settle` confirms them),
    up to `heads` of them in one transaction (`anchorMany`)."""
    if not batch_ids:
        return
    anchors = _Anchors(crm, partner_name)
    anchors.send(anchors.next_batch(None, among=batch_ids, heads=heads), wait=False)


def submit_pending(crm: Crm, partner_name: str, max_leaves: int | None = None, *, heads: int = 1) -> None:
    """Batch every pending leaf and send each batch's anchor (and any batch left pending) without
    waiting, up to `heads` batches' in one transaction: the node mines while the next batch is built.
    `settle` then confirms them."""
    anchors = _Anchors(crm, partner_name)
    anchors.send(anchors.next_batch(max_leaves, heads=heads), wait=False)


def settle(crm: Crm, partner_name: str, *, wait: bool = True) -> list[AnchorOutcome]:
    """Mark anchored the partner's sent batches that are mined (with `wait`, waiting for every one the
    node holds); a batch the node never saw goes back to pending, for the next send."""
    return _Anchors(crm, partner_name).settle(wait=wait)


class _Anchors:
    """The partner's batches in the outbox."""

    def __init__(self, crm: Crm, partner_name: str) -> None:
        self.crm = crm
        with crm.unit_of_work() as db:
            self.partner: PartnerRecord = crm.partner(db, partner_name)
        self.outbox = Outbox(crm, batches.OUTBOX, crm.coalition.anchor, self.partner.id)

    def settle(self, *, wait: bool) -> list[AnchorOutcome]:
        return [AnchorOutcome.of(row) for row in self.outbox.settle(wait=wait)]

    def send(self, next_batch: NextBatch, *, wait: bool) -> list[AnchorOutcome]:
        return [AnchorOutcome.of(row) for row in self.outbox.send(next_batch, wait=wait)]

    def next_batch(
        self, max_leaves: int | None, among: Collection[int] | None = None, *, heads: int = 1
    ) -> NextBatch:
        """The outbox's next transaction: the oldest batches left pending, up to `heads` of them in log
        order (with `among`, only up to the last of those), or else, unless `among` is given, a new
        batch of the oldest leaves in no batch yet (interactions first, then erasure receipts). Several
        heads go in one `anchorMany`, each proven consistent with the one before it."""
        size = max_leaves or self.crm.settings.batch_max_leaves
        anchor = self.crm.coalition.anchor
        signer = self.crm.signer(self.partner.name)
        heads = max(1, min(heads, MAX_HEADS_PER_CALL))

        def take(db: Session) -> tuple[list[int], SignedTx] | None:
            found = batches.pending(db, self.partner.id, heads, among)
            if found:
                chosen = [
                    (
                        batch.id,
                        bytes(batch.root),
                        batch.first_index,
                        batch.size,
                        bytes(batch.consistency or b""),
                    )
                    for batch in found
                ]
            elif among is None:
                placed = self._append(db, size)
                if placed is None:
                    return None
                chosen = [placed]
            else:
                return None
            self._in_step(db, chosen[0][2])
            signed = anchor.prepare_anchor_many(
                signer,
                [
                    (root, first + count, [packed[i : i + 32] for i in range(0, len(packed), 32)])
                    for _, root, first, count, packed in chosen
                ],
            )
            return [batch_id for batch_id, *_ in chosen], signed

        return take

    def _append(self, db: Session, size: int) -> tuple[int, bytes, int, int, bytes] | None:
        """A new pending batch of the oldest unbatched leaves: (id, root, first index, size, proof)."""
        rows = interactions.take_unbatched(db, self.partner.id, size)
        receipts = erasures.take_unbatched(db, self.partner.id, size - len(rows)) if len(rows) < size else []
        if not rows and not receipts:
            return None
        leaves = [leaf for _, leaf in rows] + [leaf_hash(receipt_hash) for _, receipt_hash in receipts]
        batch_id, root, placed = new_batch(
            db, self.partner.id, leaves, log_start(self.crm, self.partner.address)
        )
        if rows:
            ids = [row_id for row_id, _ in rows]
            interactions.place(
                db, batch_id, [(i, p, proof) for i, (p, proof) in zip(ids, placed, strict=False)]
            )
        erasures.place(
            db,
            batch_id,
            [(i, index, proof) for (i, _), (index, proof) in zip(receipts, placed[len(rows) :], strict=True)],
        )
        (batch,) = batches.pending(db, self.partner.id, 1, [batch_id])
        return batch_id, root, batch.first_index, len(leaves), bytes(batch.consistency or b"")

    def _in_step(self, db: Session, first_index: int) -> None:
        """The chain's head must be where this batch starts, or the batches in flight must take it there
        one after another (sent without waiting, they may not be mined yet); else wait for what is in
        flight and look again. Anything else means the store and the chain disagree on the log, and
        nothing is signed."""
        in_flight = batches.in_flight_spans(db, self.partner.id)
        anchored_end = max(batches.anchored_end(db, self.partner.id), GENESIS_SIZE)
        anchor = self.crm.coalition.anchor
        if in_flight and _tiles(anchored_end, in_flight, first_index):
            # The batches in flight follow the anchored ones and lead to this one: the chain was compared
            # with the store when the first of them was signed (here, by this rule's other branch), so it
            # is not asked again while the node is busy mining them (a view waits for that: 0.8 s of an
            # import). Should one of them fail, this anchor fails its simulation on chain: the contract
            # checks the size and the consistency proof against the head it holds.
            return
        if not in_flight and first_index == anchored_end == anchor.size_seen(self.partner.address):
            # Nothing in flight, and the store's anchored log ends where the head of the anchor receipt
            # this process decoded last does (when it confirmed that batch): in step, as a view would tell
            # (0.4 s of an import, asked while the node mines). A head anchored since then by another
            # process holding this partner's key fails this one's simulation, as above.
            return
        head = anchor.head(self.partner.address)
        if head.size != first_index and _tiles(head.size, in_flight, first_index):
            return  # in step once those are mined (pipelined, the sender thread may not have sent them)
        if head.size != first_index:
            for tx_hash in batches.OUTBOX.in_flight(db, self.partner.id):
                if anchor.lookup(tx_hash) == "pending":
                    anchor.wait(tx_hash)
            head = anchor.head(self.partner.address)
        if head.size != first_index:
            raise LogOutOfStep(
                f"partner {self.partner.name}'s log on chain has {head.size:,} leaves; the store's next "
                f"batch starts at leaf {first_index:,}"
                + (": the store is older than the chain" if head.size > first_index else "")
            )


def _tiles(start: int, spans: Sequence[tuple[int, int]], end: int) -> bool:
    """Whether `spans` ((first index, size), in order) cover [start, end) one after another, exactly."""
    at = start
    for first, size in spans:
        if first != at:
            return False
        at = first + size
    return at == end
