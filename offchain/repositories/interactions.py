"""Interactions: sealed payloads, their leaf hashes, and where each leaf sits in an anchoring batch."""

from __future__ import annotations

from array import array
from collections.abc import Collection, Iterable, Iterator, Sequence
from datetime import UTC, datetime
from typing import Any, NamedTuple

from sqlalchemy import Connection, bindparam, func, insert, text, update
from sqlalchemy import select as core_select
from sqlmodel import Session

from offchain.db import driver_rows, in_chunks, insert_rows, select_in
from offchain.models import Interaction, InteractionKind

_TABLE = Interaction.__table__  # type: ignore[attr-defined]
_C = _TABLE.c


class InteractionRow(NamedTuple):
    """The columns of an interaction that verification reads. A plain tuple from a Core select:
    building ORM objects cost more than decrypting and hashing the rows."""

    id: int
    partner_id: int
    member_id: bytes
    kind: InteractionKind
    external_key: str | None
    occurred_at: datetime
    payload_ciphertext: bytes | None
    leaf_hash: bytes
    batch_id: int | None
    leaf_index: int | None
    proof: bytes | None


_ROW = core_select(*(_C[name] for name in InteractionRow._fields))


def existing_keys(db: Session, partner_id: int, keys: Sequence[str]) -> set[str]:
    """Those of these external keys the partner has already recorded."""
    rows = select_in(db.connection(), _TABLE, ("external_key",), "external_key", keys, partner_id=partner_id)
    return {key for (key,) in rows}


def insert_many(db: Session, rows: list[dict[str, Any]]) -> list[int]:
    """INSERT `rows` (plain dicts, every column given); their ids, in order."""
    connection = db.connection()
    if connection.dialect.name != "sqlite":
        # PostgreSQL: SQLAlchemy sends these as a few multi-row INSERT ... RETURNING statements
        statement = insert(_TABLE).returning(_C.id, sort_by_parameter_order=True)
        return [int(row[0]) for row in connection.execute(statement, rows)]
    # On SQLite, asking for the ids in parameter order makes SQLAlchemy insert row by row (RETURNING
    # order is not guaranteed there); a plain executemany is one loop in C. This transaction holds the
    # write lock from its first write to its commit, and SQLite gives a new row the largest rowid plus
    # one, so the rows have consecutive ids ending at last_insert_rowid(); the count below checks it.
    insert_rows(connection, _TABLE, rows)
    last = int(connection.execute(text("SELECT last_insert_rowid()")).scalar_one())
    first = last - len(rows) + 1
    found = connection.execute(core_select(func.count()).where(_C.id.between(first, last))).scalar_one()
    if found != len(rows):
        raise RuntimeError(f"expected ids {first}..{last} for {len(rows)} new interactions, found {found}")
    return list(range(first, last + 1))


def pending_summary(db: Session, partner_id: int) -> tuple[int, datetime | None]:
    """How many of the partner's interactions wait for a batch, and when the oldest was recorded."""
    count, oldest = (
        db.connection()
        .execute(
            core_select(func.count(), func.min(_C.created_at)).where(
                _C.partner_id == partner_id, _C.batch_id.is_(None)
            )
        )
        .one()
    )
    return int(count), oldest


def take_unbatched(db: Session, partner_id: int, limit: int) -> list[tuple[int, bytes]]:
    """(id, leaf hash) of the partner's oldest interactions in no batch yet, locked for this
    transaction where the database can (PostgreSQL: two workers never batch the same leaf)."""
    rows = db.connection().execute(
        core_select(_C.id, _C.leaf_hash)
        # the (batch_id, partner_id, id) index yields them in order
        .where(_C.batch_id.is_(None), _C.partner_id == partner_id)
        .order_by(_C.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return [(int(row_id), bytes(leaf)) for row_id, leaf in rows]


def place(db: Session, batch_id: int, placements: Iterable[tuple[int, int, bytes]]) -> None:
    """Put interactions (id, leaf index, proof) into a batch: one executemany by primary key (loading
    and flushing a thousand ORM objects, ciphertexts included, cost more than the rest of anchoring)."""
    db.connection().execute(
        update(_TABLE)
        .where(_C.id == bindparam("row_id"))
        .values(batch_id=bindparam("batch"), leaf_index=bindparam("index"), proof=bindparam("path")),
        [
            {"row_id": row_id, "batch": batch_id, "index": index, "path": proof}
            for row_id, index, proof in placements
        ],
    )


def count_of_member(db: Session, member: bytes) -> int:
    return int(db.connection().execute(core_select(func.count()).where(_C.member_id == member)).scalar_one())


# What an erased interaction's row says of when it happened: nothing (the epoch, never a real time).
ERASED_TIME = datetime(1970, 1, 1, tzinfo=UTC)


def drop_payloads(db: Session, member: bytes) -> None:
    """Erasure: the member's payload ciphertexts go, and with them whatever the row says in clear of
    the partner's own records (the external key, e.g. an invoice number, and when it happened), which
    would link the member's leaves back to them; the rows stay as tombstones (leaf, proof)."""
    db.connection().execute(
        update(_TABLE)
        .where(_C.member_id == member)
        .values(payload_ciphertext=None, external_key=None, occurred_at=ERASED_TIME)
    )


def row(db: Session, interaction_id: int) -> InteractionRow | None:
    found = db.connection().execute(_ROW.where(_C.id == interaction_id)).first()
    return None if found is None else InteractionRow._make(found)


def rows_in_chunks(
    db: Session, partner_id: int, members: Collection[bytes] | None, chunk_rows: int
) -> Iterator[list[InteractionRow]]:
    """The partner's interactions (only those of `members`, if given) in id order, `chunk_rows` at a time.

    First their ids, through an index, then the rows by primary key: one query for the rows, ordered
    by id, made SQLite copy every row, payloads and all, into a temporary B-tree to sort them before it
    returned the first one. The rows come through `select_in` (on SQLite the statement goes to the
    driver as text and each column's values are converted once per distinct value) and are put in id
    order here: through Core, a row cost ~10 µs of result processing, 10.6 CPU s of a 1M run."""
    conn = db.connection()
    query = core_select(_C.id).where(_C.partner_id == partner_id)
    ids: Sequence[int]
    if members is None:
        ids = array("q", conn.execute(query.order_by(_C.id)).scalars())  # 8 bytes an id, not ~36
    else:
        ids = sorted(
            row_id
            for chunk in in_chunks(list(members))
            for row_id in conn.execute(query.where(_C.member_id.in_(chunk))).scalars()
        )
    wanted = None if members is None else set(members)
    for start in range(0, len(ids), chunk_rows):
        yield _rows_of_ids(conn, partner_id, ids[start : start + chunk_rows], wanted)


def id_chunks(db: Session, partner_id: int, chunk_rows: int) -> list[Sequence[int]]:
    """The ids of the partner's interactions in order, in slices of `chunk_rows`: the chunks
    `rows_in_chunks(db, partner_id, None, chunk_rows)` reads, for a reader that may skip some."""
    found = driver_rows(db.connection(), _IDS_OF_PARTNER, {"partner": partner_id})
    ids = array("q", map(_first, found))
    return [ids[start : start + chunk_rows] for start in range(0, len(ids), chunk_rows)]


_IDS_OF_PARTNER = core_select(_C.id).where(_C.partner_id == bindparam("partner")).order_by(_C.id)


def rows_of_ids(db: Session, partner_id: int, ids: Sequence[int]) -> list[InteractionRow]:
    """The partner's interactions of these ids (one of `id_chunks`), in id order."""
    return _rows_of_ids(db.connection(), partner_id, ids, None)


def _rows_of_ids(
    conn: Connection, partner_id: int, ids: Sequence[int], wanted: set[bytes] | None
) -> list[InteractionRow]:
    found = select_in(conn, _TABLE, InteractionRow._fields, "id", ids)
    found.sort(key=_first)
    rows = [InteractionRow._make(row) for row in found]
    # Where the two reads are not one snapshot (PostgreSQL's read committed), a row may have changed
    # in between: keep only what the first query asked for.
    return [r for r in rows if r.partner_id == partner_id and (wanted is None or r.member_id in wanted)]


def _first(row: tuple[Any, ...]) -> Any:
    return row[0]


def leaves_of_batch(db: Session, batch_id: int) -> dict[int, bytes]:
    """leaf index -> leaf hash of the interactions the store places in a batch."""
    query = core_select(_C.leaf_index, _C.leaf_hash).where(_C.batch_id == batch_id)
    return {int(index): bytes(leaf) for index, leaf in db.connection().execute(query).all()}


class LogRow(NamedTuple):
    """What the log check reads of an interaction: no payload."""

    id: int
    leaf_index: int
    leaf_hash: bytes
    proof: bytes | None
    batch_id: int | None
    member_id: bytes


_LOG_ROW = core_select(*(_C[name] for name in LogRow._fields))
# read through the driver (`driver_rows`): a log check reads every row's leaf and proof (~20 MB of
# Online Retail II's), where SQLAlchemy's per-row work and PostgreSQL's hex text cost more than the read
_LOG_RANGE = _LOG_ROW.where(
    _C.partner_id == bindparam("partner"),
    _C.leaf_index >= bindparam("start"),
    _C.leaf_index <= bindparam("last"),
).order_by(_C.leaf_index, _C.id)
_BEYOND = _LOG_ROW.where(_C.partner_id == bindparam("partner"), _C.leaf_index >= bindparam("start")).order_by(
    _C.leaf_index
)


def _leaf_index_range(db: Session) -> tuple[int, int]:
    """The values the leaf_index column holds: an INTEGER, 4 bytes on PostgreSQL and 8 on SQLite. A bound
    outside them is refused by the driver or the server (an index an auditor asks for, a size a head on
    chain claims, a batch's end a broken store gives) though it can only mean "no row there"."""
    top = 2**31 - 1 if db.get_bind().dialect.name == "postgresql" else 2**63 - 1
    return -top - 1, top


def log_rows(db: Session, partner_id: int, start: int, stop: int) -> list[LogRow]:
    """The partner's interactions at leaf indices [start, stop), in leaf order (two rows at one index,
    which only an edit behind the system's back makes, both come back)."""
    low, top = _leaf_index_range(db)
    if start >= stop or start > top or stop <= low:
        return []
    values = {"partner": partner_id, "start": max(start, low), "last": min(stop - 1, top)}
    return [LogRow._make(row) for row in driver_rows(db.connection(), _LOG_RANGE, values)]


def count_of_partners(db: Session, partner_ids: Collection[int]) -> int:
    """How many interactions these partners hold, placed or not."""
    query = core_select(func.count()).where(_C.partner_id.in_(list(partner_ids)))
    return int(db.connection().execute(query).scalar_one())


def placed_count(db: Session, partner_id: int) -> int:
    """How many of the partner's interactions have a place in its log."""
    query = core_select(func.count()).where(_C.partner_id == partner_id, _C.leaf_index.is_not(None))
    return int(db.connection().execute(query).scalar_one())


def placed_beyond(db: Session, partner_id: int, size: int) -> list[LogRow]:
    """The partner's interactions placed at leaf indices the chain's log does not reach."""
    low, top = _leaf_index_range(db)
    if size > top:
        return []
    values = {"partner": partner_id, "start": max(size, low)}
    return [LogRow._make(row) for row in driver_rows(db.connection(), _BEYOND, values)]


def count_by_member(db: Session, partner_id: int, members: Collection[bytes]) -> dict[bytes, int]:
    """How many interactions the partner holds of each of these members."""
    counts: dict[bytes, int] = {}
    query = core_select(_C.member_id, func.count()).where(_C.partner_id == partner_id).group_by(_C.member_id)
    for chunk in in_chunks(list(members)):
        for member, count in db.connection().execute(query.where(_C.member_id.in_(chunk))):
            counts[bytes(member)] = int(count)
    return counts


def count_in_batch(db: Session, batch_id: int) -> int:
    query = core_select(func.count()).where(_C.batch_id == batch_id)
    return int(db.connection().execute(query).scalar_one())


def by_external_key(db: Session, partner_id: int, external_key: str) -> InteractionRow | None:
    """The partner's interaction recorded under `external_key`, if any."""
    query = _ROW.where(_C.partner_id == partner_id, _C.external_key == external_key)
    found = db.connection().execute(query).first()
    return None if found is None else InteractionRow._make(found)


def of_member(db: Session, partner_id: int, member: bytes) -> list[InteractionRow]:
    """The partner's interactions of one member, oldest first."""
    query = _ROW.where(_C.partner_id == partner_id, _C.member_id == member).order_by(_C.id)
    return [InteractionRow._make(row) for row in db.connection().execute(query)]
