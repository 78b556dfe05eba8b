"""Partner API keys: the hash of each key, its scopes and its life."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import update
from sqlmodel import Session, col, select

from offchain.models import ApiToken


def add(db: Session, token: ApiToken) -> ApiToken:
    db.add(token)
    db.flush()
    return token


def by_prefix(db: Session, prefix: str) -> ApiToken | None:
    return db.exec(select(ApiToken).where(ApiToken.prefix == prefix)).first()


def get(db: Session, token_id: int) -> ApiToken | None:
    return db.get(ApiToken, token_id)


def of_partner(db: Session, partner_id: int) -> list[ApiToken]:
    query = select(ApiToken).where(ApiToken.partner_id == partner_id).order_by(col(ApiToken.id))
    return list(db.exec(query))


def revoke(db: Session, prefix: str, when: datetime) -> bool:
    """Revoke the key `prefix`; False if there is none (or it was revoked already)."""
    table = ApiToken.__table__  # type: ignore[attr-defined]
    done = db.connection().execute(
        update(table).where(table.c.prefix == prefix, table.c.revoked_at.is_(None)).values(revoked_at=when)
    )
    return bool(done.rowcount)


def touch(db: Session, token_id: int, when: datetime) -> None:
    table = ApiToken.__table__  # type: ignore[attr-defined]
    db.connection().execute(update(table).where(table.c.id == token_id).values(last_used_at=when))
