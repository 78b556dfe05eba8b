"""Engines, sessions and migrations for the off-chain store (SQLite by default, PostgreSQL in production).

The schema is owned by Alembic (`offchain/migrations`), never by `metadata.create_all`: `migrate` is
how a database is created and upgraded, and a test checks that the migrations and the models agree.
"""

from __future__ import annotations

import sqlite3
import sys
import threading
import weakref
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from operator import itemgetter
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import (
    URL,
    Connection,
    Engine,
    LargeBinary,
    Select,
    Table,
    create_engine,
    event,
    insert,
    inspect,
    update,
)
from sqlalchemy import select as core_select
from sqlalchemy.pool import ConnectionPoolEntry
from sqlalchemy.types import TypeEngine
from sqlmodel import Session

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
# The newest migration (a test holds it to the scripts' head): a store already there is opened without
# loading Alembic at all, which with its scripts costs ~0.45 s of every command's start.
HEAD_REVISION = "0011_ml_serve"
# Values per `IN (...)` list: under the 999 bound parameters of older SQLite builds (newer ones allow
# 32,766), whatever else the statement binds. Every repository splits its lookups by this.
IN_LIMIT = 500
DATABASE_FILE = "data.sqlite"  # beside the key store's keys.sqlite

# Per connection, because SQLite keeps these per connection (only journal_mode persists in the file):
# - WAL: readers do not block the writer, so the API can serve while the anchoring worker commits.
# - synchronous=NORMAL: with WAL this never corrupts the file and fsyncs only at checkpoints; the price is
#   that a power cut (not a process crash) may undo the last few commits. A deployment that cannot accept
#   that runs on PostgreSQL. An anchoring step undone this way is found again from the chain by its root.
# - foreign_keys: SQLite ignores REFERENCES clauses unless asked.
# - secure_delete: overwrite deleted content with zeros instead of leaving it in free pages, so a
#   tombstoned payload cannot be carved out of the file (see `purge_deleted` for the WAL file).
# - page_size (before WAL, which fixes it; a file that exists keeps its own): 16 KiB. An interaction row
#   (sealed document, proof) is ~2.5 kB, one to a 4 KiB page with the rest of the page left empty;
#   16 KiB pages hold six. Inserting the 44,876 rows of Online Retail II in the import's chunks took
#   2.24 s with 4 KiB pages and 1.75 s with 16 KiB (their commits 1.04 s and 0.60 s).
# - cache_size (WRITE_CACHE_KIB, set at each checkout): 64 MiB of pages at most (SQLite's default is
#   2 MiB, 125 of these pages), allocated as they are read. An import's inserts update the indexes of
#   tables of 100+ MB in scattered places; with the default, those pages were evicted and read back from
#   the OS between chunks. The Online Retail II import's interaction inserts took 1.5 s and its
#   point-event inserts 0.7 s with the default, 1.0-1.3 s and 0.46-0.64 s with this; its peak RSS grew
#   by 9 MB.
T = TypeVar("T")

SQLITE_PRAGMAS = (
    "PRAGMA page_size=16384",
    "PRAGMA journal_mode=WAL",
    "PRAGMA synchronous=NORMAL",
    "PRAGMA foreign_keys=ON",
    "PRAGMA secure_delete=ON",
)
WRITE_CACHE_KIB = 65536
_WRITER = "ledgercrm_writer"  # an execution option: this unit of work begins as a writer (see `session`)
# - cache_size while `streaming_reads` (a run that reads the store once from end to end, as verification
#   does, gains nothing from keeping what it has read): verify --all at 100k interactions filled the
#   64 MiB while it checked the log, 56 MB of its 279 MB peak; with 8 MiB its time did not move.
READ_CACHE_KIB = 8192
# SQLite's own wal_autocheckpoint (pages): a commit that leaves more than this in the WAL copies the WAL
# into the database file there and then, in the committing thread (`checkpoints_beside` moves that work).
AUTOCHECKPOINT_PAGES = 1000
CHECKPOINT_EVERY = 0.25  # seconds between the passes of a `checkpoints_beside` thread


class _CacheSize:
    """What cache_size an engine's SQLite connections get at their next checkout (see `streaming_reads`)."""

    def __init__(self) -> None:
        self.readers = 0  # `streaming_reads` blocks open

    def checkout(self, dbapi_connection: Any, record: ConnectionPoolEntry, _proxy: Any) -> None:
        wanted = READ_CACHE_KIB if self.readers else WRITE_CACHE_KIB
        if record.info.get("cache_kib") != wanted:
            dbapi_connection.execute(f"PRAGMA cache_size=-{wanted}")  # KiB when negative
            record.info["cache_kib"] = wanted


_CACHE_SIZES: weakref.WeakKeyDictionary[Engine, _CacheSize] = weakref.WeakKeyDictionary()


class _Checkpoints:
    """Whether an engine's SQLite connections checkpoint at their own commits, set at each checkout (see
    `checkpoints_beside`)."""

    def __init__(self) -> None:
        self.beside = 0  # `checkpoints_beside` blocks open

    def checkout(self, dbapi_connection: Any, record: ConnectionPoolEntry, _proxy: Any) -> None:
        wanted = 0 if self.beside else AUTOCHECKPOINT_PAGES
        if record.info.get("autocheckpoint", AUTOCHECKPOINT_PAGES) != wanted:
            dbapi_connection.execute(f"PRAGMA wal_autocheckpoint={wanted}")
            record.info["autocheckpoint"] = wanted


_CHECKPOINTS: weakref.WeakKeyDictionary[Engine, _Checkpoints] = weakref.WeakKeyDictionary()


def default_url(home: Path) -> str:
    """The SQLite store under a ledgercrm home directory (which must exist)."""
    return URL.create("sqlite+pysqlite", database=str(home / DATABASE_FILE)).render_as_string()


def make_engine(url: str, *, echo: bool = False) -> Engine:
    """An engine for a SQLite file (configured as above) or PostgreSQL (``postgresql+psycopg://...``)."""
    engine = create_engine(url, echo=echo)
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _configure_sqlite)
        event.listen(engine, "begin", _begin_sqlite)
        _CACHE_SIZES[engine] = cache = _CacheSize()
        event.listen(engine, "checkout", cache.checkout)
        _CHECKPOINTS[engine] = checkpoints = _Checkpoints()
        event.listen(engine, "checkout", checkpoints.checkout)
    elif engine.dialect.name == "postgresql":
        event.listen(engine, "connect", _configure_postgresql)
        # An executemany INSERT without RETURNING goes as multi-row INSERT ... VALUES statements of up to
        # 1,000 rows (SQLAlchemy's "insertmanyvalues", which psycopg2's dialect uses already), not as one
        # statement per row: the Online Retail II import's 36,951 point events were 36,946 statements.
        engine.dialect.use_insertmanyvalues_wo_returning = True
    return engine


def _configure_postgresql(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
    # psycopg prepares a statement on the server once it has run five times, and PostgreSQL may then
    # keep one generic plan for it, made from the statistics of that moment. An import's lookups (which
    # of these 500 invoice numbers exist?) were planned while the table held 29 rows: a scan of every
    # row of the partner, filtered, kept while the table grew to 44,876 rows (250 ms a lookup, 22 of
    # the import's 41 server CPU seconds). Plans made for each execution's values cost ~1 ms.
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("SET plan_cache_mode = force_custom_plan")
    finally:
        cursor.close()
    dbapi_connection.commit()  # a session setting, kept: a later rollback must not undo it


def _configure_sqlite(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
    assert isinstance(dbapi_connection, sqlite3.Connection)
    # Take transaction control away from the sqlite3 module, which BEGINs only before DML: DDL would
    # autocommit (a failed migration would stay half applied) and a released SAVEPOINT opened before any
    # DML would commit on its own, out of reach of the enclosing rollback. `_begin_sqlite` BEGINs instead.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        for pragma in SQLITE_PRAGMAS:
            cursor.execute(pragma)
    finally:
        cursor.close()


def _begin_sqlite(connection: Connection) -> None:
    options = connection.get_execution_options()
    # an AUTOCOMMIT connection asked for no transaction; a BEGIN would make its writes roll back at close
    if options.get("isolation_level") != "AUTOCOMMIT":
        connection.exec_driver_sql("BEGIN IMMEDIATE" if options.get(_WRITER) else "BEGIN")


@contextmanager
def streaming_reads(engine: Engine) -> Iterator[None]:
    """Within this block, the engine's SQLite connections keep a page cache of `READ_CACHE_KIB`, not the
    `WRITE_CACHE_KIB` an import's writes want, from their next checkout on (each unit of work checks one
    out). A no-op elsewhere: PostgreSQL's cache is the server's."""
    cache = _CACHE_SIZES.get(engine)
    if cache is None:
        yield
        return
    cache.readers += 1
    try:
        yield
    finally:
        cache.readers -= 1


@contextmanager
def checkpoints_beside(engine: Engine, every: float = CHECKPOINT_EVERY) -> Iterator[None]:
    """Within this block, the engine's SQLite connections leave their WAL to a thread of this process,
    which checkpoints it (PASSIVE: never waiting for a reader or the writer) every `every` seconds, from
    their next checkout on. For bulk writes (an import): a connection's own checkpoint runs in the
    commit that fills the WAL past `AUTOCHECKPOINT_PAGES`, copying ~16 MB of pages into the database
    file and syncing both files, while the writer waits; SQLite runs a checkpoint without the
    interpreter's lock, so on a thread it overlaps the writer's next work (the Online Retail II import:
    ~0.2 s of its main thread's wall, the commits' wait for the disk). Nothing else changes: a commit
    is durable as before (in the WAL, synced at the next checkpoint, synchronous=NORMAL), a checkpoint
    cut short by a crash is finished by the next one, and what the thread has not copied yet is read
    from the WAL. A no-op for an in-memory SQLite store and for PostgreSQL."""
    state = _CHECKPOINTS.get(engine)
    database = engine.url.database
    if state is None or not database or database == ":memory:" or database.startswith("file:"):
        yield
        return
    stop = threading.Event()

    def checkpoint() -> None:
        connection = sqlite3.connect(database, isolation_level=None, check_same_thread=False)
        try:
            connection.execute("PRAGMA synchronous=NORMAL")  # syncs as the store's own connections do
            while not stop.wait(every):
                try:
                    connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
                except sqlite3.OperationalError:  # another connection checkpoints: the next pass goes on
                    continue
        finally:
            connection.close()

    thread = threading.Thread(target=checkpoint, name="sqlite-checkpoints", daemon=True)
    state.beside += 1
    try:
        thread.start()
        yield
    finally:
        stop.set()
        if thread.ident is not None:
            thread.join()
        state.beside -= 1


def purge_deleted(engine: Engine) -> None:
    """Make deletions physical: call after erasing or tombstoning data.

    With WAL, secure_delete zeroes freed content in the *new* page images, but the old images stay in the
    -wal file until a checkpoint copies the pages back into the database; TRUNCATE then empties the WAL.
    PostgreSQL offers no equivalent (dead tuples live until VACUUM and are not zeroed even then), which is
    why erasure rests on deleting the key and the store only ever holds ciphertext.
    """
    if engine.dialect.name != "sqlite":
        return
    with engine.connect() as connection:
        # on the driver connection, outside any transaction: a checkpoint cannot pass an open snapshot
        dbapi_connection = connection.connection.dbapi_connection
        assert isinstance(dbapi_connection, sqlite3.Connection)
        busy, _, _ = dbapi_connection.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
    if busy:
        raise RuntimeError("SQLite WAL checkpoint was blocked by another connection; retry when idle")


def alembic_config(connection: Connection | None = None) -> Config:
    """Alembic configuration built in code, so no alembic.ini is needed at runtime.

    With `connection`, migrations run on it (inside its transaction); without, env.py reads the database
    URL from ``-x url=...`` or ``LEDGERCRM_DATABASE_URL`` (command-line use).
    """
    from alembic.config import Config  # loaded only when a migration has to run (see HEAD_REVISION)

    # stdout given now: Config's default is the sys.stdout of when alembic was first imported, which may
    # be a stream that has been closed since (a command run in-process, with its output captured, first)
    config = Config(stdout=sys.stdout)
    # ConfigParser interpolation: a literal '%' in the checkout's path must be doubled
    config.set_main_option("script_location", str(MIGRATIONS_DIR).replace("%", "%%"))
    if connection is not None:
        # passed as an attribute, not as sqlalchemy.url: the ini parser would choke on '%' in a password
        config.attributes["connection"] = connection
    return config


def migrate(engine_or_url: Engine | str, revision: str = "head") -> None:
    """Create or upgrade the schema to `revision` (default: the newest), in one transaction. A store
    whose recorded revision is already the newest (`HEAD_REVISION`) is left as it is without Alembic."""
    engine = make_engine(engine_or_url) if isinstance(engine_or_url, str) else engine_or_url
    try:
        with engine.begin() as connection:
            if revision == "head" and _recorded_revision(connection) == HEAD_REVISION:
                return
            from alembic import command

            command.upgrade(alembic_config(connection), revision)
    finally:
        if engine is not engine_or_url:
            engine.dispose()


def _recorded_revision(connection: Connection) -> str | None:
    """The revision Alembic recorded in the store (its one-row version table); None for a new store."""
    if not inspect(connection).has_table("alembic_version"):
        return None
    versions = connection.exec_driver_sql("SELECT version_num FROM alembic_version").scalars().all()
    return str(versions[0]) if len(versions) == 1 else None


@contextmanager
def session(engine: Engine, *, writes: bool = False) -> Iterator[Session]:
    """A unit of work: commits when the block exits normally, rolls back if it raises.

    Objects stay readable after the block (no expiry on commit), so a use case can return what it wrote.
    `writes`: the unit reads, then writes what it read decides. On SQLite it then takes the write lock
    when it begins (BEGIN IMMEDIATE), waiting for another writer as any write does. A plain BEGIN reads
    from a snapshot, and if another connection commits before this one's first write, that write fails
    at once with "database is locked" (WAL mode cannot move a reader's snapshot forward into a writer):
    an API key issued while a server's job recorded its progress failed so.
    """
    with Session(engine, expire_on_commit=False) as db_session, db_session.begin():
        if writes:
            db_session.connection(execution_options={_WRITER: True})
        yield db_session


def in_chunks(values: Sequence[T]) -> Iterator[Sequence[T]]:
    """`values` in slices of at most `IN_LIMIT`, for one `IN (...)` query each."""
    for start in range(0, len(values), IN_LIMIT):
        yield values[start : start + IN_LIMIT]


def insert_rows(connection: Connection, table: Table, rows: Sequence[Mapping[str, Any]]) -> None:
    """INSERT `rows` (plain dicts, all with the same keys) into `table` in one executemany.

    On SQLite the values reach the driver exactly as SQLAlchemy would send them, but without its
    per-row, per-value machinery, which costs more than SQLite's own work on an import's thousands of
    rows: each column's bind processor (the dialect's own) runs once per distinct value, and bytes go
    as they are (the binary processor only wraps them in `sqlite3.Binary`, a memoryview that sqlite3
    stores as the same BLOB). Elsewhere (PostgreSQL) this is a plain Core executemany."""
    if not rows:
        return
    names = list(rows[0])
    defaulted = any(column.default is not None and column.name not in names for column in table.c)
    if connection.dialect.name != "sqlite" or defaulted:
        # a column left to its Python-side default needs SQLAlchemy to fill it in
        connection.execute(insert(table), list(rows))
        return
    preparer = connection.dialect.identifier_preparer
    columns = ", ".join(preparer.format_column(table.c[name]) for name in names)  # keys -> column names
    statement = (
        f"INSERT INTO {preparer.format_table(table)} ({columns}) VALUES ({', '.join('?' * len(names))})"
    )
    # rows as lists straight from C (itemgetter), then only the columns that need it converted
    values = (
        [list(row) for row in map(itemgetter(*names), rows)]
        if len(names) > 1
        else [[row[names[0]]] for row in rows]
    )
    for index, name in enumerate(names):
        convert = _converter(table.c[name].type, connection)
        if convert is not None:
            for row_values in values:
                row_values[index] = convert(row_values[index])
    connection.exec_driver_sql(statement, list(map(tuple, values)))  # SQLAlchemy takes tuples only


def select_in(
    connection: Connection,
    table: Table,
    columns: Sequence[str],
    key: str,
    values: Sequence[Any],
    **equal: Any,
) -> list[tuple[Any, ...]]:
    """``SELECT columns FROM table WHERE <each of equal> AND key IN (values)``, in slices of `IN_LIMIT`:
    the rows as tuples of the columns' Python values (what a Core select gives).

    On SQLite the statement goes to the driver as text: an expanding IN list is compiled anew for every
    execution, and each value is bound and each result processed one by one (a thousand members'
    statuses, which an import asks for twice per chunk: 13 ms through Core, 6 ms so). Values are
    converted as `insert_rows` converts them, results by the dialect's result processors, once per
    distinct value. On PostgreSQL the values go as one array (``key = ANY(...)``, no slices) and the
    rows come as the driver's tuples in binary (`_postgresql_any`). Elsewhere a plain Core select."""
    if not values:
        return []
    c = table.c
    if connection.dialect.name == "postgresql":
        return _postgresql_any(connection, table, columns, key, values, equal)
    if connection.dialect.name != "sqlite":
        query = core_select(*(c[name] for name in columns)).where(*(c[k] == v for k, v in equal.items()))
        rows: list[tuple[Any, ...]] = []
        for chunk in in_chunks(values):
            rows.extend(tuple(row) for row in connection.execute(query.where(c[key].in_(chunk))))
        return rows
    preparer = connection.dialect.identifier_preparer
    selected = ", ".join(preparer.format_column(c[name]) for name in columns)
    conditions = [f"{preparer.format_column(c[name])} = ?" for name in equal]
    fixed = [_bound(c[name].type, value, connection) for name, value in equal.items()]
    convert_key = _converter(c[key].type, connection)
    results = [_result_converter(c[name].type, connection) for name in columns]
    rows = []
    # the driver's own cursor, in the connection's transaction: its rows are tuples already, fetched at
    # once, where a driver statement through SQLAlchemy fetched and wrapped them one by one (~0.1 CPU s
    # of the 44,876 rows `score --all` reads)
    driver = connection.connection.driver_connection
    assert driver is not None
    for chunk in in_chunks(values):
        listed = list(chunk) if convert_key is None else [convert_key(value) for value in chunk]
        where = " AND ".join(
            [*conditions, f"{preparer.format_column(c[key])} IN ({', '.join('?' * len(listed))})"]
        )
        statement = f"SELECT {selected} FROM {preparer.format_table(table)} WHERE {where}"
        rows.extend(_converted(driver.execute(statement, (*fixed, *listed)).fetchall(), results))
    return rows


def _postgresql_any(
    connection: Connection,
    table: Table,
    columns: Sequence[str],
    key: str,
    values: Sequence[Any],
    equal: Mapping[str, Any],
) -> list[tuple[Any, ...]]:
    """`select_in` on PostgreSQL: ``... AND key = ANY(CAST(%s AS <key's type>[]))``, on the driver's own
    cursor in the connection's transaction, its results in binary. Through Core, every value of an
    expanding IN list was a parameter of its own, each bytea came back as hex text (twice its size on the
    wire, encoded by the server and decoded here) and each row went through SQLAlchemy's result
    processing: verification's read of Online Retail II's 44,876 rows (2 KB of ciphertext each, chunks
    of 2,000 ids) took 0.66 CPU s here and 0.30 in the server so, 0.23-0.26 and 0.17-0.18 this way
    (benchmarks/README.md, branch pgverify8)."""
    c = table.c
    preparer = connection.dialect.identifier_preparer
    selected = ", ".join(preparer.format_column(c[name]) for name in columns)
    array_of = c[key].type.compile(dialect=connection.dialect)
    where = " AND ".join(
        [
            *(f"{preparer.format_column(c[name])} = %s" for name in equal),
            f"{preparer.format_column(c[key])} = ANY(CAST(%s AS {array_of}[]))",
        ]
    )
    statement = f"SELECT {selected} FROM {preparer.format_table(table)} WHERE {where}"
    convert_key = _converter(c[key].type, connection)
    listed = list(values) if convert_key is None else [convert_key(value) for value in values]
    fixed = [_bound(c[name].type, value, connection) for name, value in equal.items()]
    return _postgresql_rows(
        connection,
        statement,
        (*fixed, listed),
        [_result_converter(c[name].type, connection) for name in columns],
    )


def _postgresql_rows(
    connection: Connection,
    statement: str,
    parameters: Sequence[Any] | Mapping[str, Any],
    results: Sequence[Callable[[Any], Any] | None],
) -> list[tuple[Any, ...]]:
    """`statement` run by psycopg in the connection's transaction, its results in binary (bytea as its
    bytes, not hex): the rows as the driver's tuples, converted by `results` (`_converted`)."""
    driver = connection.connection.driver_connection
    assert driver is not None
    with driver.cursor(binary=True) as cursor:
        cursor.execute(statement, parameters)
        return _converted(cursor.fetchall(), results)


def _converted(
    found: list[tuple[Any, ...]], results: Sequence[Callable[[Any], Any] | None]
) -> list[tuple[Any, ...]]:
    """The driver's rows with each column converted by its entry of `results` (None: as it is)."""
    converting = [(index, convert) for index, convert in enumerate(results) if convert is not None]
    if not converting:
        return found
    rows = []
    for row in found:
        values_of = list(row)
        for index, convert in converting:
            values_of[index] = convert(values_of[index])
        rows.append(tuple(values_of))
    return rows


def update_in(connection: Connection, table: Table, key: str, values: Sequence[Any], **assigned: Any) -> None:
    """``UPDATE table SET <each of assigned> WHERE key IN (values)``, in slices of `IN_LIMIT`: one
    statement per slice, never one per row.

    On SQLite the statement goes to the driver as text, as `select_in`'s does: through Core an expanding
    IN is compiled anew for every execution and each value coerced on the way (an outbox's claim of a
    points batch, ~1,100 ids: ~3 ms so, ~1.6 ms as text). Elsewhere (PostgreSQL) a plain Core update."""
    c = table.c
    if connection.dialect.name != "sqlite":
        for chunk in in_chunks(values):
            connection.execute(update(table).where(c[key].in_(chunk)).values(**assigned))
        return
    preparer = connection.dialect.identifier_preparer
    setting = ", ".join(f"{preparer.format_column(c[name])} = ?" for name in assigned)
    fixed = [_bound(c[name].type, value, connection) for name, value in assigned.items()]
    convert_key = _converter(c[key].type, connection)
    for chunk in in_chunks(values):
        listed = list(chunk) if convert_key is None else [convert_key(value) for value in chunk]
        connection.exec_driver_sql(
            f"UPDATE {preparer.format_table(table)} SET {setting}"
            f" WHERE {preparer.format_column(c[key])} IN ({', '.join('?' * len(listed))})",
            (*fixed, *listed),
        )


def driver_rows(connection: Connection, query: Select[Any], values: Mapping[str, Any]) -> list[Any]:
    """`query` run by the store's driver (SQLite's or psycopg) in the connection's transaction, compiled
    once: its rows as the driver's tuples, each column's values converted by its result processor (an
    enum's, a time's; once per distinct value) where it has one. Each value is bound as its
    parameter's type binds it (`_bound`). Through Core, a sender's read of the points outbox's staged
    window (4,200 rows, ~45 reads an import) with its rows made plain tuples took 8.1 ms on SQLite, of
    which SQLite's own work 3.1. On PostgreSQL the results come in binary (`_postgresql_rows`)."""
    # converters made for this call: each memoises the values it sees, which must not outlive it
    results = [_result_converter(column.type, connection) for column in query.selected_columns]
    if connection.dialect.name == "postgresql":
        statement, names = _postgresql_text(query, connection)
        given = {name: _bound(kind, values.get(name, default), connection) for name, default, kind in names}
        return _postgresql_rows(connection, statement, given, results)
    assert connection.dialect.name == "sqlite", "the driver's text is SQLite's or PostgreSQL's"
    text, parameters = _sqlite_text(query, connection.dialect)
    given_in_order = [(name, values.get(name, default), kind) for name, default, kind in parameters]
    bound = [_bound(kind, value, connection) for _, value, kind in given_in_order]
    driver = connection.connection.driver_connection
    assert driver is not None
    return _converted(driver.execute(text, bound).fetchall(), results)


# query -> its SQLite text, and its parameters (name, default, type) in order
_SQLITE_TEXTS: dict[Select[Any], tuple[str, tuple[tuple[str, Any, TypeEngine[Any]], ...]]] = {}


def _sqlite_text(
    query: Select[Any], dialect: Any
) -> tuple[str, tuple[tuple[str, Any, TypeEngine[Any]], ...]]:
    """`query` compiled once for SQLite: its text, and its parameters' names, defaults (the OFFSET 0
    SQLite's compiler adds to a LIMIT) and types, in order."""
    if query not in _SQLITE_TEXTS:
        compiled = query.compile(dialect=dialect)
        assert compiled.positiontup is not None  # SQLite's parameters are positional (qmark)
        defaults = compiled.params
        parameters = tuple(
            (name, defaults.get(name), compiled.binds[name].type) for name in compiled.positiontup
        )
        _SQLITE_TEXTS[query] = str(compiled), parameters
    return _SQLITE_TEXTS[query]


# query -> its PostgreSQL text, and its parameters (name, default, type)
_POSTGRESQL_TEXTS: dict[Select[Any], tuple[str, tuple[tuple[str, Any, TypeEngine[Any]], ...]]] = {}


def _postgresql_text(
    query: Select[Any], connection: Connection
) -> tuple[str, tuple[tuple[str, Any, TypeEngine[Any]], ...]]:
    """`query` compiled once for PostgreSQL (psycopg's named parameters): its text, and its parameters'
    names, defaults and types."""
    if query not in _POSTGRESQL_TEXTS:
        compiled = query.compile(dialect=connection.dialect)
        assert not any(bind.expanding for bind in compiled.binds.values()), "IN lists go by select_in"
        defaults = compiled.params
        parameters = tuple((name, defaults.get(name), bind.type) for name, bind in compiled.binds.items())
        _POSTGRESQL_TEXTS[query] = str(compiled), parameters
    return _POSTGRESQL_TEXTS[query]


def _bound(column_type: TypeEngine[Any], value: Any, connection: Connection) -> Any:
    convert = _converter(column_type, connection)
    return value if convert is None else convert(value)


def _result_converter(column_type: TypeEngine[Any], connection: Connection) -> Callable[[Any], Any] | None:
    """What turns a column's stored value into its Python value: the dialect's result processor, memoised
    per value; None where the value comes as it is."""
    processor = column_type.dialect_impl(connection.dialect).result_processor(connection.dialect, None)
    if processor is None or isinstance(column_type, LargeBinary):  # sqlite3 gives bytes already
        return None
    return _memoised(processor)


def _converter(column_type: TypeEngine[Any], connection: Connection) -> Callable[[Any], Any] | None:
    """What turns a column's value into what the driver gets: the dialect's bind processor, memoised per
    value; None where the value goes as it is."""
    processor = column_type.dialect_impl(connection.dialect).bind_processor(connection.dialect)
    if processor is None or isinstance(column_type, LargeBinary):
        return None
    return _memoised(processor)


def _memoised(processor: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """`processor`, run once per distinct value (an import's rows repeat a few values many times)."""
    done: dict[Any, Any] = {}

    def convert(value: Any) -> Any:
        try:
            return done[value]
        except KeyError:
            done[value] = processed = processor(value)
            return processed
        except TypeError:  # an unhashable value (a JSON document): processed every time
            return processor(value)

    return convert
