"""Anchoring batches: a Merkle root of a partner's leaves, and how far its anchor got (the outbox)."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, update
from sqlalchemy import select as core_select
from sqlmodel import Session, col, select

from offchain.models import AnchorStatus, Batch

_TABLE = Batch.__table__  # type: ignore[attr-defined]
_C = _TABLE.c
# What a confirmed batch is reported as (see `api.evidence.anchoring.AnchorOutcome`)
OUTCOME_COLUMNS = ("id", "onchain_batch_id", "size", "root", "block_number")


def add(
    db: Session,
    partner_id: int,
    root: bytes,
    size: int,
    *,
    first_index: int = 0,
    frontier: bytes | None = None,
    consistency: bytes | None = None,
) -> int:
    """A pending batch: leaves [first_index, first_index + size) of the partner's log; its id."""
    batch = Batch(
        partner_id=partner_id,
        root=root,
        size=size,
        first_index=first_index,
        frontier=frontier,
        consistency=consistency,
    )
    db.add(batch)
    db.flush()
    assert batch.id is not None
    return batch.id


def tip(db: Session, partner_id: int) -> tuple[int, bytes | None]:
    """The partner's log as the store last extended it: its size and its compact range there (0 and
    None before the first batch). Locked where the database can (PostgreSQL), so that two writers
    cannot both extend the same tip; SQLite's write lock and the (partner, first index) uniqueness
    do the same there."""
    query = (
        core_select(_C.first_index, _C.size, _C.frontier)
        .where(_C.partner_id == partner_id)
        .order_by(_C.first_index.desc())
        .limit(1)
        .with_for_update()
    )
    found = db.connection().execute(query).first()
    if found is None:
        return 0, None
    return int(found.first_index) + int(found.size), None if found.frontier is None else bytes(found.frontier)


def get(db: Session, batch_id: int) -> Batch | None:
    return db.get(Batch, batch_id)


def of_partner(db: Session, partner_id: int) -> dict[int, Batch]:
    """The partner's batches by id, in log order."""
    found = db.exec(select(Batch).where(Batch.partner_id == partner_id).order_by(col(Batch.first_index)))
    return {b.id: b for b in found if b.id is not None}


def pending(db: Session, partner_id: int, limit: int, among: Collection[int] | None = None) -> list[Any]:
    """The partner's oldest batches waiting to be sent (id, root, size, first_index, consistency), in
    log order; with `among`, only as far as the last of those (the log is sent in order: a batch goes
    after every batch before it). Locked until the anchor's hash is recorded (PostgreSQL); one sender
    per partner holds its lock (api.evidence.outbox.sending), and should another reach these batches
    it waits: skipping a batch another holds would take the next one, a head the chain refuses."""
    query = core_select(_C.id, _C.root, _C.size, _C.first_index, _C.consistency).where(
        _C.partner_id == partner_id, _C.status == AnchorStatus.PENDING
    )
    if among is not None:
        query = query.where(_C.id <= max(among, default=0))
    return list(db.connection().execute(query.order_by(_C.first_index).limit(limit).with_for_update()))


def in_flight_spans(db: Session, partner_id: int) -> list[tuple[int, int]]:
    """(first index, size) of each of the partner's batches sent and not yet confirmed, in log order."""
    query = (
        core_select(_C.first_index, _C.size)
        .where(_C.partner_id == partner_id, _C.status == AnchorStatus.SUBMITTED)
        .order_by(_C.first_index)
    )
    return [(int(first), int(size)) for first, size in db.connection().execute(query)]


def anchored_end(db: Session, partner_id: int) -> int:
    """Where the partner's anchored batches end in its log (0 before the first is anchored)."""
    query = core_select(func.max(_C.first_index + _C.size)).where(
        _C.partner_id == partner_id, _C.status == AnchorStatus.ANCHORED
    )
    return int(db.connection().execute(query).scalar_one() or 0)


def outcomes(db: Session, batch_ids: Sequence[int]) -> list[Any]:
    """The anchored batches among these, as confirmed rows."""
    query = core_select(*(_C[name] for name in OUTCOME_COLUMNS)).where(
        _C.id.in_(list(batch_ids)), _C.status == AnchorStatus.ANCHORED
    )
    return list(db.connection().execute(query.order_by(_C.id)))


class BatchRows:
    """`OutboxRows` for batches, whose status column says how far each got: pending (staged),
    submitted (a transaction hash), anchored (the on-chain batch id and block)."""

    def in_flight(self, db: Session, partner_id: int) -> list[str]:
        query = (
            core_select(_C.tx_hash)
            .where(_C.partner_id == partner_id, _C.status == AnchorStatus.SUBMITTED)
            .order_by(_C.id)
        )
        return [str(tx_hash) for tx_hash in db.connection().execute(query).scalars()]

    def claim(self, db: Session, ids: Sequence[int], tx_hash: str) -> None:
        db.connection().execute(
            update(_TABLE)
            .where(_C.id.in_(list(ids)))
            .values(status=AnchorStatus.SUBMITTED, tx_hash=tx_hash, submitted_at=datetime.now(UTC))
        )

    def release(self, db: Session, tx_hash: str) -> None:
        db.connection().execute(
            update(_TABLE)
            .where(_C.tx_hash == tx_hash, _C.status == AnchorStatus.SUBMITTED)
            .values(status=AnchorStatus.PENDING, tx_hash=None)
        )

    def confirm(self, db: Session, tx_hash: str, block_number: int, onchain_id: int | None) -> list[Any]:
        """`onchain_id`: the chain's id of the transaction's first head; a transaction of several
        (`anchorMany`, in log order) numbered them one after another."""
        assert onchain_id is not None  # every anchor transaction creates at least one on-chain batch
        connection = db.connection()
        ids = connection.execute(
            core_select(_C.id)
            .where(_C.tx_hash == tx_hash, _C.status == AnchorStatus.SUBMITTED)
            .order_by(_C.first_index)
        ).scalars()
        now = datetime.now(UTC)
        confirmed: list[Any] = []
        for offset, batch_id in enumerate(list(ids)):
            rows = connection.execute(
                update(_TABLE)
                .where(_C.id == batch_id)
                .values(
                    status=AnchorStatus.ANCHORED,
                    onchain_batch_id=onchain_id + offset,
                    block_number=block_number,
                    anchored_at=now,
                )
                .returning(*(_C[name] for name in OUTCOME_COLUMNS))
            )
            confirmed += rows.all()
        return sorted(confirmed, key=lambda row: row.id)


OUTBOX = BatchRows()


def statuses(db: Session, batch_ids: Collection[int]) -> dict[int, tuple[AnchorStatus, int | None]]:
    """batch id -> (status, on-chain batch id) for these batches."""
    query = core_select(_C.id, _C.status, _C.onchain_batch_id).where(_C.id.in_(list(batch_ids)))
    return {int(i): (AnchorStatus(s), o) for i, s, o in db.connection().execute(query)}
