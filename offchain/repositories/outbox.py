"""The store's half of the one outbox: rows that wait for a transaction, the hash of the transaction
that carries them (written and committed before it is sent), and the block it was mined in.

A table takes part by implementing `OutboxRows` (consent receipts and point events through
`HashedRows`, anchoring batches through their status column). The chain's half, and the steps that
tie the two together after a crash, are `api.evidence.outbox`.
"""

from __future__ import annotations

import os
import stat
import threading
import weakref
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy import Engine, Table, create_engine, text, update
from sqlalchemy import select as core_select
from sqlmodel import Session

from offchain.db import update_in

# The first key of the partners' sender locks (PostgreSQL advisory locks take two int4 keys): a constant
# of this project's, so that the second, the partner's id, names one partner's lock among the database's.
SENDER_LOCK_CLASS = 0x4C435253  # "LCRS"
# engine -> an engine of the same database, for the connections that hold sender locks: taken from the
# store's pool, the senders waiting for a lock would each hold one of its connections, and with the pool
# used up the holder could not get one for its own unit of work. This pool keeps two connections (a new
# one costs ~4 ms, most of taking a free lock) and opens more for waiters, without limit.
_LOCK_ENGINES: weakref.WeakKeyDictionary[Engine, Engine] = weakref.WeakKeyDictionary()
# SQLite: the folder, beside the store's file (in a home: the home's own `locks`, where the import's lock
# is too), of one lock file per partner
LOCKS_FOLDER = "locks"


class SenderLockError(Exception):
    """The partner's sender lock file cannot be used as one (a link, not a regular file, or not ours):
    nothing is sent without it."""


@contextmanager
def sender_lock(engine: Engine, partner_id: int) -> Iterator[None]:
    """Hold the partner's sender lock for the block, waiting for another holder (another process, or
    another thread of a server) to let it go first.

    Every transaction of a partner's outboxes is signed with the partner's one key, in the order the
    chain needs (enrolments, then consents, then points; a log's heads one after another), and between
    recording a transaction's hash and sending it, it is known only here: a second sender that settled
    then would find the node without it and put its rows back in the queue, to be sent again (earned
    twice), or anchored while the store says pending. So one sender at a time per partner, for the whole
    of its settle or send; senders of different partners do not wait for each other.

    PostgreSQL: a session-level advisory lock, on a connection of its own (not of the store's pool)
    held for the block (a transaction's lock would end with the commit that records the hash, before
    the send), released at the end, or by the server when the process dies. SQLite: an exclusive
    `flock` of the partner's file in the `locks` folder beside the store's file (`sqlite_lock_file`),
    opened anew for each hold, so that the threads of one process wait for each other as other
    processes do; the kernel lets it go when the process dies (kill -9 included). SQLite's one writer
    orders the claims, but not a settle between another process's claim and its send (a `serve` and an
    `anchor` in a terminal on one home). An in-memory store has one process and no file: nothing."""
    if engine.dialect.name == "sqlite":
        with _sqlite_sender_lock(engine, partner_id):
            yield
        return
    if engine.dialect.name != "postgresql":
        yield
        return
    locks = _LOCK_ENGINES.get(engine)
    if locks is None:
        locks = _LOCK_ENGINES[engine] = create_engine(engine.url, pool_size=2, max_overflow=-1)
    keys = {"kind": SENDER_LOCK_CLASS, "partner": partner_id}
    # autocommit: no transaction stays open (idle in transaction) while the lock is held
    with locks.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(text("SELECT pg_advisory_lock(:kind, :partner)"), keys)
        try:
            yield
        finally:
            try:
                connection.execute(text("SELECT pg_advisory_unlock(:kind, :partner)"), keys)
            except BaseException:
                # a connection that could not let the lock go must not go back to the pool holding it
                connection.invalidate()
                raise


def sqlite_lock_file(engine: Engine, partner_id: int) -> Path | None:
    """The file whose `flock` is the partner's sender lock for a SQLite store; None in memory."""
    database = engine.url.database
    if not database or database == ":memory:" or database.startswith("file::memory:"):
        return None
    return Path(database).resolve().parent / LOCKS_FOLDER / f"partner-{partner_id}.lock"


def _open_lock_file(path: Path) -> int:
    """A descriptor of the lock file, created if missing (exclusive create, owner-only, never
    truncating or following a link: a file planted there cannot be overwritten or redirected through)."""
    try:
        path.parent.mkdir(mode=0o700, exist_ok=True)
        if path.parent.stat().st_mode & 0o077:  # made by an older version, or under another umask
            path.parent.chmod(0o700)
        flags = os.O_RDWR | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
        try:
            fd = os.open(path, flags | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            fd = os.open(path, flags)  # a link there: ELOOP, refused below
    except OSError as exc:
        raise SenderLockError(
            f"the sender lock {path} cannot be opened ({exc.strerror or exc}): remove it if it is not a"
            " lock file of this home"
        ) from None
    found = os.fstat(fd)
    if not stat.S_ISREG(found.st_mode) or found.st_uid != os.geteuid():
        os.close(fd)
        raise SenderLockError(
            f"the sender lock {path} is not a regular file of this user: remove it if it is not a lock"
            " file of this home"
        )
    if found.st_mode & 0o077:
        os.fchmod(fd, 0o600)
    return fd


# Without fcntl (not Linux or another POSIX system), the lock holds between the threads of this process
# only: lock file path -> its lock. The project targets Linux; elsewhere one process per SQLite home sends.
_IN_PROCESS: dict[Path, threading.Lock] = {}
_IN_PROCESS_GUARD = threading.Lock()


@contextmanager
def _sqlite_sender_lock(engine: Engine, partner_id: int) -> Iterator[None]:
    path = sqlite_lock_file(engine, partner_id)
    if path is None:
        yield
        return
    try:
        import fcntl
    except ImportError:  # not a POSIX system: see _IN_PROCESS
        with _IN_PROCESS_GUARD:
            lock = _IN_PROCESS.setdefault(path, threading.Lock())
        with lock:
            yield
        return
    fd = _open_lock_file(path)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # waits for the holder; released by its close, or its death
        yield
    finally:
        os.close(fd)  # lets the lock go with the file's description


class OutboxRows(Protocol):
    """What the outbox needs of a table whose rows go on chain in batches."""

    def in_flight(self, db: Session, partner_id: int) -> list[str]:
        """Hashes of the partner's transactions sent (or about to be) and not yet seen mined."""
        ...

    def claim(self, db: Session, ids: Sequence[int], tx_hash: str) -> None:
        """Write `tx_hash` on the rows `ids`: the step before sending, committed first."""
        ...

    def release(self, db: Session, tx_hash: str) -> None:
        """Put the rows of a transaction the node never saw, or that failed, back in the queue."""
        ...

    def confirm(self, db: Session, tx_hash: str, block_number: int, onchain_id: int | None) -> list[Any]:
        """Record that `tx_hash` was mined in `block_number` (`onchain_id`: what the chain numbered it,
        where it does); the rows it carried, oldest first, as the table's confirmed view."""
        ...


class HashedRows:
    """`OutboxRows` for a table with a `tx_hash` and a `block_number` column: no hash, staged; a hash
    and no block, in flight; both, confirmed."""

    def __init__(self, table: Table, confirmed_columns: Sequence[str]) -> None:
        self.table = table
        # What `confirm` hands back of each row: what its callers read. The other columns, dates above
        # all, cost more to convert than the UPDATE itself.
        self.confirmed_columns = tuple(confirmed_columns)

    def in_flight(self, db: Session, partner_id: int) -> list[str]:
        c = self.table.c
        query = (
            core_select(c.tx_hash)
            .where(c.partner_id == partner_id, c.tx_hash.is_not(None), c.block_number.is_(None))
            .distinct()
        )
        return [str(tx_hash) for tx_hash in db.connection().execute(query).scalars()]

    def claim(self, db: Session, ids: Sequence[int], tx_hash: str) -> None:
        update_in(db.connection(), self.table, "id", ids, tx_hash=tx_hash)

    def release(self, db: Session, tx_hash: str) -> None:
        c = self.table.c
        db.connection().execute(
            update(self.table).where(c.tx_hash == tx_hash, c.block_number.is_(None)).values(tx_hash=None)
        )

    def confirm(self, db: Session, tx_hash: str, block_number: int, onchain_id: int | None) -> list[Any]:
        # one UPDATE ... RETURNING: loading hundreds of ORM objects per batch only to set one column
        # cost more than the transaction
        c = self.table.c
        rows = (
            db.connection()
            .execute(
                update(self.table)
                .where(c.tx_hash == tx_hash, c.block_number.is_(None))
                .values(block_number=block_number)
                .returning(*(c[name] for name in self.confirmed_columns))
            )
            .all()
        )
        return sorted(rows, key=lambda row: row.id)
