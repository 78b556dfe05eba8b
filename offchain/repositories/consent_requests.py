"""Consent receipts handed out to be signed, until the signature comes back."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete
from sqlmodel import Session

from offchain.models import ConsentRequest


def add(db: Session, request: ConsentRequest) -> None:
    db.merge(request)
    db.flush()


def get(db: Session, receipt_hash: bytes) -> ConsentRequest | None:
    return db.get(ConsentRequest, receipt_hash)


def forget(db: Session, receipt_hash: bytes) -> None:
    table = ConsentRequest.__table__  # type: ignore[attr-defined]
    db.connection().execute(delete(table).where(table.c.receipt_hash == receipt_hash))


def forget_before(db: Session, when: datetime) -> None:
    table = ConsentRequest.__table__  # type: ignore[attr-defined]
    db.connection().execute(delete(table).where(table.c.expires_at < when))
