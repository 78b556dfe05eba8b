"""The points outbox's reads and claims: on SQLite they go to the driver as text (not through Core), so
each is checked here on both stores against what the rows hold."""

from __future__ import annotations

import random
from typing import Any

from sqlalchemy import Engine
from sqlalchemy import select as sa_select
from sqlmodel import Session

from offchain.db import IN_LIMIT, insert_rows, session
from offchain.models import ConsentReceipt, ConsentStatus, Customer, Partner, PointEvent, PointKind
from offchain.repositories import points
from tests.offchain.test_store import _customer, _hash, _partner

EVENTS = PointEvent.__table__  # type: ignore[attr-defined]


def _events(
    engine: Engine, partner: Partner, members: list[Customer], count: int, kind: PointKind = PointKind.EARN
) -> None:
    assert partner.id is not None
    rows = [
        {
            "partner_id": partner.id,
            "member_id": members[n % len(members)].member_id,
            "kind": kind,
            "amount": 1 + n,
            "ref": _hash(f"{kind} {n}"),
            "external_key": f"{kind}-{n}",
            "tx_hash": None,
            "block_number": None,
        }
        for n in range(count)
    ]
    with session(engine) as db:
        insert_rows(db.connection(), EVENTS, rows)


def _staged_consent(db: Session, partner: Partner, member: Customer, status: ConsentStatus) -> None:
    assert partner.id is not None
    db.add(
        ConsentReceipt(
            partner_id=partner.id,
            member_id=member.member_id,
            purpose="loyalty",
            status=status,
            legal_basis="consent",
            notice_version="2025-01",
            controller="Acme",
            collection_method="web form",
            withdrawal_method="account settings",
            receipt_json="{}",
            receipt_hash=_hash(f"{member.member_id.hex()} {status}"),
        )
    )


def _seed(engine: Engine) -> tuple[Partner, Partner, list[Customer]]:
    with session(engine) as db:
        partner, other = _partner(db), _partner(db, "Other")
        members = [_customer(db, partner) for _ in range(3)]
    return partner, other, members


def _stored(engine: Engine) -> list[tuple[Any, ...]]:
    """(id, member, amount, ref, tx_hash, block, kind, partner) of every event, oldest first."""
    c = EVENTS.c
    with engine.connect() as connection:
        query = sa_select(c.id, c.member_id, c.amount, c.ref, c.tx_hash, c.block_number, c.kind, c.partner_id)
        return [tuple(row) for row in connection.execute(query.order_by(c.id))]


def test_staged_earnings_are_the_partners_oldest_staged_earns_as_plain_tuples(engine: Engine) -> None:
    partner, other, members = _seed(engine)
    _events(engine, partner, members, 12)
    _events(engine, partner, members, 2, PointKind.REDEEM)
    _events(engine, other, members, 2)
    c = EVENTS.c
    with session(engine) as db:
        ids = [row[0] for row in _stored(engine)[:12]]
        db.connection().execute(EVENTS.update().where(c.id == ids[0]).values(tx_hash="0x" + "ab" * 32))
        db.connection().execute(
            EVENTS.update().where(c.id == ids[1]).values(tx_hash="0x" + "cd" * 32, block_number=7)
        )
        # the third member's given loyalty consent not yet signed: its earns wait for it
        _staged_consent(db, partner, members[2], ConsentStatus.GIVEN)
    stored = {row[0]: row for row in _stored(engine)}
    expected = [
        (event_id, member, amount, ref)
        for event_id, (_, member, amount, ref, tx_hash, block, kind, partner_id) in stored.items()
        if partner_id == partner.id
        and kind == PointKind.EARN
        and tx_hash is None
        and block is None
        and member != members[2].member_id
    ]
    assert len(expected) == 6  # 12 earns less the claimed, the confirmed and the third member's four
    with session(engine) as db:
        assert partner.id is not None
        found = points.staged_earnings(db, partner.id, 100, consent_purpose="loyalty")
        assert found == expected
        assert all(type(row) is tuple and type(row[1]) is bytes and type(row[3]) is bytes for row in found)
        assert points.staged_earnings(db, partner.id, 2, consent_purpose="loyalty") == expected[:2]
        after = expected[2][0]
        assert points.staged_earnings(db, partner.id, 100, consent_purpose="loyalty", after=after) == [
            row for row in expected if row[0] > after
        ]
        # a consent for another purpose, or a withdrawal, holds nothing back
        assert len(points.staged_earnings(db, partner.id, 100, consent_purpose="profiling")) == 10


def test_still_staged_are_those_of_the_ids_with_no_hash_and_no_block(engine: Engine) -> None:
    partner, other, members = _seed(engine)
    _events(engine, partner, members, 8)
    _events(engine, other, members, 2)
    ids = [row[0] for row in _stored(engine)]
    c = EVENTS.c
    with session(engine) as db:
        db.connection().execute(EVENTS.update().where(c.id == ids[2]).values(tx_hash="0x" + "ab" * 32))
        db.connection().execute(EVENTS.update().where(c.id == ids[5]).values(block_number=9))
        db.connection().execute(EVENTS.delete().where(c.id == ids[6]))
    with session(engine) as db:
        asked = [ids[1], ids[2], ids[4], ids[5], ids[6], ids[9]]
        assert points.still_staged(db, asked) == {ids[1], ids[4], ids[9]}  # not ids[3]: not asked
        assert points.still_staged(db, []) == set()


def test_a_claim_writes_the_hash_on_exactly_those_rows_over_several_slices(engine: Engine) -> None:
    partner, _, members = _seed(engine)
    _events(engine, partner, members, 2 * IN_LIMIT + 30)
    ids = [row[0] for row in _stored(engine)]
    claimed = random.Random(3).sample(ids, 2 * IN_LIMIT + 7)  # in no order, as a batch sorted by member
    tx_hash = "0x" + "5e" * 32
    with session(engine) as db:
        points.OUTBOX.claim(db, claimed, tx_hash)
    after = {row[0]: row[4] for row in _stored(engine)}
    assert {event_id for event_id, found in after.items() if found == tx_hash} == set(claimed)
    assert sum(found is None for found in after.values()) == len(ids) - len(claimed)
    with session(engine) as db:
        assert points.OUTBOX.in_flight(db, partner.id or 0) == [tx_hash]
        confirmed = points.OUTBOX.confirm(db, tx_hash, 12, None)
    assert [row.id for row in confirmed] == sorted(claimed)
