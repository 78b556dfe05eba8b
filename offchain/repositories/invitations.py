"""Invitations to bind a first key: the hash of each code, whose member it is for, and its one use."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import update
from sqlmodel import Session, select

from offchain.models import Invitation


def add(db: Session, invitation: Invitation) -> Invitation:
    db.add(invitation)
    db.flush()
    return invitation


def by_code_hash(db: Session, code_hash: bytes) -> Invitation | None:
    return db.exec(select(Invitation).where(Invitation.code_hash == code_hash)).first()


def use(db: Session, invitation_id: int, when: datetime) -> bool:
    """Mark the invitation used at `when`; False if it was used already. One UPDATE decides, so two
    requests racing with one code cannot both have it."""
    table = Invitation.__table__  # type: ignore[attr-defined]
    done = db.connection().execute(
        update(table).where(table.c.id == invitation_id, table.c.used_at.is_(None)).values(used_at=when)
    )
    return bool(done.rowcount)
