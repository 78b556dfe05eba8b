"""Writes sent with an Idempotency-Key, and their answers."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from offchain.models import IdempotentRequest


def claim(db: Session, credential: str, key: str, request_hash: bytes) -> IdempotentRequest | None:
    """Claim `key` for a new request; None if it is new (claimed now), else the earlier request's row."""
    try:
        with db.begin_nested():
            db.add(IdempotentRequest(credential=credential, key=key, request_hash=request_hash))
            db.flush()
    except IntegrityError:
        return db.exec(
            select(IdempotentRequest).where(
                IdempotentRequest.credential == credential, IdempotentRequest.key == key
            )
        ).first()
    return None


def answer(db: Session, credential: str, key: str, status_code: int, headers_json: str, body: bytes) -> None:
    table = IdempotentRequest.__table__  # type: ignore[attr-defined]
    db.connection().execute(
        update(table)
        .where(table.c.credential == credential, table.c.key == key)
        .values(status_code=status_code, headers_json=headers_json, body=body)
    )


def release(db: Session, credential: str, key: str) -> None:
    """Forget a claim whose request ended without an answer worth replaying (so it can be retried)."""
    table = IdempotentRequest.__table__  # type: ignore[attr-defined]
    db.connection().execute(delete(table).where(table.c.credential == credential, table.c.key == key))


def forget_before(db: Session, when: datetime) -> None:
    table = IdempotentRequest.__table__  # type: ignore[attr-defined]
    db.connection().execute(delete(table).where(table.c.created_at < when))
