"""Customers: one row per member, personal data only as ciphertext."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import func, update
from sqlalchemy import select as core_select
from sqlmodel import Session, col, select

from offchain.db import insert_rows, select_in
from offchain.models import Customer, CustomerStatus

_TABLE = Customer.__table__  # type: ignore[attr-defined]


def insert(db: Session, rows: Sequence[Mapping[str, Any]]) -> None:
    """Plain rows (every column given) in one executemany INSERT."""
    insert_rows(db.connection(), _TABLE, rows)


def get(db: Session, member: bytes) -> Customer | None:
    return db.get(Customer, member)


def status_of(db: Session, member: bytes) -> CustomerStatus | None:
    """The member's status, or None if the store has no such member."""
    customer = db.get(Customer, member)
    return None if customer is None else customer.status


def owned(db: Session, partner_id: int, member: bytes) -> Customer | None:
    """The customer if it is the partner's."""
    return db.exec(
        select(Customer).where(Customer.member_id == member, Customer.partner_id == partner_id)
    ).first()


def statuses(
    db: Session, members: Collection[bytes], partner_id: int | None = None
) -> dict[bytes, CustomerStatus]:
    """The status of each of these members that exists (and is the partner's, if one is given)."""
    equal = {} if partner_id is None else {"partner_id": partner_id}
    rows = select_in(db.connection(), _TABLE, ("member_id", "status"), "member_id", list(members), **equal)
    return {bytes(member): CustomerStatus(status) for member, status in rows}


def erased_for_write(db: Session, partner_id: int) -> set[bytes]:
    """The partner's erased members, read for a write that must not outlive an erasure (a memo, a
    decision made from keys read before it). FOR SHARE (PostgreSQL; SQLite's single writer needs none)
    orders the read against `mark_erased`: an erasure either committed first and is seen here, or waits
    for the writer's transaction and then deletes what it wrote."""
    rows = db.exec(
        select(Customer.member_id, Customer.status)
        .where(Customer.partner_id == partner_id)
        .with_for_update(read=True)
    ).all()
    return {bytes(member) for member, status in rows if status == CustomerStatus.ERASED}


def by_ref_hashes(db: Session, partner_id: int, ref_hashes: Iterable[bytes]) -> dict[bytes, bytes]:
    """keyed hash of an external ref -> member id, for the partner's customers that have one of these."""
    rows = select_in(
        db.connection(),
        _TABLE,
        ("member_id", "external_ref_hmac"),
        "external_ref_hmac",
        list(ref_hashes),
        partner_id=partner_id,
    )
    return {bytes(ref_hash): bytes(member) for member, ref_hash in rows if ref_hash is not None}


def mark_erased(db: Session, member: bytes, when: datetime) -> None:
    """Tombstone the customer: erased, no lookup hash left to find it by, and no ciphertext of its
    personal data (an old key store restored from a backup must find nothing to open)."""
    db.connection().execute(
        update(_TABLE)
        .where(_TABLE.c.member_id == member)
        .values(status=CustomerStatus.ERASED, erased_at=when, external_ref_hmac=None, pii_ciphertext=b"")
    )


def erased_of_partner(db: Session, partner_id: int) -> list[tuple[bytes, datetime | None]]:
    """The partner's customers the store marks erased (member id, when), oldest erasure first."""
    query = (
        core_select(_TABLE.c.member_id, _TABLE.c.erased_at)
        .where(_TABLE.c.partner_id == partner_id, _TABLE.c.status == CustomerStatus.ERASED)
        .order_by(_TABLE.c.erased_at, _TABLE.c.member_id)
    )
    return [(bytes(member), when) for member, when in db.connection().execute(query)]


def of_partner(db: Session, partner_id: int, offset: int = 0, limit: int | None = None) -> list[Customer]:
    """The partner's customers in the order they were registered (`offset`, `limit`: a page)."""
    query = (
        select(Customer)
        .where(Customer.partner_id == partner_id)
        .order_by(col(Customer.created_at), col(Customer.member_id))
        .offset(offset)
    )
    return list(db.exec(query if limit is None else query.limit(limit)))


def ids_of_partner(db: Session, partner_id: int) -> list[bytes]:
    """The partner's members in the order they were registered, as `of_partner` gives them: a Core
    select of one column, where the ORM objects of Online Retail II's 5,942 customers were ~0.1 CPU s."""
    c = _TABLE.c
    query = core_select(c.member_id).where(c.partner_id == partner_id).order_by(c.created_at, c.member_id)
    return [bytes(member) for member in db.connection().execute(query).scalars()]


def count_of_partner(db: Session, partner_id: int) -> int:
    query = core_select(func.count()).where(_TABLE.c.partner_id == partner_id)
    return int(db.connection().execute(query).scalar_one())


def reseal(db: Session, member: bytes, pii_ciphertext: bytes) -> None:
    """Replace a customer's sealed personal data (an update)."""
    db.connection().execute(
        update(_TABLE).where(_TABLE.c.member_id == member).values(pii_ciphertext=pii_ciphertext)
    )


def members_of_partner(db: Session, partner_id: int) -> list[bytes]:
    """The member ids of the partner's customers (every status)."""
    query = core_select(_TABLE.c.member_id).where(_TABLE.c.partner_id == partner_id)
    return [bytes(member) for (member,) in db.connection().execute(query)]
