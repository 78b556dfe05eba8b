"""Consent receipts: one row per consent event, its receipt document and that document's hash."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import select as core_select
from sqlmodel import Session, col, select

from offchain.db import in_chunks, insert_rows, select_in
from offchain.models import ConsentReceipt, ConsentStatus, Enrolment, Partner
from offchain.repositories.outbox import HashedRows

_TABLE = ConsentReceipt.__table__  # type: ignore[attr-defined]
_C = _TABLE.c
# a confirmed receipt, as the outbox hands it back: what an import reads of it
OUTBOX = HashedRows(_TABLE, ("id", "member_id", "purpose", "status", "expires_at"))


def add(db: Session, row: Mapping[str, Any]) -> ConsentReceipt:
    """Insert one receipt; constraint errors surface here, before anything else happens."""
    receipt = ConsentReceipt(**row)
    db.add(receipt)
    db.flush()
    return receipt


def insert(db: Session, rows: Sequence[Mapping[str, Any]]) -> None:
    insert_rows(db.connection(), _TABLE, rows)


def members_with_receipt(db: Session, partner_id: int, purpose: str, members: Sequence[bytes]) -> set[bytes]:
    """Those of these members that have any receipt (given, withdrawn, staged) towards the partner for
    `purpose`."""
    query = core_select(_C.member_id).where(_C.partner_id == partner_id, _C.purpose == purpose)
    found: set[bytes] = set()
    for chunk in in_chunks(members):
        found.update(
            bytes(m) for m in db.connection().execute(query.where(_C.member_id.in_(chunk))).scalars()
        )
    return found


def has_unconfirmed(db: Session, member: bytes) -> bool:
    """Whether the member has a receipt not yet confirmed on chain (staged, or sent and not mined)."""
    query = core_select(_C.id).where(_C.member_id == member, _C.block_number.is_(None)).limit(1)
    return db.connection().execute(query).first() is not None


def staged(db: Session, partner_id: int, limit: int) -> Sequence[Any]:
    """The oldest staged receipts that can share one recordBatch (same purpose, status and expiry):
    the columns recordBatch needs, as Core rows (attribute access without building ORM objects).
    Those of a member whose enrolment is itself still staged (not yet signed) are held back: the chain
    takes a consent only for an enrolled member, so the enrolment's transaction must come first (same
    sender, lower nonce), and an import sends its enrolments in full batches, some chunks later."""
    enrolment = Enrolment.__table__.c  # type: ignore[attr-defined]
    # few rows: the enrolment outbox's staged ones (its (block, partner, id) index finds them)
    enrolment_staged = core_select(enrolment.member_id).where(
        enrolment.block_number.is_(None), enrolment.tx_hash.is_(None)
    )
    pending = (
        core_select(_C.id, _C.member_id, _C.receipt_hash, _C.purpose, _C.status, _C.expires_at)
        .where(
            _C.partner_id == partner_id,
            _C.tx_hash.is_(None),
            _C.block_number.is_(None),
            _C.member_id.not_in(enrolment_staged),
        )
        .order_by(_C.id)
    )
    rows = db.connection()
    first = rows.execute(pending.limit(1)).first()
    if first is None:
        return []
    same = pending.where(
        _C.purpose == first.purpose,
        _C.status == first.status,
        _C.expires_at.is_(None) if first.expires_at is None else _C.expires_at == first.expires_at,
    )
    # PostgreSQL: locked until the hash is recorded; one sender per partner holds its lock
    # (api.evidence.outbox.sending), and should another reach these rows it waits, never skips ahead
    return rows.execute(same.limit(limit).with_for_update()).all()


def history(
    db: Session, member: bytes, partner_name: str | None = None
) -> list[tuple[ConsentReceipt, Partner]]:
    """The member's receipts with their controllers (towards one partner, or all), oldest first."""
    query = select(ConsentReceipt, Partner).join(Partner).where(ConsentReceipt.member_id == member)
    if partner_name:
        query = query.where(Partner.name == partner_name)
    rows = db.exec(query.order_by(col(ConsentReceipt.recorded_at), col(ConsentReceipt.id))).all()
    return [(receipt, partner) for receipt, partner in rows]


def of_partner(db: Session, partner_id: int) -> list[ConsentReceipt]:
    """The partner's receipts, oldest first."""
    query = (
        select(ConsentReceipt).where(ConsentReceipt.partner_id == partner_id).order_by(col(ConsentReceipt.id))
    )
    return list(db.exec(query))


def of_partner_in_pages(db: Session, partner_id: int, page: int = 5000) -> Iterator[list[ConsentReceipt]]:
    """The partner's receipts, oldest first, `page` at a time; each page leaves the session once the
    next is asked for, so a run over 50,000 customers' receipts holds one page of them, not all."""
    after = 0
    while True:
        query = (
            select(ConsentReceipt)
            .where(ConsentReceipt.partner_id == partner_id, col(ConsentReceipt.id) > after)
            .order_by(col(ConsentReceipt.id))
            .limit(page)
        )
        found = list(db.exec(query))
        if not found:
            return
        yield found
        for receipt in found:
            db.expunge(receipt)
        after = found[-1].id or after


class CheckedReceipt(NamedTuple):
    """What verification reads of a receipt: a plain tuple from a Core select (as ORM objects, loading
    and expunging 5,942 receipts was most of the consent check's store side)."""

    id: int
    member_id: bytes
    purpose: str
    status: ConsentStatus
    expires_at: datetime | None
    receipt_json: str
    block_number: int | None


_CHECKED = core_select(*(_C[name] for name in CheckedReceipt._fields))


def checked_in_pages(db: Session, partner_id: int, page: int = 5000) -> Iterator[list[CheckedReceipt]]:
    """`of_partner_in_pages` as plain rows of the columns verification reads: oldest first, `page` at
    a time (a run over 50,000 customers' receipts holds one page of them, not all)."""
    after = 0
    while True:
        query = _CHECKED.where(_C.partner_id == partner_id, _C.id > after).order_by(_C.id).limit(page)
        found = [CheckedReceipt._make(row) for row in db.connection().execute(query)]
        if not found:
            return
        yield found
        after = found[-1].id


def existing_hashes(db: Session, hashes: Sequence[bytes]) -> set[bytes]:
    """Which of these receipt hashes some receipt of the store (of any partner) already has."""
    rows = select_in(db.connection(), _TABLE, ("receipt_hash",), "receipt_hash", list(hashes))
    return {bytes(h) for (h,) in rows}
