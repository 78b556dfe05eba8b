"""`insert_rows`: the store's fast executemany must write exactly what SQLAlchemy's own would."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import Engine, bindparam, event, insert, text
from sqlalchemy import select as sa_select
from sqlalchemy.exc import StatementError
from sqlmodel import Session, select

from offchain.db import IN_LIMIT, driver_rows, insert_rows, make_engine, migrate, select_in, session
from offchain.models import Batch, Interaction, InteractionKind, Partner, PointEvent, PointKind
from offchain.repositories import interactions
from tests.offchain.test_store import AWKWARD_BYTES, _customer, _hash, _partner

INTERACTIONS = Interaction.__table__  # type: ignore[attr-defined]
COLUMNS = [c.name for c in INTERACTIONS.c if c.name not in ("id", "created_at")]  # created_at: now()


def _rows(partner_id: int, member_id: bytes, prefix: str) -> list[dict[str, object]]:
    later = datetime(2025, 3, 30, 1, 30, 15, 123456, tzinfo=timezone(timedelta(hours=-5)))
    now = datetime.now(UTC)
    return [
        {
            "partner_id": partner_id,
            "member_id": member_id,
            "kind": kind,
            "external_key": f"{prefix}-{n}" if n % 3 else None,
            "occurred_at": when,
            "payload_ciphertext": AWKWARD_BYTES[n:],
            "leaf_hash": _hash(f"{prefix} {n}"),
            "batch_id": None,
            "leaf_index": None,
            "proof": None if n % 2 else _hash("a") + _hash("b"),
            "created_at": now,  # the same value in every row, as in an import
        }
        for n, (kind, when) in enumerate(
            [
                (InteractionKind.PURCHASE, later),
                (InteractionKind.RETURN, later),
                (InteractionKind.SUPPORT_TICKET, datetime(2010, 12, 1, 8, 26, tzinfo=UTC)),
                (InteractionKind.PURCHASE, datetime(1999, 1, 1, tzinfo=timezone(timedelta(hours=14)))),
            ]
        )
    ]


def _stored(engine: Engine) -> list[tuple[object, ...]]:
    """The interactions as the database holds them (no type processing on the way out), without ids."""
    with engine.connect() as connection:
        found = connection.execute(text(f"SELECT {', '.join(COLUMNS)} FROM interactions ORDER BY id")).all()
    return [tuple(bytes(v) if isinstance(v, memoryview) else v for v in row) for row in found]


def test_insert_rows_writes_what_sqlalchemy_writes(engine: Engine) -> None:
    with session(engine) as db:
        partner = _partner(db)
        customer = _customer(db, partner)
        assert partner.id is not None
        db.connection().execute(insert(INTERACTIONS), _rows(partner.id, customer.member_id, "core"))
    reference = _stored(engine)
    with session(engine) as db:
        db.exec(text("DELETE FROM interactions"))  # type: ignore[call-overload]
        insert_rows(db.connection(), INTERACTIONS, _rows(partner.id, customer.member_id, "core"))
    assert len(reference) == 4
    assert _stored(engine) == reference  # byte for byte, the stored date strings included
    with Session(engine) as db:
        back = db.exec(select(Interaction).order_by(Interaction.id)).all()  # type: ignore[arg-type]
        assert [i.kind for i in back] == [
            InteractionKind.PURCHASE,
            InteractionKind.RETURN,
            InteractionKind.SUPPORT_TICKET,
            InteractionKind.PURCHASE,
        ]
        assert back[0].occurred_at == datetime(2025, 3, 30, 6, 30, 15, 123456, tzinfo=UTC)
        assert back[1].payload_ciphertext == AWKWARD_BYTES[1:]


def test_insert_rows_refuses_what_sqlalchemy_refuses(engine: Engine) -> None:
    with session(engine) as db:
        partner = _partner(db)
        customer = _customer(db, partner)
        assert partner.id is not None
        rows = _rows(partner.id, customer.member_id, "naive")
        rows[2]["occurred_at"] = datetime(2025, 1, 1)  # no time zone
        with pytest.raises((StatementError, ValueError), match="timezone"):
            insert_rows(db.connection(), INTERACTIONS, rows)
        rows[2]["occurred_at"] = datetime(2025, 1, 1, tzinfo=UTC)
        rows[3]["kind"] = "not a kind"
        with pytest.raises((StatementError, LookupError, ValueError)):
            insert_rows(db.connection(), INTERACTIONS, rows)


def test_insert_rows_leaves_python_side_defaults_to_sqlalchemy(engine: Engine) -> None:
    with session(engine) as db:
        partner: Partner = _partner(db)
        customer = _customer(db, partner)
        assert partner.id is not None
        row = {
            "partner_id": partner.id,
            "member_id": customer.member_id,
            "kind": PointKind.EARN,
            "amount": 5,
            "ref": os.urandom(32),
            "external_key": "inv-1",
        }  # no created_at: the model's default fills it in
        insert_rows(db.connection(), PointEvent.__table__, [row])  # type: ignore[attr-defined]
    with Session(engine) as db:
        assert db.exec(select(PointEvent)).one().created_at is not None


def test_select_in_reads_what_a_core_select_reads(engine: Engine) -> None:
    """Enum, datetime, bytes and nullable columns, a condition, and more keys than one IN list takes."""
    with session(engine) as db:
        partner = _partner(db)
        other = _partner(db, "other")
        customer, theirs = _customer(db, partner), _customer(db, other)
        assert partner.id is not None and other.id is not None
        rows = _rows(partner.id, customer.member_id, "mine") + _rows(other.id, theirs.member_id, "theirs")
        insert_rows(db.connection(), INTERACTIONS, rows)
    columns = ("kind", "external_key", "occurred_at", "payload_ciphertext", "proof", "partner_id")
    keys = [f"mine-{n}" for n in range(4)] + [f"theirs-{n}" for n in range(4)]
    keys += [f"absent-{n}" for n in range(2 * IN_LIMIT)]  # three IN lists
    with session(engine) as db:
        query = sa_select(*(INTERACTIONS.c[name] for name in columns)).where(
            INTERACTIONS.c.partner_id == partner.id, INTERACTIONS.c.external_key.in_(keys[:8])
        )
        reference = sorted(tuple(row) for row in db.connection().execute(query))
        fast = select_in(db.connection(), INTERACTIONS, columns, "external_key", keys, partner_id=partner.id)
        everyone = select_in(db.connection(), INTERACTIONS, ("external_key",), "external_key", keys)
        assert select_in(db.connection(), INTERACTIONS, columns, "external_key", []) == []
    assert len(reference) == 2  # external keys mine-1 and mine-2 (every third row has none)
    assert sorted(fast) == reference
    assert {kind for kind, *_ in fast} == {InteractionKind.RETURN, InteractionKind.SUPPORT_TICKET}
    assert all(isinstance(row[2], datetime) and row[2].tzinfo is not None for row in fast)
    assert sorted(key for (key,) in everyone) == ["mine-1", "mine-2", "theirs-1", "theirs-2"]


def test_postgresql_batches_inserts_and_plans_each_lookup_for_its_values(postgres_url: str) -> None:
    """An executemany INSERT goes as multi-row statements, and a lookup run often enough to be
    prepared is still planned for its own values and the table as it is now (a generic plan cached
    while the table was small scanned every row of the partner for each lookup as it grew)."""
    engine = make_engine(postgres_url)
    try:
        migrate(engine)
        statements: list[str] = []
        event.listen(engine, "before_cursor_execute", lambda *a: statements.append(a[2]))
        with session(engine) as db:
            partner = _partner(db)
            customer = _customer(db, partner)
            assert partner.id is not None
            rows = [
                {
                    "partner_id": partner.id,
                    "member_id": customer.member_id,
                    "kind": PointKind.EARN,
                    "amount": n + 1,
                    "ref": _hash(f"ref {n}"),
                    "external_key": f"inv-{n}",
                    "tx_hash": None,
                    "block_number": None,
                    "created_at": datetime.now(UTC),
                }
                for n in range(1001)
            ]
            statements.clear()
            insert_rows(db.connection(), PointEvent.__table__, rows)  # type: ignore[attr-defined]
            assert len([s for s in statements if s.startswith("INSERT")]) == 2  # 1,000 rows a statement
            stored = db.connection().execute(text("SELECT external_key, amount FROM point_events")).all()
            assert sorted(stored) == sorted((row["external_key"], row["amount"]) for row in rows)
            db.rollback()  # the setting below is the connection's, not this transaction's
        with engine.connect() as connection:
            assert connection.exec_driver_sql("SHOW plan_cache_mode").scalar_one() == "force_custom_plan"
    finally:
        engine.dispose()


def _two_partners_rows(engine: Engine) -> tuple[int, int, bytes, bytes]:
    """Both partners' four awkward rows (enums, zone-shifted times, NULLs, every byte value), three of
    each placed in a batch of its partner's, at leaf indices 2, 1, 0 (not in id order); (partner id,
    other's id, member, other's member)."""
    with session(engine) as db:
        partner, other = _partner(db), _partner(db, "other")
        customer, theirs = _customer(db, partner), _customer(db, other)
        assert partner.id is not None and other.id is not None
        rows = _rows(partner.id, customer.member_id, "mine") + _rows(other.id, theirs.member_id, "theirs")
        batches = {
            partner.id: Batch(partner_id=partner.id, root=_hash("mine"), size=3),
            other.id: Batch(partner_id=other.id, root=_hash("theirs"), size=3),
        }
        db.add_all(batches.values())
        db.flush()
        for n, row in enumerate(rows):
            if n % 4 != 3:  # one row of each partner unplaced
                owner = partner.id if n < 4 else other.id
                row["leaf_index"], row["batch_id"] = 2 - n % 4, batches[owner].id
        insert_rows(db.connection(), INTERACTIONS, rows)
    return partner.id, other.id, customer.member_id, theirs.member_id


def test_select_in_by_bytes_and_by_ids_reads_what_a_core_select_reads(engine: Engine) -> None:
    """Keys that are bytes (on PostgreSQL one bytea[] array) and ids past one IN list: the same rows,
    with the same Python values (bytes, never hex text or a memoryview), as Core's select."""
    partner_id, _, member, theirs = _two_partners_rows(engine)
    columns = ("id", "member_id", "kind", "occurred_at", "payload_ciphertext", "leaf_hash", "proof")
    c = INTERACTIONS.c
    with session(engine) as db:
        core = sa_select(*(c[name] for name in columns))
        everything = sorted(tuple(row) for row in db.connection().execute(core))
        ids = [row[0] for row in everything] + list(range(10**6, 10**6 + 2 * IN_LIMIT))  # absent ids too
        by_ids = select_in(db.connection(), INTERACTIONS, columns, "id", ids)
        members = [member, theirs, os.urandom(32)]
        by_members = select_in(
            db.connection(), INTERACTIONS, columns, "member_id", members, partner_id=partner_id
        )
        mine = sorted(tuple(row) for row in db.connection().execute(core.where(c.partner_id == partner_id)))
    assert len(everything) == 8
    assert sorted(by_ids) == everything
    assert sorted(by_members) == mine and len(mine) == 4
    for row in by_ids:
        assert all(type(value) is bytes for value in (row[1], row[4], row[5]))
        assert row[6] is None or type(row[6]) is bytes
    assert {row[4] for row in by_ids} == {AWKWARD_BYTES[n:] for n in range(4)}


def test_log_rows_and_id_chunks_read_what_core_reads(engine: Engine) -> None:
    """The log check's reads (through the driver on both stores, in binary on PostgreSQL): the
    partner's rows in a range of leaf indices, in leaf order, those beyond a size, and its ids in
    order, in chunks; nothing of the other partner's."""
    partner_id, _, _, _ = _two_partners_rows(engine)
    c = INTERACTIONS.c
    with session(engine) as db:
        core = sa_select(c.id, c.leaf_index, c.leaf_hash, c.proof, c.batch_id, c.member_id)
        placed = db.connection().execute(
            core.where(c.partner_id == partner_id, c.leaf_index.is_not(None)).order_by(c.leaf_index)
        )
        expected = [tuple(row) for row in placed]
        assert [tuple(r) for r in interactions.log_rows(db, partner_id, 0, 3)] == expected
        assert [tuple(r) for r in interactions.log_rows(db, partner_id, 1, 2)] == expected[1:2]
        assert interactions.log_rows(db, partner_id, 3, 2**31 - 1) == []
        assert [tuple(r) for r in interactions.placed_beyond(db, partner_id, 1)] == expected[1:]
        ids = sorted(
            row[0] for row in db.connection().execute(sa_select(c.id).where(c.partner_id == partner_id))
        )
        assert [list(chunk) for chunk in interactions.id_chunks(db, partner_id, 3)] == [ids[:3], ids[3:]]
    assert len(expected) == 3 and all(type(row[2]) is bytes for row in expected)


def test_driver_rows_reads_what_core_reads(engine: Engine) -> None:
    """A compiled-once query with bound values (an enum, a time, a LIMIT) on either store's driver: the
    rows Core gives, with an enum's and a time's Python values."""
    partner_id, _, _, _ = _two_partners_rows(engine)
    c = INTERACTIONS.c
    query = (
        sa_select(c.id, c.kind, c.occurred_at, c.payload_ciphertext, c.external_key)
        .where(c.partner_id == bindparam("partner"), c.kind == bindparam("kind"))
        .order_by(c.id)
        .limit(bindparam("limit"))
    )
    values = {"partner": partner_id, "kind": InteractionKind.PURCHASE, "limit": 5}
    with session(engine) as db:
        reference = [tuple(row) for row in db.connection().execute(query, values)]
        fast = [tuple(row) for row in driver_rows(db.connection(), query, values)]
        again = driver_rows(db.connection(), query, {**values, "limit": 1})  # the compiled text reused
    assert len(reference) == 2
    assert fast == reference
    assert [row[1] for row in fast] == [InteractionKind.PURCHASE, InteractionKind.PURCHASE]
    assert fast[0][2] == datetime(2025, 3, 30, 6, 30, 15, 123456, tzinfo=UTC)
    assert [tuple(row) for row in again] == reference[:1]


def test_log_reads_past_the_leaf_index_columns_range_find_nothing(engine: Engine) -> None:
    """A leaf index or a head's size past what the leaf_index column holds (an index an auditor asks
    for, a size a head on chain claims, a batch's end a broken store gives) finds no row: on PostgreSQL,
    whose INTEGER is 4 bytes, the server refused such a bound (NumericValueOutOfRange), which was a 500
    behind GET /logs/{partner}/leaves/{index}."""
    partner_id, _, _, _ = _two_partners_rows(engine)
    with session(engine) as db:
        for index in (2**31 - 1, 2**31, 2**40, 2**63 - 1, 2**63, 2**64):
            assert interactions.log_rows(db, partner_id, index, index + 1) == []
            assert interactions.placed_beyond(db, partner_id, index) == []
        whole = interactions.log_rows(db, partner_id, 0, 2**64)
        assert [row.leaf_index for row in whole] == [0, 1, 2]
        assert [row.leaf_index for row in interactions.log_rows(db, partner_id, 1, 2**31)] == [1, 2]
        assert interactions.log_rows(db, partner_id, 2, 1) == []
