"""Enrolments: each customer's enrolment on chain, staged with the customer and sent by the outbox."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import select as core_select
from sqlalchemy import update
from sqlmodel import Session

from offchain.db import in_chunks, insert_rows
from offchain.models import Enrolment
from offchain.repositories.outbox import HashedRows

_TABLE = Enrolment.__table__  # type: ignore[attr-defined]
_C = _TABLE.c
# a confirmed enrolment, as the outbox hands it back
OUTBOX = HashedRows(_TABLE, ("id", "member_id"))


def insert(db: Session, rows: Sequence[Mapping[str, Any]]) -> None:
    """Plain rows (every column given) in one executemany INSERT."""
    insert_rows(db.connection(), _TABLE, rows)


def staged(db: Session, partner_id: int, limit: int) -> Sequence[Any]:
    """The partner's oldest enrolments not yet sent (id, member, signer), as Core rows."""
    query = (
        core_select(_C.id, _C.member_id, _C.signer)
        .where(_C.partner_id == partner_id, _C.tx_hash.is_(None), _C.block_number.is_(None))
        .order_by(_C.id)
        .limit(limit)
        # PostgreSQL: locked until the hash is recorded; one sender per partner holds its lock
        # (api.evidence.outbox.sending), and should another reach these rows it waits, never skips ahead
        .with_for_update()
    )
    return db.connection().execute(query).all()


def of_member(db: Session, member: bytes) -> Any | None:
    """The member's enrolment (id, partner, signer, tx hash, block), or None."""
    query = core_select(_C.id, _C.partner_id, _C.signer, _C.tx_hash, _C.block_number).where(
        _C.member_id == member
    )
    return db.connection().execute(query).first()


def of_members(db: Session, members: Sequence[bytes]) -> dict[bytes, Any]:
    """The enrolments of these members (member, partner, signer, block; block None: not yet mined), by
    member; a member the store has no enrolment for is left out."""
    query = core_select(_C.member_id, _C.partner_id, _C.signer, _C.block_number)
    found: dict[bytes, Any] = {}
    for chunk in in_chunks(members):
        for row in db.connection().execute(query.where(_C.member_id.in_(chunk))):
            found[bytes(row.member_id)] = row
    return found


def set_signer(db: Session, member: bytes, signer: str) -> None:
    """Record the member's key bound on chain after its enrolment (the row mirrors the chain)."""
    db.connection().execute(update(_TABLE).where(_C.member_id == member).values(signer=signer))


def members_of_signer(db: Session, signer: str) -> list[bytes]:
    """The members this store enrolled with `signer` as their key, newest first (the chain decides which
    of them the key still holds)."""
    query = core_select(_C.member_id).where(_C.signer == signer).order_by(_C.id.desc())
    return [bytes(row[0]) for row in db.connection().execute(query)]
