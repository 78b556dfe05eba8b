"""Verified inputs: one encrypted blob per (partner, member), what the last content check found
(see `offchain.models.VerifiedInputs`). A memo, never evidence: its reader re-checks it against the
chain and the rows before using any of it."""

from __future__ import annotations

from collections.abc import Mapping

from sqlalchemy import delete
from sqlalchemy import select as core_select
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session

from offchain.models import VerifiedInputs, utcnow
from offchain.repositories import customers

_TABLE = VerifiedInputs.__table__  # type: ignore[attr-defined]
_C = _TABLE.c


def of_partner(db: Session, partner_id: int) -> dict[bytes, bytes]:
    """member -> blob, every member of the partner that has one."""
    # a Core select: through the ORM, 5,942 blobs took 0.25 CPU s of a scoring run to come back as tuples
    query = core_select(_C.member_id, _C.blob).where(_C.partner_id == partner_id)
    return {bytes(member): bytes(blob) for member, blob in db.connection().execute(query)}


def replace(db: Session, partner_id: int, blobs: Mapping[bytes, bytes]) -> None:
    """Put these members' blobs in place of any they had: one upsert, so two runs that write the same
    member's memo at once (PostgreSQL) end with one of them, not a unique-key error."""
    if not blobs:
        return
    # A run reads its members long before it writes (scoring 5,881 customers): one erased in between had
    # her memo dropped already, and writing it now would leave a blob her old key (a key store restored
    # from a backup) opens. So the erased are left out, read here with the write (erased_for_write).
    gone = customers.erased_for_write(db, partner_id)
    now = utcnow()
    rows = [
        {"partner_id": partner_id, "member_id": member, "blob": blob, "updated_at": now}
        for member, blob in blobs.items()
        if member not in gone
    ]
    if not rows:
        return
    connection = db.connection()
    dialect = postgresql if connection.dialect.name == "postgresql" else sqlite
    statement = dialect.insert(_TABLE)
    statement = statement.on_conflict_do_update(
        index_elements=[_C.partner_id, _C.member_id],
        set_={"blob": statement.excluded.blob, "updated_at": statement.excluded.updated_at},
    )
    connection.execute(statement, rows)


def drop_member(db: Session, member: bytes) -> None:
    """Erasure: the memo goes with the key that encrypted it."""
    db.connection().execute(delete(_TABLE).where(_C.member_id == member))
