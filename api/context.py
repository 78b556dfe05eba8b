"""The composition root: one object that holds the store, the vault and the ledger for the evidence
core (`api.evidence`) and the use cases (`api.usecases`).

`ledger`, `offchain` and `ml` never import each other; this is where they are put together.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Engine, make_url
from sqlmodel import Session

from api.errors import Busy, UnknownPartner
from api.settings import Settings
from offchain.db import make_engine, migrate, session
from offchain.keystore import KeyStore
from offchain.repositories import partners
from offchain.repositories.partners import PartnerRecord
from offchain.vault import KekRing, Vault

if TYPE_CHECKING:  # neither is imported by a command that only reads the chain (api/usecases/home_open.py)
    from eth_account.signers.local import LocalAccount

    from ledger.coalition import Coalition


def private_folder(folder: Path) -> None:
    """A folder of a home, readable by its owner only (0700), created if need be. A home holds the
    store, the key store and the partners' keys: nobody else on the machine may list or read them."""
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    if folder.stat().st_mode & 0o077:
        folder.chmod(0o700)


def private_sqlite_file(location: str) -> None:
    """A SQLite store's file readable by its owner only (0600), created empty (a valid empty database)
    before SQLite first opens it, so it is never world-readable even for a moment; SQLite gives its
    -wal and -shm files the database file's mode. Any other database (a URL of a server) is left alone."""
    if "://" in location:
        url = make_url(location)
        if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
            return
        location = str(url.database)
    path = Path(location)
    if not path.exists():
        os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
    for name in (path, Path(f"{path}-wal"), Path(f"{path}-shm"), Path(f"{path}-journal")):
        if name.exists() and name.stat().st_mode & 0o077:
            name.chmod(0o600)


@dataclass
class Crm:
    settings: Settings
    engine: Engine
    keystore: KeyStore
    vault: Vault
    coalition: Coalition
    # partner name -> the key that signs its transactions (in production: loaded from its key file)
    signers: dict[str, LocalAccount] = field(default_factory=dict)
    # keys found in the key store of members the chain had erased, shredded again when the home was
    # opened: (partner, member, block of the erasure); `verify` reports each (see usecases/erasure.py)
    reshredded: list[tuple[str, bytes, int]] = field(default_factory=list)

    @classmethod
    def open(cls, settings: Settings, coalition: Coalition, *, keks: KekRing | None = None) -> Crm:
        """Open (and migrate) the data store and the key store that `settings` name."""
        if not settings.database_url or not settings.keystore_url:
            private_folder(Path(settings.home))
        for location in (settings.data_url(), settings.keys_location()):
            private_sqlite_file(location)
        engine = make_engine(settings.data_url())
        migrate(engine)
        keystore = KeyStore(settings.keys_location())
        vault = Vault(keystore, keks or KekRing(development=settings.development))
        return cls(settings=settings, engine=engine, keystore=keystore, vault=vault, coalition=coalition)

    @contextmanager
    def unit_of_work(self, *, writes: bool = False) -> Iterator[Session]:
        """One transaction; `writes` for a unit that writes what it has read (see `offchain.db.session`)."""
        with session(self.engine, writes=writes) as db:
            yield db

    def partner(self, db: Session, name: str) -> PartnerRecord:
        found = partners.by_name(db, name)
        if found is None:
            raise UnknownPartner(f"no partner called {name!r}")
        return found

    @contextmanager
    def exclusive(self, name: str, *, busy: str) -> Iterator[None]:
        """Hold the lock `name` of this home for the block; Busy(`busy`) at once if another process holds
        it (an advisory lock on a file in the home: it dies with its process, kill -9 included)."""
        folder = Path(self.settings.home) / "locks"
        private_folder(folder)
        with os.fdopen(
            os.open(folder / f"{name}.lock", os.O_CREAT | os.O_WRONLY | os.O_APPEND, 0o600), "a"
        ) as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise Busy(f"{busy}; wait for it to finish") from None
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def signer(self, name: str) -> LocalAccount:
        try:
            return self.signers[name]
        except KeyError:
            raise UnknownPartner(f"no signing key loaded for partner {name!r}") from None

    def close(self) -> None:
        self.engine.dispose()
        self.keystore.close()
