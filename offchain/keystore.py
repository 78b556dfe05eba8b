"""The key store: wrapped customer data keys (DEKs), kept apart from the data they protect.

Erasure in this project means deleting one wrapped DEK, so this store is built around making a deletion
real on disk:

- It is its own database. On SQLite that is its own file (the path given here, never the data store's),
  so a backup, copy or leak of the data database contains no keys, and a restore of old data cannot
  resurrect an erased customer's key; a SQLite file that already holds any other table is refused. A
  PostgreSQL URL is also accepted; there it lives in its own tables (`keystore_wrapped_keys`,
  `keystore_erased_keys`) of that database, created here, not by the data store's migrations.
- On SQLite every connection runs with ``PRAGMA secure_delete=ON`` (checked, not assumed), so deleted
  rows, and the old version of every updated row, are overwritten with zeros in the database file
  instead of lingering in free space. The journal is WAL; because the WAL keeps old page images, every
  deletion and every rewrap ends with ``PRAGMA wal_checkpoint(TRUNCATE)``, which copies the zeroed pages
  into the database and empties the -wal file. `synchronous=FULL` because losing a committed key loses
  a customer's data just as surely as erasing it.
- Deleting a key records a tombstone (`erased_keys`: partner, member, time; no key material) in the same
  transaction, so "erased on request" and "never existed" stay distinguishable forever, and a member id
  can never be given a new key after erasure.

Limits, stated so nobody relies on more: secure_delete works at the level of the file's contents. Blocks
freed by the filesystem (e.g. when the -wal file is truncated), SSD wear levelling, snapshots and backups
are out of its reach; the wrapped DEK is useless without its partner's KEK, and rotating the KEK
(`rewrap_partner`) and destroying the old one closes that gap. On PostgreSQL there is no secure_delete:
deleted tuples persist until VACUUM and in WAL archives and base backups, so there erasure rests entirely
on that KEK argument.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    Column,
    DateTime,
    Engine,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    create_engine,
    delete,
    event,
    insert,
    inspect,
    select,
    text,
    update,
)
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.exc import IntegrityError

from offchain.db import IN_LIMIT
from offchain.errors import CustomerErased, CustomerKeyExists, KeyStoreError, UnknownCustomer

MEMBER_SIZE = 32

# How long a shred waits for other connections to let go of the WAL before it reports failure.
_CHECKPOINT_ATTEMPTS = 5
_CHECKPOINT_PAUSE_S = 0.2


@dataclass(frozen=True)
class WrappedKey:
    """One row of the key store. `wrapped` is the DEK encrypted under the KEK named by `kek_id`."""

    partner: str
    member: bytes
    kek_id: str
    wrapped: bytes
    created_at: datetime
    rotated_at: datetime | None


def _tables(prefix: str) -> tuple[MetaData, Table, Table]:
    metadata = MetaData()
    wrapped = Table(
        f"{prefix}wrapped_keys",
        metadata,
        Column("partner", String(64), nullable=False),
        Column("member", LargeBinary(MEMBER_SIZE), nullable=False),
        Column("kek_id", String(128), nullable=False),
        Column("wrapped", LargeBinary, nullable=False),
        Column("created_at", DateTime(timezone=True), nullable=False),
        Column("rotated_at", DateTime(timezone=True), nullable=True),
        PrimaryKeyConstraint("partner", "member"),
    )
    erased = Table(
        f"{prefix}erased_keys",
        metadata,
        Column("partner", String(64), nullable=False),
        Column("member", LargeBinary(MEMBER_SIZE), nullable=False),
        Column("erased_at", DateTime(timezone=True), nullable=False),
        PrimaryKeyConstraint("partner", "member"),
    )
    return metadata, wrapped, erased


def _utc(value: datetime) -> datetime:
    # SQLite stores DateTime without an offset; everything written here is UTC, so say so on the way out.
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _now() -> datetime:
    return datetime.now(UTC)


class KeyStore:
    """Wrapped DEKs per (partner, member), with secure deletion and erasure tombstones.

    `location` is a filesystem path to the key store's own SQLite file, or a SQLAlchemy URL string
    (``sqlite:///...`` or ``postgresql+psycopg://...``). `clock` returns the current time (UTC) and is
    injectable so tests can pin `created_at`, `rotated_at` and `erased_at`.

    Every method is one transaction. The store knows nothing about KEKs: it keeps opaque wrapped blobs.
    """

    def __init__(self, location: str | os.PathLike[str], *, clock: Callable[[], datetime] = _now) -> None:
        url = self._url(location)
        self._clock = clock
        self._sqlite = url.get_backend_name() == "sqlite"
        if self._sqlite:
            if url.database in (None, "", ":memory:"):
                raise ValueError("the key store must be a file: keys have to outlive the process")
            self._engine: Engine = create_engine(url)
            self._install_sqlite_hooks(self._engine)
            metadata, self._wrapped, self._erased = _tables("")
        elif url.get_backend_name() == "postgresql":
            self._engine = create_engine(url, pool_pre_ping=True)
            metadata, self._wrapped, self._erased = _tables("keystore_")
        else:
            raise ValueError(f"unsupported key store backend {url.get_backend_name()!r}")
        if self._sqlite:
            self._require_own_file(metadata)
        metadata.create_all(self._engine)
        if self._sqlite:
            self._require_secure_delete()

    @staticmethod
    def _url(location: str | os.PathLike[str]) -> URL:
        if isinstance(location, str) and "://" in location:
            return make_url(location)
        return URL.create("sqlite", database=os.fspath(location))

    @staticmethod
    def _install_sqlite_hooks(engine: Engine) -> None:
        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_connection: Any, _record: Any) -> None:
            # Take transaction control away from the sqlite3 module (which would begin lazily, before the
            # first write only) so that `_on_begin` decides; then make every connection erase for real.
            dbapi_connection.isolation_level = None
            cursor = dbapi_connection.cursor()
            try:
                cursor.execute("PRAGMA secure_delete=ON")
                cursor.execute("PRAGMA journal_mode=WAL")
                cursor.execute("PRAGMA synchronous=FULL")
            finally:
                cursor.close()

        @event.listens_for(engine, "begin")
        def _on_begin(conn: Connection) -> None:
            # Writers take the write lock up front: a read-check-write sequence (is this member erased?
            # then insert) cannot interleave with another writer, and no deadlock-prone lock upgrade.
            mode = "IMMEDIATE" if conn.get_execution_options().get("keystore_write") else "DEFERRED"
            conn.exec_driver_sql(f"BEGIN {mode}")

    def _require_own_file(self, metadata: MetaData) -> None:
        # Pointing the key store at the data store's file by mistake would put keys and ciphertexts in one
        # file (and one backup), which is exactly what the separation is for: refuse any foreign table.
        foreign = set(inspect(self._engine).get_table_names()) - set(metadata.tables)
        if foreign:
            self._engine.dispose()
            raise KeyStoreError(
                f"the key store file already holds other tables ({', '.join(sorted(foreign))});"
                " keys must live in a file of their own"
            )

    def _require_secure_delete(self) -> None:
        with self._tx() as conn:
            enabled = conn.exec_driver_sql("PRAGMA secure_delete").scalar()
        if enabled != 1:
            raise KeyStoreError(
                "this SQLite build does not honour PRAGMA secure_delete; refusing to store keys"
            )

    @contextmanager
    def _tx(self, *, write: bool = False, lock_writers: bool = False) -> Iterator[Connection]:
        with self._engine.connect() as conn:
            if write:
                conn.execution_options(keystore_write=True)
            with conn.begin():
                if lock_writers and not self._sqlite:
                    # PostgreSQL: row locks do not stop concurrent inserts, so a rewrap of a whole partner
                    # could miss a key created meanwhile; a table lock that still admits readers does.
                    # (On SQLite, BEGIN IMMEDIATE already excludes every other writer.)
                    conn.execute(text(f"LOCK TABLE {self._wrapped.name} IN EXCLUSIVE MODE"))
                yield conn

    def _stamp(self) -> datetime:
        # Stored without an offset on SQLite, so convert whatever the clock says to UTC before writing.
        return self._clock().astimezone(UTC)

    def close(self) -> None:
        """Release every pooled connection (and with it the SQLite file handles)."""
        self._engine.dispose()

    def forked(self) -> None:
        """In a process forked from the one that opened this store: connections of its own from now on
        (the pooled ones, copies of the parent's, are left to the parent, never used or closed here)."""
        self._engine.dispose(close=False)

    def __enter__(self) -> KeyStore:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    @property
    def table_names(self) -> tuple[str, str]:
        """The names of this store's two tables (they differ on PostgreSQL, where the database is shared)."""
        return self._wrapped.name, self._erased.name

    def _key(self, table: Table, partner: str, member: bytes) -> Any:
        if len(member) != MEMBER_SIZE:
            raise ValueError(f"member ids are {MEMBER_SIZE} bytes, got {len(member)}")
        return (table.c.partner == partner) & (table.c.member == member)

    def _is_erased(self, conn: Connection, partner: str, member: bytes) -> bool:
        found = conn.execute(select(self._erased.c.partner).where(self._key(self._erased, partner, member)))
        return found.first() is not None

    def put(self, partner: str, member: bytes, kek_id: str, wrapped: bytes) -> None:
        """Store a new wrapped DEK. Refuses to replace one (`CustomerKeyExists`) or to give an erased
        member a key again (`CustomerErased`): either would make existing ciphertexts unreadable or
        undo an erasure."""
        try:
            with self._tx(write=True) as conn:
                if self._is_erased(conn, partner, member):
                    raise CustomerErased(partner, member)
                conn.execute(
                    insert(self._wrapped).values(
                        partner=partner,
                        member=member,
                        kek_id=kek_id,
                        wrapped=wrapped,
                        created_at=self._stamp(),
                        rotated_at=None,
                    )
                )
        except IntegrityError:
            raise CustomerKeyExists(partner, member) from None

    def put_many(self, partner: str, keys: Iterable[tuple[bytes, str, bytes]]) -> None:
        """`put` for many new customers of one partner, ``(member, kek_id, wrapped)`` each, in one
        transaction: all stored or none. With `synchronous=FULL` every transaction costs an fsync, so an
        import that created keys one by one spent most of its customer phase waiting for the disk."""
        rows = list(keys)
        members = [member for member, _, _ in rows]
        for member in members:
            if len(member) != MEMBER_SIZE:
                raise ValueError(f"member ids are {MEMBER_SIZE} bytes, got {len(member)}")
        if len(set(members)) != len(members):
            raise ValueError("the same member appears twice")
        if not rows:
            return
        stamp = self._stamp()
        erased = self._erased.c
        try:
            with self._tx(write=True) as conn:
                for start in range(0, len(members), IN_LIMIT):
                    chunk = members[start : start + IN_LIMIT]
                    tombstone = conn.execute(
                        select(erased.member).where(erased.partner == partner, erased.member.in_(chunk))
                    ).first()
                    if tombstone is not None:
                        raise CustomerErased(partner, bytes(tombstone.member))
                conn.execute(
                    insert(self._wrapped),
                    [
                        {
                            "partner": partner,
                            "member": member,
                            "kek_id": kek_id,
                            "wrapped": wrapped,
                            "created_at": stamp,
                            "rotated_at": None,
                        }
                        for member, kek_id, wrapped in rows
                    ],
                )
        except IntegrityError:
            existing = self.get_many(partner, members)
            raise CustomerKeyExists(partner, next(iter(existing), members[0])) from None

    def get(self, partner: str, member: bytes) -> tuple[str, bytes] | None:
        """``(kek_id, wrapped)`` for the customer, or None if there is no key (see `was_erased`)."""
        with self._tx() as conn:
            row = conn.execute(
                select(self._wrapped.c.kek_id, self._wrapped.c.wrapped).where(
                    self._key(self._wrapped, partner, member)
                )
            ).first()
        return None if row is None else (row.kek_id, row.wrapped)

    def get_many(self, partner: str, members: Iterable[bytes]) -> dict[bytes, tuple[str, bytes]]:
        """`get` for many customers of one partner in one transaction: member -> ``(kek_id, wrapped)``
        for each member that has a key; members without one (erased or never created) are left out.

        One query per `IN_LIMIT` members instead of a connection, transaction and query per
        member, which is what made verifying a whole partner slow."""
        wanted = list(dict.fromkeys(members))  # unique, in order
        for member in wanted:
            if len(member) != MEMBER_SIZE:
                raise ValueError(f"member ids are {MEMBER_SIZE} bytes, got {len(member)}")
        found: dict[bytes, tuple[str, bytes]] = {}
        if not wanted:
            return found
        columns = self._wrapped.c
        with self._tx() as conn:
            for start in range(0, len(wanted), IN_LIMIT):
                chunk = wanted[start : start + IN_LIMIT]
                rows = conn.execute(
                    select(columns.member, columns.kek_id, columns.wrapped).where(
                        columns.partner == partner, columns.member.in_(chunk)
                    )
                ).all()  # one fetchall, not a fetchone per row
                # bytes(): a driver may hand back a memoryview for a binary column
                found.update((bytes(row.member), (row.kek_id, bytes(row.wrapped))) for row in rows)
        return found

    def was_erased(self, partner: str, member: bytes) -> bool:
        """Whether this customer's key was deleted (a tombstone exists)."""
        with self._tx() as conn:
            return self._is_erased(conn, partner, member)

    def erased_at(self, partner: str, member: bytes) -> datetime | None:
        """When this customer's key was deleted, or None if it was not."""
        with self._tx() as conn:
            value = conn.execute(
                select(self._erased.c.erased_at).where(self._key(self._erased, partner, member))
            ).scalar()
        return None if value is None else _utc(value)

    def delete(self, partner: str, member: bytes) -> bool:
        """Securely delete the customer's wrapped DEK and record the tombstone, atomically.

        Returns True if a key was deleted, False if there was none (already erased, or never created;
        only in the first case is there a tombstone). Either way it ends by purging the journal, so
        calling it again after a `KeyStoreError` completes an interrupted erasure.
        """
        with self._tx(write=True) as conn:
            deleted = conn.execute(delete(self._wrapped).where(self._key(self._wrapped, partner, member)))
            existed = deleted.rowcount == 1
            if existed and not self._is_erased(conn, partner, member):
                conn.execute(
                    insert(self._erased).values(partner=partner, member=member, erased_at=self._stamp())
                )
        self._purge_journal()
        return existed

    def list_for_partner(self, partner: str) -> list[WrappedKey]:
        """Every wrapped DEK of one partner, ordered by member id."""
        with self._tx() as conn:
            rows = conn.execute(
                select(self._wrapped)
                .where(self._wrapped.c.partner == partner)
                .order_by(self._wrapped.c.member)
            ).all()
        return [self._record(row) for row in rows]

    def replace_wrapped(self, partner: str, member: bytes, kek_id: str, wrapped: bytes) -> None:
        """Replace one customer's wrapped DEK (same DEK, new wrapping), stamping `rotated_at`."""
        with self._tx(write=True) as conn:
            self._replace(conn, partner, member, kek_id, wrapped)
        self._purge_journal()

    def rewrap_partner(self, partner: str, rewrap: Callable[[WrappedKey], tuple[str, bytes] | None]) -> int:
        """Rewrap every DEK of `partner` in ONE transaction: all of them or none, and no key created
        meanwhile is missed (writers are locked out while it runs; readers are not).

        `rewrap` receives each record and returns its new ``(kek_id, wrapped)``, or None to leave it
        as it is. An exception from `rewrap` rolls everything back. Returns how many were replaced.
        """
        replaced = 0
        with self._tx(write=True, lock_writers=True) as conn:
            rows = conn.execute(select(self._wrapped).where(self._wrapped.c.partner == partner)).all()
            for row in rows:
                record = self._record(row)
                new = rewrap(record)
                if new is not None:
                    self._replace(conn, partner, record.member, *new)
                    replaced += 1
        if replaced:
            # The old wrappings are now garbage in the WAL; purge them like deleted keys.
            self._purge_journal()
        return replaced

    def _replace(self, conn: Connection, partner: str, member: bytes, kek_id: str, wrapped: bytes) -> None:
        result = conn.execute(
            update(self._wrapped)
            .where(self._key(self._wrapped, partner, member))
            .values(kek_id=kek_id, wrapped=wrapped, rotated_at=self._stamp())
        )
        if result.rowcount != 1:
            if self._is_erased(conn, partner, member):
                raise CustomerErased(partner, member)
            raise UnknownCustomer(partner, member)

    @staticmethod
    def _record(row: Any) -> WrappedKey:
        return WrappedKey(
            partner=row.partner,
            member=bytes(row.member),
            kek_id=row.kek_id,
            wrapped=bytes(row.wrapped),
            created_at=_utc(row.created_at),
            rotated_at=None if row.rotated_at is None else _utc(row.rotated_at),
        )

    def _purge_journal(self) -> None:
        """Move the zeroed pages from the WAL into the database file and empty the WAL.

        Raises `KeyStoreError` if other connections keep it from completing: the deletion itself is
        committed, but old page images may still sit in the -wal file until a later checkpoint.
        """
        if not self._sqlite:
            return
        for attempt in range(_CHECKPOINT_ATTEMPTS):
            raw = self._engine.raw_connection()
            try:
                cursor = raw.cursor()
                # Outside any transaction (autocommit, see `_on_connect`): a checkpoint cannot run in one.
                cursor.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                row = cursor.fetchone()
                cursor.close()
            finally:
                raw.close()
            # The row is (busy, log frames, checkpointed frames); busy=1 means readers held it back.
            if row is not None and row[0] == 0:
                return
            time.sleep(_CHECKPOINT_PAUSE_S * (attempt + 1))
        raise KeyStoreError(
            "the WAL could not be checkpointed (busy readers); repeat the deletion to finish it"
        )
