"""Verified inputs: one encrypted blob per (partner, member), what the last content check found
(see `offchain.models.VerifiedInputs`). A memo, never evidence: its reader re-checks it against the
chain and the rows before using any of it."""

from __future__ import annotations

from collections.abc import Mapping

from sqlalchemy import delete
from sqlmodel import Session, select

from offchain.db import insert_rows
from offchain.models import VerifiedInputs, utcnow

_TABLE = VerifiedInputs.__table__  # type: ignore[attr-defined]
_C = _TABLE.c


def of_partner(db: Session, partner_id: int) -> dict[bytes, bytes]:
    """member -> blob, every member of the partner that has one."""
    query = select(VerifiedInputs.member_id, VerifiedInputs.blob).where(
        VerifiedInputs.partner_id == partner_id
    )
    return {bytes(member): bytes(blob) for member, blob in db.exec(query).all()}


def replace(db: Session, partner_id: int, blobs: Mapping[bytes, bytes]) -> None:
    """Put these members' blobs in place of any they had."""
    if not blobs:
        return
    members = list(blobs)
    for start in range(0, len(members), 500):
        db.connection().execute(
            delete(_TABLE).where(_C.partner_id == partner_id, _C.member_id.in_(members[start : start + 500]))
        )
    now = utcnow()
    insert_rows(
        db.connection(),
        _TABLE,
        [{"partner_id": partner_id, "member_id": m, "blob": b, "updated_at": now} for m, b in blobs.items()],
    )


def drop_member(db: Session, member: bytes) -> None:
    """Erasure: the memo goes with the key that encrypted it."""
    db.connection().execute(delete(_TABLE).where(_C.member_id == member))
