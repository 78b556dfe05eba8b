"""Point events: each earn or redeem, mirrored from the chain."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from operator import itemgetter
from typing import Any

from sqlalchemy import Integer, Select, bindparam, func, update
from sqlalchemy import select as core_select
from sqlmodel import Session, col, select

from offchain.db import driver_rows, insert_rows, select_in
from offchain.models import ConsentReceipt, ConsentStatus, Partner, PointEvent, PointKind
from offchain.repositories.outbox import HashedRows

_TABLE = PointEvent.__table__  # type: ignore[attr-defined]
_C = _TABLE.c
# a confirmed event, as the outbox hands it back: what an import counts
OUTBOX = HashedRows(_TABLE, ("id", "member_id", "amount"))


def add_all(db: Session, events: Sequence[PointEvent]) -> None:
    """Insert these events; a duplicate external key fails here (IntegrityError)."""
    db.add_all(events)
    db.flush()


def insert(db: Session, rows: Sequence[Mapping[str, Any]]) -> None:
    insert_rows(db.connection(), _TABLE, rows)


def used_keys(db: Session, partner_id: int, keys: Sequence[str]) -> set[str]:
    """Those of these external keys the partner has already used."""
    rows = select_in(db.connection(), _TABLE, ("external_key",), "external_key", keys, partner_id=partner_id)
    return {key for (key,) in rows}


def _staged_earnings_query() -> Select[Any]:
    consent = ConsentReceipt.__table__.c  # type: ignore[attr-defined]
    # few rows: the consent outbox's staged ones (its (block, partner, id) index finds them)
    consent_staged = core_select(consent.member_id).where(
        consent.block_number.is_(None),
        consent.partner_id == bindparam("partner"),
        consent.tx_hash.is_(None),
        consent.purpose == bindparam("purpose"),
        consent.status == bindparam("given"),
    )
    return (
        core_select(_C.id, _C.member_id, _C.amount, _C.ref)
        .where(
            _C.partner_id == bindparam("partner"),
            _C.kind == bindparam("earn"),
            _C.tx_hash.is_(None),
            _C.block_number.is_(None),
            _C.id > bindparam("after"),
            _C.member_id.not_in(consent_staged),
        )
        .order_by(_C.id)
        .limit(bindparam("limit", type_=Integer))
        # PostgreSQL: locked until the hash is recorded; one sender per partner holds its lock
        # (api.evidence.outbox.sending), and should another reach these rows it waits, never skips ahead
        .with_for_update()
    )


_STAGED_EARNINGS = _staged_earnings_query()
_STILL_STAGED = core_select(_C.id).where(
    _C.id.between(bindparam("low"), bindparam("high")), _C.tx_hash.is_(None), _C.block_number.is_(None)
)


def staged_earnings(
    db: Session, partner_id: int, limit: int, *, consent_purpose: str, after: int = 0
) -> list[tuple[int, bytes, int, bytes]]:
    """The partner's oldest staged earn events (id, member, amount, ref) with an id above `after`, as
    plain tuples; those of a member whose given consent to the partner for `consent_purpose` is itself
    still staged (not yet signed) are held back: the chain takes an earn only after that consent, so
    the consent's transaction must come first (same sender, lower nonce), and an import sends its
    consents in full batches, some chunks after it stages them."""
    values = {
        "partner": partner_id,
        "purpose": consent_purpose,
        "given": ConsentStatus.GIVEN,
        "earn": PointKind.EARN,
        "after": after,
        "limit": limit,
    }
    return driver_rows(db.connection(), _STAGED_EARNINGS, values)


def still_staged(db: Session, ids: Sequence[int]) -> set[int]:
    """Which of these events are still staged (no transaction hash, no block). One range of ids read,
    not an IN of each (an IN of 2,600 ids cost ~70 ms to build and run on SQLite, the range ~1 ms):
    the ids a sender keeps are a window of the oldest staged ones."""
    if not ids:
        return set()
    values = {"low": min(ids), "high": max(ids)}
    return set(ids).intersection(map(itemgetter(0), driver_rows(db.connection(), _STILL_STAGED, values)))


def of_member(db: Session, member: bytes) -> list[tuple[PointEvent, str]]:
    """The member's point events with the name of the partner of each, oldest first."""
    query = (
        select(PointEvent, Partner.name)
        .join(Partner, col(Partner.id) == PointEvent.partner_id)
        .where(PointEvent.member_id == member)
        .order_by(col(PointEvent.id))
    )
    return [(event, name) for event, name in db.exec(query)]


def of_partner(db: Session, partner_id: int) -> Sequence[Any]:
    """The partner's point events (id, member, kind, amount, ref, block), oldest first, as Core rows."""
    query = (
        core_select(_C.id, _C.member_id, _C.kind, _C.amount, _C.ref, _C.block_number)
        .where(_C.partner_id == partner_id)
        .order_by(_C.id)
    )
    return db.connection().execute(query).all()


def per_block(db: Session, partner_id: int) -> Sequence[Any]:
    """(block, count) of the partner's confirmed events, by block: how a check walks them a window at a
    time."""
    query = (
        core_select(_C.block_number, func.count())
        .where(_C.partner_id == partner_id, _C.block_number.is_not(None))
        .group_by(_C.block_number)
        .order_by(_C.block_number)
    )
    return db.connection().execute(query).all()


def confirmed_in_blocks(db: Session, partner_id: int, first: int, last: int | None) -> Sequence[Any]:
    """The partner's events confirmed in blocks `first`..`last` (None: no end), (id, member, kind,
    amount, ref, block), by block then id, as Core rows.

    Found through the (block, partner, id) index, by its range of blocks: `partner_id + 0` keeps the
    partner's equality from choosing the (partner, external key) index, which SQLite's planner (with
    no statistics) preferred, visiting every event of the partner on each call. verify --all calls
    this once per window of ~5,000 events, so the whole check grew with the square of the history: at
    1M interactions (838,424 events, 154 windows) 0.12 s a call and 25 CPU s in all; by the range,
    0.016 s a call, the same at any size. PostgreSQL plans it by its statistics either way."""
    query = core_select(_C.id, _C.member_id, _C.kind, _C.amount, _C.ref, _C.block_number).where(
        (_C.partner_id + 0) == partner_id, _C.block_number >= first
    )
    if last is not None:
        query = query.where(_C.block_number <= last)
    return db.connection().execute(query.order_by(_C.block_number, _C.id)).all()


def unconfirmed(db: Session, partner_id: int | None = None) -> Sequence[Any]:
    """Events with no block yet (staged or in flight: few), (id, partner, member, kind, amount, ref,
    tx_hash), oldest first; of one partner or of all."""
    query = core_select(_C.id, _C.partner_id, _C.member_id, _C.kind, _C.amount, _C.ref, _C.tx_hash).where(
        _C.block_number.is_(None)
    )
    if partner_id is not None:
        query = query.where(_C.partner_id == partner_id)
    return db.connection().execute(query.order_by(_C.id)).all()


def confirmed_totals(db: Session) -> Sequence[Any]:
    """(member, partner, kind, total amount) over every event with a transaction hash, summed in the
    store: a reconciliation reads one row per member and partner, not one per event."""
    query = (
        core_select(_C.member_id, _C.partner_id, _C.kind, func.sum(_C.amount))
        .where(_C.tx_hash.is_not(None))
        .group_by(_C.member_id, _C.partner_id, _C.kind)
    )
    return db.connection().execute(query).all()


def without_hash(db: Session) -> Sequence[Any]:
    """(id, partner) of the events never sent (no transaction hash), oldest first."""
    query = core_select(_C.id, _C.partner_id).where(_C.tx_hash.is_(None)).order_by(_C.id)
    return db.connection().execute(query).all()


def forget_keys(db: Session, member: bytes) -> None:
    """Erasure: the partner's own keys of the member's events (invoice numbers) go; the events stay,
    with their keyed references, which nobody can link to an invoice once the member's key is gone."""
    db.connection().execute(update(_TABLE).where(_C.member_id == member).values(external_key=None))
