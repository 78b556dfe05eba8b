"""Erasure receipts: what was erased, when, and the hash anchored as proof of it."""

from __future__ import annotations

from sqlmodel import Session, col, select

from offchain.models import ErasureReceipt


def of_member(db: Session, member: bytes) -> ErasureReceipt | None:
    return db.exec(select(ErasureReceipt).where(ErasureReceipt.member_id == member)).first()


def add(db: Session, receipt: ErasureReceipt) -> ErasureReceipt:
    db.add(receipt)
    db.flush()
    return receipt


def anchored_hashes(db: Session) -> dict[int, bytes]:
    """store batch id -> receipt hash, for every receipt given a batch of its own."""
    rows = db.exec(select(ErasureReceipt).where(col(ErasureReceipt.anchored_batch_id).is_not(None)))
    return {r.anchored_batch_id: r.receipt_hash for r in rows if r.anchored_batch_id is not None}
