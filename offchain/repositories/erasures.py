"""Erasure receipts: what was erased, when, and the hash anchored as proof of it."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import bindparam, update
from sqlalchemy import select as core_select
from sqlmodel import Session, col, select

from offchain.models import ErasureReceipt

_TABLE = ErasureReceipt.__table__  # type: ignore[attr-defined]
_C = _TABLE.c


def of_member(db: Session, member: bytes) -> ErasureReceipt | None:
    return db.exec(select(ErasureReceipt).where(ErasureReceipt.member_id == member)).first()


def get(db: Session, receipt_id: int | None) -> ErasureReceipt | None:
    return None if receipt_id is None else db.get(ErasureReceipt, receipt_id)


def add(db: Session, receipt: ErasureReceipt) -> ErasureReceipt:
    db.add(receipt)
    db.flush()
    return receipt


def take_unbatched(db: Session, partner_id: int, limit: int) -> list[tuple[int, bytes]]:
    """(id, receipt hash) of the partner's oldest receipts not yet in its log."""
    query = (
        core_select(_C.id, _C.receipt_hash)
        .where(_C.partner_id == partner_id, _C.anchored_batch_id.is_(None))
        .order_by(_C.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return [(int(i), bytes(h)) for i, h in db.connection().execute(query)]


def place(db: Session, batch_id: int, placements: Sequence[tuple[int, int, bytes]]) -> None:
    """Put receipts (id, leaf index, proof) into a batch of the log."""
    if not placements:
        return
    db.connection().execute(
        update(_TABLE)
        .where(_C.id == bindparam("row_id"))
        .values(anchored_batch_id=bindparam("batch"), leaf_index=bindparam("index"), proof=bindparam("path")),
        [{"row_id": i, "batch": batch_id, "index": index, "path": proof} for i, index, proof in placements],
    )


def of_partner(db: Session, partner_id: int) -> list[ErasureReceipt]:
    """The partner's receipts, oldest first."""
    query = (
        select(ErasureReceipt).where(ErasureReceipt.partner_id == partner_id).order_by(col(ErasureReceipt.id))
    )
    return list(db.exec(query))
