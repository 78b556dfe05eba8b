"""Sign-in challenges (EIP-4361 nonces) and the sessions they open."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, update
from sqlmodel import Session, select

from offchain.models import SignInChallenge, WebSession


def add_challenge(db: Session, challenge: SignInChallenge) -> None:
    db.add(challenge)
    db.flush()


def use_challenge(db: Session, nonce: str, when: datetime) -> SignInChallenge | None:
    """The challenge `nonce` if it was unused and unexpired at `when`, now marked used; else None. One
    UPDATE decides, so two sign-ins racing with one nonce cannot both have it."""
    table = SignInChallenge.__table__  # type: ignore[attr-defined]
    done = db.connection().execute(
        update(table)
        .where(table.c.nonce == nonce, table.c.used_at.is_(None), table.c.expires_at > when)
        .values(used_at=when)
    )
    if not done.rowcount:
        return None
    return db.get(SignInChallenge, nonce)


def forget_challenges_before(db: Session, when: datetime) -> None:
    table = SignInChallenge.__table__  # type: ignore[attr-defined]
    db.connection().execute(delete(table).where(table.c.expires_at < when))


def add(db: Session, web_session: WebSession) -> WebSession:
    db.add(web_session)
    db.flush()
    return web_session


def by_token_hash(db: Session, token_hash: bytes) -> WebSession | None:
    return db.exec(select(WebSession).where(WebSession.token_hash == token_hash)).first()


def end(db: Session, session_id: int, when: datetime) -> None:
    table = WebSession.__table__  # type: ignore[attr-defined]
    db.connection().execute(
        update(table).where(table.c.id == session_id, table.c.ended_at.is_(None)).values(ended_at=when)
    )
