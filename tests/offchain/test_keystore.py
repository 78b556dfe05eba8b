"""The key store: its contract, run on SQLite and on PostgreSQL (one database for this module on the
`postgres_server` of conftest.py, skipped with its reason where PostgreSQL is unavailable), and on
SQLite, that deleted and rewrapped keys are really gone from the files on disk."""

from __future__ import annotations

import os
import sqlite3
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
import sqlalchemy

from offchain.errors import CustomerErased, CustomerKeyExists, KeyStoreError, UnknownCustomer
from offchain.keystore import KeyStore, WrappedKey
from tests.fixtures.databases import scratch_database

T0 = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)


class FakeClock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


def member() -> bytes:
    return os.urandom(32)


def blob() -> bytes:
    # The store treats wrapped keys as opaque; random bytes of the real size make byte searches meaningful.
    return os.urandom(61)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(scope="module")
def keystore_pg_url(postgres_server: str) -> Iterator[str]:
    """One database for the whole module: creating one per test would cost more than the tests, and the
    per-test `partner` keeps tests apart inside it."""
    with scratch_database(postgres_server, "ledgercrm_keystore") as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path, clock: FakeClock) -> Iterator[KeyStore]:
    if request.param == "postgresql":
        ks = KeyStore(request.getfixturevalue("keystore_pg_url"), clock=clock)
    else:
        ks = KeyStore(tmp_path / "keys.sqlite", clock=clock)
    yield ks
    ks.close()


@pytest.fixture
def partner() -> str:
    # Unique per test, so that no test passes by reading another's rows, whatever the database.
    return "p_" + uuid.uuid4().hex[:12]


class TestContract:
    def test_put_then_get(self, store: KeyStore, partner: str):
        m, w = member(), blob()
        store.put(partner, m, "kek-1", w)
        assert store.get(partner, m) == ("kek-1", w)
        assert store.get(partner, member()) is None
        assert store.get("other_" + partner, m) is None

    def test_a_key_is_never_replaced_by_put(self, store: KeyStore, partner: str):
        m, w = member(), blob()
        store.put(partner, m, "kek-1", w)
        with pytest.raises(CustomerKeyExists) as caught:
            store.put(partner, m, "kek-1", blob())
        assert caught.value.member_hex == m.hex()
        assert store.get(partner, m) == ("kek-1", w)

    def test_delete_leaves_a_tombstone_and_no_key(self, store: KeyStore, partner: str, clock: FakeClock):
        m = member()
        store.put(partner, m, "kek-1", blob())
        clock.now = T0 + timedelta(days=3)
        assert store.delete(partner, m) is True
        assert store.get(partner, m) is None
        assert store.was_erased(partner, m)
        assert store.erased_at(partner, m) == T0 + timedelta(days=3)
        assert store.delete(partner, m) is False  # idempotent
        assert store.erased_at(partner, m) == T0 + timedelta(days=3)

    def test_never_created_is_not_erased(self, store: KeyStore, partner: str):
        m = member()
        assert store.delete(partner, m) is False
        assert not store.was_erased(partner, m)
        assert store.erased_at(partner, m) is None

    def test_an_erased_member_never_gets_a_key_again(self, store: KeyStore, partner: str):
        m = member()
        store.put(partner, m, "kek-1", blob())
        store.delete(partner, m)
        with pytest.raises(CustomerErased):
            store.put(partner, m, "kek-1", blob())
        assert store.get(partner, m) is None

    def test_list_for_partner_is_scoped_and_ordered(self, store: KeyStore, partner: str):
        members = [member() for _ in range(5)]
        for m in members:
            store.put(partner, m, "kek-1", blob())
        store.put("other_" + partner, member(), "kek-9", blob())
        listed = store.list_for_partner(partner)
        assert [r.member for r in listed] == sorted(members)
        assert {r.partner for r in listed} == {partner}
        assert all(r.created_at == T0 and r.rotated_at is None for r in listed)

    def test_replace_wrapped(self, store: KeyStore, partner: str, clock: FakeClock):
        m, w2 = member(), blob()
        store.put(partner, m, "kek-1", blob())
        clock.now = T0 + timedelta(hours=1)
        store.replace_wrapped(partner, m, "kek-2", w2)
        assert store.get(partner, m) == ("kek-2", w2)
        (record,) = store.list_for_partner(partner)
        assert record.created_at == T0 and record.rotated_at == T0 + timedelta(hours=1)

    def test_replace_wrapped_of_missing_keys(self, store: KeyStore, partner: str):
        with pytest.raises(UnknownCustomer):
            store.replace_wrapped(partner, member(), "kek-2", blob())
        m = member()
        store.put(partner, m, "kek-1", blob())
        store.delete(partner, m)
        with pytest.raises(CustomerErased):
            store.replace_wrapped(partner, m, "kek-2", blob())

    def test_rewrap_partner_is_all_or_nothing(self, store: KeyStore, partner: str):
        members = [member() for _ in range(4)]
        for m in members:
            store.put(partner, m, "kek-1", blob())
        before = store.list_for_partner(partner)
        calls = 0

        def fail_on_third(record: WrappedKey) -> tuple[str, bytes]:
            nonlocal calls
            calls += 1
            if calls == 3:
                raise RuntimeError("boom")
            return "kek-2", blob()

        with pytest.raises(RuntimeError):
            store.rewrap_partner(partner, fail_on_third)
        assert store.list_for_partner(partner) == before

        assert store.rewrap_partner(partner, lambda r: ("kek-2", r.wrapped[::-1])) == 4
        after = store.list_for_partner(partner)
        assert [(r.kek_id, r.wrapped) for r in after] == [("kek-2", r.wrapped[::-1]) for r in before]

    def test_rewrap_partner_skips_what_the_callback_declines(self, store: KeyStore, partner: str):
        for _ in range(3):
            store.put(partner, member(), "kek-1", blob())
        assert store.rewrap_partner(partner, lambda r: None) == 0
        assert {r.rotated_at for r in store.list_for_partner(partner)} == {None}

    def test_timestamps_are_utc_whatever_the_clock_zone(
        self, store: KeyStore, partner: str, clock: FakeClock
    ):
        clock.now = datetime(2025, 6, 1, 12, 0, tzinfo=timezone(timedelta(hours=2)))
        m = member()
        store.put(partner, m, "kek-1", blob())
        store.delete(partner, m)
        assert store.erased_at(partner, m) == datetime(2025, 6, 1, 10, 0, tzinfo=UTC)

    def test_member_ids_are_32_bytes(self, store: KeyStore, partner: str):
        with pytest.raises(ValueError):
            store.put(partner, b"short", "kek-1", blob())


def files_of(db: Path) -> dict[str, bytes]:
    """The database and every SQLite side file that exists, as bytes."""
    names = [db, *(db.with_name(db.name + suffix) for suffix in ("-wal", "-journal", "-shm"))]
    return {p.name: p.read_bytes() for p in names if p.exists()}


def found_in(needle: bytes, db: Path) -> list[str]:
    return [name for name, data in files_of(db).items() if needle in data]


class TestOnDisk:
    def test_deleted_keys_leave_no_bytes_in_any_file(self, tmp_path: Path):
        db = tmp_path / "keys.sqlite"
        store = KeyStore(db)
        keep, gone = [(member(), blob()) for _ in range(20)], [(member(), blob()) for _ in range(20)]
        for m, w in keep + gone:
            store.put("acme", m, "kek-1", w)
        # The search works: every key is somewhere on disk (database or WAL) before deletion.
        assert all(found_in(w, db) for _m, w in keep + gone)

        for m, _w in gone:
            assert store.delete("acme", m)

        assert [found_in(w, db) for _m, w in gone] == [[] for _ in gone]
        assert all(found_in(w, db) for _m, w in keep)
        # The WAL was emptied by the checkpoint, not merely left holding zeroed pages.
        assert files_of(db).get("keys.sqlite-wal", b"") == b""
        store.close()

    def test_replaced_wrappings_leave_no_bytes(self, tmp_path: Path):
        db = tmp_path / "keys.sqlite"
        store = KeyStore(db)
        rows = [(member(), blob()) for _ in range(10)]
        for m, w in rows:
            store.put("acme", m, "kek-1", w)
        assert store.rewrap_partner("acme", lambda r: ("kek-2", blob())) == 10
        assert [found_in(w, db) for _m, w in rows] == [[] for _ in rows]
        store.close()

    def test_every_connection_erases_securely(self, tmp_path: Path):
        # A second pooled connection must behave like the first: hold one open while the store uses another.
        db = tmp_path / "keys.sqlite"
        store = KeyStore(db)
        m, w = member(), blob()
        store.put("acme", m, "kek-1", w)
        with store._engine.connect() as held:  # white-box: pin a connection so the delete needs a new one
            held.exec_driver_sql("SELECT 1").all()
            held.rollback()
            assert store.delete("acme", m)
        assert found_in(w, db) == []
        store.close()

    def test_the_file_is_in_wal_mode(self, tmp_path: Path):
        db = tmp_path / "keys.sqlite"
        KeyStore(db).close()
        with sqlite3.connect(db) as conn:
            assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)


class TestLocation:
    def test_a_sqlite_url_is_a_file_too(self, tmp_path: Path):
        store = KeyStore(f"sqlite:///{tmp_path / 'k.sqlite'}")
        store.put("acme", member(), "kek-1", blob())
        assert (tmp_path / "k.sqlite").exists()
        assert store.table_names == ("wrapped_keys", "erased_keys")
        store.close()

    def test_a_file_holding_other_tables_is_refused(self, tmp_path: Path):
        # e.g. the data store's database, given by mistake: keys and ciphertexts must not share a file.
        with sqlite3.connect(tmp_path / "data.sqlite") as conn:
            conn.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY)")
        with pytest.raises(KeyStoreError, match="customers"):
            KeyStore(tmp_path / "data.sqlite")
        KeyStore(tmp_path / "keys.sqlite").close()
        KeyStore(tmp_path / "keys.sqlite").close()  # reopening its own file is fine

    @pytest.mark.parametrize("url", ["sqlite://", "sqlite:///:memory:"])
    def test_memory_is_refused(self, url: str):
        with pytest.raises(ValueError, match="file"):
            KeyStore(url)

    def test_other_backends_are_refused(self):
        with pytest.raises(ValueError, match="unsupported"):
            KeyStore("mysql://u@localhost/db")

    def test_postgres_uses_its_own_tables(self, keystore_pg_url: str):
        store = KeyStore(keystore_pg_url)
        assert store.table_names == ("keystore_wrapped_keys", "keystore_erased_keys")
        names = set(sqlalchemy.inspect(store._engine).get_table_names())
        assert names == {"keystore_wrapped_keys", "keystore_erased_keys"}
        store.close()


# --- many keys in one transaction (imports) -------------------------------------------------------------


def test_put_many_stores_every_key_as_put_would(store: KeyStore, partner: str):
    keys = [(member(), "kek-1", blob()) for _ in range(1200)]  # more than one IN (...) chunk
    store.put_many(partner, keys)
    assert store.get_many(partner, [m for m, _, _ in keys]) == {m: (k, w) for m, k, w in keys}
    (first,) = [r for r in store.list_for_partner(partner) if r.member == keys[0][0]]
    assert (first.kek_id, first.wrapped, first.created_at, first.rotated_at) == (
        "kek-1",
        keys[0][2],
        T0,
        None,
    )
    store.put_many(partner, [])  # nothing to do is not an error


def test_put_many_is_all_or_nothing(store: KeyStore, partner: str):
    existing = member()
    store.put(partner, existing, "kek-1", blob())
    fresh = [member() for _ in range(3)]
    with pytest.raises(CustomerKeyExists):
        store.put_many(partner, [(m, "kek-1", blob()) for m in [*fresh, existing]])
    assert store.get_many(partner, fresh) == {}

    erased = member()
    store.put(partner, erased, "kek-1", blob())
    store.delete(partner, erased)
    with pytest.raises(CustomerErased):  # an erased member never gets a key again, in bulk either
        store.put_many(partner, [(m, "kek-1", blob()) for m in [*fresh, erased]])
    assert store.get_many(partner, [*fresh, erased]) == {}


def test_put_many_refuses_malformed_input(store: KeyStore, partner: str):
    m = member()
    with pytest.raises(ValueError, match="twice"):
        store.put_many(partner, [(m, "kek-1", blob()), (m, "kek-1", blob())])
    with pytest.raises(ValueError, match="32 bytes"):
        store.put_many(partner, [(b"short", "kek-1", blob())])
    assert store.get(partner, m) is None
