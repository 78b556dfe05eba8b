"""Job runners' leases: whether the server that owns a job is still alive.

A server's job runner holds a lease for as long as it lives, and the lease dies with its process (kill -9
included), so a server that starts can tell a job of a server that stopped (failed: nothing runs it) from
a job of another server that is running now over the same store (left alone).

- PostgreSQL: a session-level advisory lock, held on a connection the runner keeps open; the server
  releases it when that connection ends, however it ends.
- SQLite: an exclusive `flock` on a file in the `locks` folder beside the database file; every process
  that opens the file is on this machine, and the kernel releases the lock with the process.
- An in-memory SQLite store is one process's: the leases held in this process are all there are.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from sqlalchemy import Connection, Engine, text

# The leases this process holds, by runner; what `alive` answers first, whatever the store
_HELD: dict[str, Lease] = {}


@dataclass
class Lease:
    runner: str
    connection: Connection | None = None  # PostgreSQL: the session that holds the advisory lock
    handle: IO[str] | None = None  # SQLite: the open, locked file
    path: Path | None = None
    _released: bool = field(default=False, repr=False)

    def release(self) -> None:
        if self._released:
            return
        self._released = True
        _HELD.pop(self.runner, None)
        if self.connection is not None:
            self.connection.close()  # the session ends, and its advisory lock with it
        if self.handle is not None:
            assert self.path is not None
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()
            self.handle.close()


def hold(engine: Engine, runner: str) -> Lease:
    """Take `runner`'s lease; it stays held until `Lease.release` or the end of this process."""
    lease = Lease(runner)
    if engine.dialect.name == "postgresql":
        connection = engine.connect()
        connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": _key(runner)})
        connection.commit()  # a session lock outlives the transaction; end the transaction it began
        lease.connection = connection
    elif (path := _lock_file(engine, runner)) is not None:
        path.parent.mkdir(mode=0o700, exist_ok=True)
        handle = os.fdopen(os.open(path, os.O_CREAT | os.O_WRONLY | os.O_APPEND, 0o600), "a")
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)  # a new runner id: nobody else holds it
        lease.handle, lease.path = handle, path
    _HELD[runner] = lease
    return lease


def alive(engine: Engine, runner: str) -> bool:
    """Whether `runner`'s lease is held now, by this process or another."""
    if runner in _HELD:
        return True
    if engine.dialect.name == "postgresql":
        with engine.connect() as connection:
            got = bool(
                connection.execute(text("SELECT pg_try_advisory_lock(:key)"), {"key": _key(runner)}).scalar()
            )
            if got:
                connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": _key(runner)})
            connection.commit()
        return not got
    path = _lock_file(engine, runner)
    if path is None or not path.exists():
        return False
    with open(path, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        path.unlink()  # a lease that outlived its process as a file: tidy it while holding its lock
        return False


def _key(runner: str) -> int:
    # a signed 64-bit advisory lock key, named for this use so no other advisory lock meets it
    digest = hashlib.sha256(b"ledgercrm job runner " + runner.encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def _lock_file(engine: Engine, runner: str) -> Path | None:
    database = engine.url.database
    if engine.dialect.name != "sqlite" or not database or database == ":memory:":
        return None  # PostgreSQL, or a store that lives in this process only
    name = hashlib.sha256(runner.encode()).hexdigest()[:32]  # any runner id, safe as a file name
    return Path(database).resolve().parent / "locks" / f"runner-{name}.lock"
