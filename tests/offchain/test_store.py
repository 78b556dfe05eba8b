"""The store's schema on SQLite and PostgreSQL: migrations, exact bytes, constraints, the outbox."""

from __future__ import annotations

import contextlib
import hashlib
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from pydantic import ValidationError
from sqlalchemy import CheckConstraint, Engine, event, insert, inspect, make_url
from sqlalchemy.exc import IntegrityError, OperationalError, StatementError
from sqlmodel import Session, col, select

from offchain.db import (
    AUTOCHECKPOINT_PAGES,
    HEAD_REVISION,
    alembic_config,
    checkpoints_beside,
    default_url,
    make_engine,
    migrate,
    purge_deleted,
    session,
    streaming_reads,
)
from offchain.models import (
    AnchorStatus,
    Batch,
    ConsentReceipt,
    ConsentStatus,
    Customer,
    CustomerPublic,
    CustomerStatus,
    ErasureReceipt,
    Interaction,
    InteractionCreate,
    InteractionKind,
    InteractionPublic,
    Partner,
    PartnerCreate,
    PointEvent,
    PointKind,
    metadata,
)
from offchain.repositories import points

# every byte value, a NUL in the middle and at the end: what a text or hex detour would mangle
AWKWARD_BYTES = bytes(range(256)) * 3 + b"\x00"

# The drivers word violations differently ("UNIQUE constraint failed" / "violates unique constraint");
# CHECK violations name the constraint on both, so those tests match the exact name.
UNIQUE_VIOLATION = r"(?i)unique"
FK_VIOLATION = r"(?i)foreign key"


def _hash(label: str) -> bytes:
    return hashlib.sha256(label.encode()).digest()


def _partner(db: Session, name: str = "Acme") -> Partner:
    partner = Partner(name=name, address="0x" + hashlib.sha256(name.encode()).hexdigest()[:40])
    db.add(partner)
    db.flush()
    return partner


def _customer(db: Session, partner: Partner, member_id: bytes | None = None) -> Customer:
    assert partner.id is not None
    customer = Customer(
        member_id=member_id or os.urandom(32), partner_id=partner.id, pii_ciphertext=os.urandom(64)
    )
    db.add(customer)
    db.flush()
    return customer


def _interaction(customer: Customer, external_key: str | None = None, **fields: object) -> Interaction:
    values: dict[str, object] = {
        "partner_id": customer.partner_id,
        "member_id": customer.member_id,
        "kind": InteractionKind.PURCHASE,
        "external_key": external_key,
        "occurred_at": datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC),
        "payload_ciphertext": os.urandom(48),
        "leaf_hash": _hash(f"leaf {external_key}"),
    }
    values.update(fields)
    return Interaction.model_validate(values)


def _seed(engine: Engine) -> tuple[int, bytes]:
    """One partner with one customer; returns (partner id, member id)."""
    with session(engine) as db:
        partner = _partner(db)
        customer = _customer(db, partner)
        assert partner.id is not None
        return partner.id, customer.member_id


# --- migrations ------------------------------------------------------------------------------------


def test_migrations_create_exactly_the_models_schema(engine: Engine) -> None:
    with engine.connect() as connection:
        context = MigrationContext.configure(connection)
        head = ScriptDirectory.from_config(alembic_config()).get_current_head()
        assert context.get_current_revision() == head == HEAD_REVISION == "0011_ml_serve"
        # what `alembic check` does: autogenerate against the migrated database must find nothing to do
        assert compare_metadata(context, metadata) == []
        command.check(alembic_config(connection))


def test_migrations_create_the_models_check_constraints(engine: Engine) -> None:
    # compare_metadata does not look at CHECK constraints, so compare them by name here
    inspector = inspect(engine)
    expected = {
        table.name: {str(c.name) for c in table.constraints if isinstance(c, CheckConstraint)}
        for table in metadata.sorted_tables
    }
    actual = {name: {str(c["name"]) for c in inspector.get_check_constraints(name)} for name in expected}
    assert actual == expected
    assert "ck_interactions_kind" in actual["interactions"]  # the enums' checks are included


def test_migrations_are_idempotent_and_reversible(engine: Engine) -> None:
    migrate(engine)  # already at head: nothing happens, nothing fails

    with engine.begin() as connection:
        command.downgrade(alembic_config(connection), "base")
    assert inspect(engine).get_table_names() == ["alembic_version"]

    migrate(engine)
    with engine.connect() as connection:
        assert compare_metadata(MigrationContext.configure(connection), metadata) == []


def test_a_store_at_the_newest_revision_is_opened_without_alembic(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'data.sqlite'}"
    migrate(url)
    code = f"import sys; from offchain.db import migrate; migrate({url!r}); print('alembic' in sys.modules)"
    found = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert found.stdout.strip() == "False"
    with make_engine(url).connect() as connection:  # and one behind is upgraded, as before
        command.downgrade(alembic_config(connection), "0006_enrolments")
        connection.commit()
    migrate(url)
    with make_engine(url).connect() as connection:
        assert MigrationContext.configure(connection).get_current_revision() == HEAD_REVISION


def test_migrate_accepts_a_url(db_url: str) -> None:
    migrate(db_url)
    migrate(db_url)
    engine = make_engine(db_url)
    try:
        assert set(inspect(engine).get_table_names()) == set(metadata.tables) | {"alembic_version"}
    finally:
        engine.dispose()


# --- values round-trip exactly ---------------------------------------------------------------------


def test_bytes_and_times_round_trip_exactly(engine: Engine) -> None:
    member_id = b"\x00" + os.urandom(30) + b"\x00"
    root = _hash("root")
    proof = _hash("a") + _hash("b") + _hash("c")
    occurred_at = datetime(2025, 3, 30, 1, 30, 15, 123456, tzinfo=timezone(timedelta(hours=-5)))
    with session(engine) as db:
        partner = _partner(db)
        assert partner.id is not None
        db.add(
            Customer(
                member_id=member_id,
                partner_id=partner.id,
                pii_ciphertext=AWKWARD_BYTES,
                external_ref_hmac=AWKWARD_BYTES[::-1][:32],
            )
        )
        batch = Batch(partner_id=partner.id, root=root, size=1)
        db.add(batch)
        db.flush()
        interaction = Interaction(
            partner_id=partner.id,
            member_id=member_id,
            kind=InteractionKind.SUPPORT_TICKET,
            external_key="T-1",
            occurred_at=occurred_at,
            payload_ciphertext=AWKWARD_BYTES[1:],
            leaf_hash=_hash("leaf"),
            batch_id=batch.id,
            leaf_index=0,
            proof=proof,
        )
        db.add(interaction)

    with Session(engine) as db:
        customer = db.exec(select(Customer)).one()
        assert customer.member_id == member_id
        assert customer.pii_ciphertext == AWKWARD_BYTES
        assert customer.external_ref_hmac == AWKWARD_BYTES[::-1][:32]
        assert customer.status is CustomerStatus.ACTIVE

        stored = db.exec(select(Interaction)).one()
        assert type(stored.payload_ciphertext) is bytes
        assert stored.payload_ciphertext == AWKWARD_BYTES[1:]
        assert stored.leaf_hash == _hash("leaf")
        assert stored.proof == proof
        assert stored.kind is InteractionKind.SUPPORT_TICKET
        # the same instant, handed back in UTC with microseconds intact
        assert stored.occurred_at == occurred_at
        assert stored.occurred_at.utcoffset() == timedelta(0)
        assert stored.occurred_at.microsecond == 123456

        assert db.exec(select(Batch)).one().root == root


def test_naive_datetimes_are_refused(engine: Engine) -> None:
    partner_id, member_id = _seed(engine)
    with pytest.raises(StatementError, match="timezone"), session(engine) as db:
        db.add(
            Interaction(
                partner_id=partner_id,
                member_id=member_id,
                kind=InteractionKind.VISIT,
                occurred_at=datetime(2025, 1, 1, 12, 0),  # naive: the point of the test
                leaf_hash=_hash("x"),
            )
        )


# --- constraints -----------------------------------------------------------------------------------


def test_a_duplicate_import_is_rejected(engine: Engine) -> None:
    with session(engine) as db:
        acme_customer = _customer(db, _partner(db, "Acme"))
        other_customer = _customer(db, _partner(db, "Other"))
        db.add(_interaction(acme_customer, "INV-1"))
        # the key is the partner's own numbering: another partner may use the same one
        db.add(_interaction(other_customer, "INV-1"))
        # and interactions without a key never collide
        db.add(_interaction(acme_customer, None))
        db.add(_interaction(acme_customer, None))

    with pytest.raises(IntegrityError, match=UNIQUE_VIOLATION), session(engine) as db:
        db.add(_interaction(acme_customer, "INV-1", leaf_hash=_hash("re-import")))

    # how an import skips what it already has and keeps the rest: one savepoint per row (SQLite too)
    with session(engine) as db:
        for key in ("INV-1", "INV-2"):
            with contextlib.suppress(IntegrityError), db.begin_nested():
                db.add(_interaction(acme_customer, key, leaf_hash=_hash(f"import {key}")))

    with Session(engine) as db:
        keys = db.exec(
            select(Interaction.external_key).where(Interaction.partner_id == acme_customer.partner_id)
        )
        assert sorted(keys, key=str) == ["INV-1", "INV-2", None, None]


def test_a_duplicate_point_event_is_rejected(engine: Engine) -> None:
    partner_id, member_id = _seed(engine)

    def award() -> PointEvent:
        return PointEvent(
            partner_id=partner_id,
            member_id=member_id,
            kind=PointKind.EARN,
            amount=2**40,  # beyond 32 bits: points are BIGINT
            ref=_hash("receipt 1"),
            external_key="RCPT-1",
        )

    with session(engine) as db:
        db.add(award())
    with pytest.raises(IntegrityError, match=UNIQUE_VIOLATION), session(engine) as db:
        db.add(award())
    with Session(engine) as db:
        assert db.exec(select(PointEvent.amount)).all() == [2**40]


# each builds a row pointing at something that does not exist (or is not the partner's own)
ORPHANS: dict[str, Callable[[int, bytes, Customer], object]] = {
    "customer of an unknown partner": lambda partner_id, member_id, other: Customer(
        member_id=os.urandom(32), partner_id=partner_id + 1000, pii_ciphertext=b"x"
    ),
    "interaction of an unknown member": lambda partner_id, member_id, other: Interaction(
        partner_id=partner_id,
        member_id=os.urandom(32),
        kind=InteractionKind.EMAIL,
        occurred_at=datetime.now(UTC),
        leaf_hash=_hash("orphan"),
    ),
    # tenant isolation: a partner cannot attach an interaction to another partner's customer
    "interaction of another partner's customer": lambda partner_id, member_id, other: _interaction(
        other, "K", partner_id=partner_id
    ),
    "interaction in an unknown batch": lambda partner_id, member_id, other: Interaction(
        partner_id=partner_id,
        member_id=member_id,
        kind=InteractionKind.EMAIL,
        occurred_at=datetime.now(UTC),
        leaf_hash=_hash("batchless"),
        batch_id=999,
        leaf_index=0,
    ),
    "point event of an unknown member": lambda partner_id, member_id, other: PointEvent(
        partner_id=partner_id, member_id=os.urandom(32), kind=PointKind.EARN, amount=1, ref=_hash("r")
    ),
}


@pytest.mark.parametrize("orphan", list(ORPHANS))
def test_foreign_keys_are_enforced(engine: Engine, orphan: str) -> None:
    partner_id, member_id = _seed(engine)
    with session(engine) as db:
        other = _customer(db, _partner(db, "Other"))
    with pytest.raises(IntegrityError, match=FK_VIOLATION), session(engine) as db:
        db.add(ORPHANS[orphan](partner_id, member_id, other))


@pytest.mark.parametrize(
    ("change", "constraint"),
    [
        pytest.param({"member_id": os.urandom(31)}, "member_id_length", id="member id not 32 bytes"),
        pytest.param(
            {"status": CustomerStatus.ERASED}, "erased_at_iff_erased", id="erased without erased_at"
        ),
        pytest.param({"erased_at": datetime.now(UTC)}, "erased_at_iff_erased", id="erased_at while active"),
    ],
)
def test_customer_invariants(engine: Engine, change: dict[str, object], constraint: str) -> None:
    partner_id, _ = _seed(engine)
    values: dict[str, object] = {
        "member_id": os.urandom(32),
        "partner_id": partner_id,
        "pii_ciphertext": b"c",
    }
    with pytest.raises(IntegrityError, match=f"ck_customers_{constraint}\\b"), session(engine) as db:
        db.add(Customer.model_validate(values | change))


@pytest.mark.parametrize(
    ("change", "constraint"),
    [
        pytest.param(
            {"leaf_hash": _hash("x").hex().encode()}, "leaf_hash_length", id="leaf hash as hex text"
        ),
        pytest.param({"proof": _hash("x") + b"\x01"}, "proof_length", id="proof not whole hashes"),
        pytest.param({"leaf_index": 0}, "leaf_index_iff_batch", id="leaf index without a batch"),
    ],
)
def test_interaction_invariants(engine: Engine, change: dict[str, object], constraint: str) -> None:
    with session(engine) as db:
        customer = _customer(db, _partner(db))
    with pytest.raises(IntegrityError, match=f"ck_interactions_{constraint}\\b"), session(engine) as db:
        db.add(_interaction(customer, "K", **change))


# --- the anchoring outbox --------------------------------------------------------------------------


def test_outbox_transitions_persist(engine: Engine) -> None:
    with session(engine) as db:
        customer = _customer(db, _partner(db))
        for n in range(3):
            db.add(_interaction(customer, f"INV-{n}"))
    partner_id = customer.partner_id

    def pending_ids() -> list[int | None]:
        with Session(engine) as db:
            query = select(Interaction.id).where(
                Interaction.partner_id == partner_id, col(Interaction.batch_id).is_(None)
            )
            return list(db.exec(query.order_by(col(Interaction.id))))

    leaves = pending_ids()
    assert len(leaves) == 3

    # 1. the batch is written before anything is sent: a crash after this point leaves a pending row
    with session(engine) as db:
        batch = Batch(partner_id=partner_id, root=_hash("root"), size=len(leaves))
        db.add(batch)
        db.flush()
        for index, interaction_id in enumerate(leaves):
            interaction = db.get_one(Interaction, interaction_id)
            interaction.batch_id, interaction.leaf_index = batch.id, index
            interaction.proof = _hash(f"sibling {index}") * 2
    assert pending_ids() == []

    # 2. the transaction was sent
    sent_at = datetime(2025, 5, 1, 9, 0, tzinfo=UTC)
    with session(engine) as db:
        stored = db.exec(select(Batch).where(Batch.status == AnchorStatus.PENDING)).one()
        stored.status, stored.tx_hash, stored.submitted_at = AnchorStatus.SUBMITTED, "0x" + "ab" * 32, sent_at

    # 3. it was mined
    with session(engine) as db:
        stored = db.exec(select(Batch).where(Batch.status == AnchorStatus.SUBMITTED)).one()
        stored.status, stored.onchain_batch_id, stored.block_number = AnchorStatus.ANCHORED, 0, 2**33
        stored.anchored_at = sent_at + timedelta(seconds=2)

    with Session(engine) as db:
        assert db.exec(select(Batch).where(Batch.status != AnchorStatus.ANCHORED)).all() == []
        anchored = db.exec(select(Batch)).one()
        assert (anchored.tx_hash, anchored.onchain_batch_id, anchored.block_number) == (
            "0x" + "ab" * 32,
            0,
            2**33,
        )
        assert anchored.submitted_at == sent_at
        assert anchored.anchored_at == sent_at + timedelta(seconds=2)
        interactions = db.exec(select(Interaction).order_by(col(Interaction.leaf_index))).all()
        assert [i.batch_id for i in interactions] == [anchored.id] * 3
        assert [i.leaf_index for i in interactions] == [0, 1, 2]
        assert interactions[2].proof == _hash("sibling 2") * 2


@pytest.mark.parametrize(
    ("change", "constraint"),
    [
        pytest.param(
            {"status": AnchorStatus.SUBMITTED}, "submitted_has_tx", id="submitted without a transaction"
        ),
        pytest.param(
            {"status": AnchorStatus.ANCHORED, "tx_hash": "0x01", "submitted_at": datetime.now(UTC)},
            "anchored_has_block",
            id="anchored without a block",
        ),
        pytest.param({"size": 0}, "size_positive", id="empty batch"),
        pytest.param({"root": _hash("r")[:31]}, "root_length", id="short root"),
    ],
)
def test_batch_invariants(engine: Engine, change: dict[str, object], constraint: str) -> None:
    partner_id, _ = _seed(engine)
    values: dict[str, object] = {"partner_id": partner_id, "root": _hash("root"), "size": 1}
    with pytest.raises(IntegrityError, match=f"ck_batches_{constraint}\\b"), session(engine) as db:
        db.add(Batch.model_validate(values | change))


def test_each_onchain_batch_is_recorded_once(engine: Engine) -> None:
    partner_id, _ = _seed(engine)
    now = datetime.now(UTC)

    def anchored(root: bytes) -> Batch:
        return Batch(
            partner_id=partner_id,
            root=root,
            size=1,
            status=AnchorStatus.ANCHORED,
            tx_hash="0x01",
            onchain_batch_id=5,
            block_number=10,
            submitted_at=now,
            anchored_at=now,
        )

    with session(engine) as db:
        db.add(anchored(_hash("first")))
    with pytest.raises(IntegrityError, match=UNIQUE_VIOLATION), session(engine) as db:
        db.add(anchored(_hash("second")))


# --- receipts --------------------------------------------------------------------------------------


def test_receipts_round_trip_and_erasure_is_recorded_once(engine: Engine) -> None:
    partner_id, member_id = _seed(engine)
    receipt_json = '{"member":"0x00","purpose":"profiling","status":"given"}'
    with session(engine) as db:
        db.add(
            ConsentReceipt(
                partner_id=partner_id,
                member_id=member_id,
                purpose="profiling",
                status=ConsentStatus.GIVEN,
                legal_basis="consent",
                notice_version="2025-01",
                controller="Acme",
                collection_method="web form",
                withdrawal_method="account settings",
                receipt_json=receipt_json,
                receipt_hash=_hash(receipt_json),
            )
        )
        db.add(
            ErasureReceipt(
                partner_id=partner_id,
                member_id=member_id,
                erased_at=datetime.now(UTC),
                interactions_count=0,
                receipt_json="{}",
                receipt_hash=_hash("erased"),
            )
        )
    with Session(engine) as db:
        consent = db.exec(select(ConsentReceipt)).one()
        assert (consent.receipt_json, consent.receipt_hash) == (receipt_json, _hash(receipt_json))
        assert consent.status is ConsentStatus.GIVEN

    with pytest.raises(IntegrityError, match=UNIQUE_VIOLATION), session(engine) as db:
        db.add(
            ErasureReceipt(
                partner_id=partner_id,
                member_id=member_id,
                erased_at=datetime.now(UTC),
                interactions_count=0,
                receipt_json="{ }",
                receipt_hash=_hash("erased again"),
            )
        )


# --- the session helper ----------------------------------------------------------------------------


def test_session_commits_on_success_and_rolls_back_on_error(engine: Engine) -> None:
    with session(engine) as db:
        partner = _partner(db, "Kept")
    assert partner.name == "Kept"  # still readable after the commit

    with pytest.raises(RuntimeError), session(engine) as db:
        _partner(db, "Dropped")
        raise RuntimeError("the use case failed")

    with Session(engine) as db:
        assert db.exec(select(Partner.name)).all() == ["Kept"]


def test_rolling_back_undoes_released_savepoints(engine: Engine) -> None:
    # The sqlite3 module's legacy transaction handling lets a released SAVEPOINT commit on its own, so
    # a failed import would keep half its rows; make_engine takes BEGIN into its own hands to prevent it.
    with pytest.raises(RuntimeError), session(engine) as db:
        with db.begin_nested():
            _partner(db, "Imported, then abandoned")
        raise RuntimeError("the import failed later on")

    with Session(engine) as db:
        assert db.exec(select(Partner)).all() == []


# --- SQLite's own settings -------------------------------------------------------------------------


def test_sqlite_connections_use_wal_secure_delete_foreign_keys_and_large_pages(sqlite_engine: Engine) -> None:
    # two connections open at once: every pooled connection is configured, not just the first one
    with sqlite_engine.connect() as first, sqlite_engine.connect() as second:
        for connection in (first, second):
            pragma = connection.exec_driver_sql
            assert pragma("PRAGMA journal_mode").scalar() == "wal"
            assert pragma("PRAGMA secure_delete").scalar() == 1
            assert pragma("PRAGMA cache_size").scalar() == -65536  # 64 MiB, not the default 2 MiB
            assert pragma("PRAGMA foreign_keys").scalar() == 1
            assert pragma("PRAGMA synchronous").scalar() == 1  # NORMAL
            assert pragma("PRAGMA page_size").scalar() == 16384  # a new file gets 16 KiB pages


def test_streaming_reads_keep_a_small_page_cache_while_they_last(sqlite_engine: Engine) -> None:
    def cache_size() -> int:
        with sqlite_engine.connect() as connection:  # a checkout of the pooled connection
            return int(connection.exec_driver_sql("PRAGMA cache_size").scalar_one())

    assert cache_size() == -65536
    with streaming_reads(sqlite_engine):
        assert cache_size() == -8192
        with streaming_reads(sqlite_engine):  # nested (two verifications in one server): still small
            assert cache_size() == -8192
        assert cache_size() == -8192
    assert cache_size() == -65536  # the same connection, back to what an import's writes want


def test_checkpoints_beside_copy_the_wal_on_a_thread_of_their_own(
    sqlite_engine: Engine, sqlite_url: str
) -> None:
    database = Path(make_url(sqlite_url).database or "")
    marker = b"CHECKPOINTED-" + os.urandom(16).hex().encode()

    def autocheckpoint() -> int:
        with sqlite_engine.connect() as connection:  # a checkout of the pooled connection
            return int(connection.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar_one())

    def checkpointers() -> list[str]:
        return [thread.name for thread in threading.enumerate() if thread.name == "sqlite-checkpoints"]

    with sqlite_engine.begin() as connection:
        connection.exec_driver_sql("CREATE TABLE scratch (body BLOB)")
    assert autocheckpoint() == AUTOCHECKPOINT_PAGES
    with checkpoints_beside(sqlite_engine, every=0.02):
        assert autocheckpoint() == 0  # the connections' commits leave the WAL alone...
        with sqlite_engine.begin() as connection:
            connection.exec_driver_sql("INSERT INTO scratch VALUES (?)", (marker * 200,))
        # ...and the thread copies it into the database file (far fewer pages than a connection's own
        # checkpoint waits for: without the thread they would stay in the WAL)
        deadline = time.monotonic() + 10
        while marker not in database.read_bytes() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert marker in database.read_bytes()
        assert checkpointers() == ["sqlite-checkpoints"]
    assert checkpointers() == []  # stopped with the block
    assert autocheckpoint() == AUTOCHECKPOINT_PAGES  # the same connection checkpoints at its commits again
    with sqlite_engine.connect() as connection:
        assert connection.exec_driver_sql("SELECT body FROM scratch").scalar_one() == marker * 200


def test_checkpoints_beside_start_no_thread_for_an_in_memory_store() -> None:
    engine = make_engine("sqlite://")
    try:
        with checkpoints_beside(engine, every=0.01):
            assert not [thread for thread in threading.enumerate() if thread.name == "sqlite-checkpoints"]
            with engine.connect() as connection:
                assert connection.exec_driver_sql("SELECT 1").scalar_one() == 1
    finally:
        engine.dispose()


def test_sqlite_autocommit_connections_keep_their_writes(sqlite_engine: Engine) -> None:
    row = {"name": "Acme", "address": "0x" + "0" * 40, "created_at": datetime.now(UTC)}
    with sqlite_engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(insert(Partner).values(row))  # and no commit: AUTOCOMMIT needs none
    with Session(sqlite_engine) as db:
        assert db.exec(select(Partner.name)).all() == ["Acme"]


def test_sqlite_tombstoned_payload_leaves_no_bytes_on_disk(sqlite_engine: Engine, sqlite_url: str) -> None:
    database = Path(make_url(sqlite_url).database or "")
    marker = b"PAYLOAD-MARKER-" + os.urandom(16).hex().encode()
    secret = marker * 100  # larger than a 4 KiB page: overflow pages must be wiped too

    def on_disk() -> bytes:
        files = (database, database.with_name(database.name + "-wal"))
        return b"".join(path.read_bytes() for path in files if path.exists())

    with session(sqlite_engine) as db:
        customer = _customer(db, _partner(db))
        db.add(_interaction(customer, "INV-1", payload_ciphertext=secret))
        db.add(_interaction(customer, "INV-2", payload_ciphertext=marker))
    assert marker in on_disk()  # otherwise the check below would prove nothing

    with session(sqlite_engine) as db:
        for stored in db.exec(select(Interaction)):
            stored.payload_ciphertext = None  # the erasure tombstone
    purge_deleted(sqlite_engine)

    assert marker not in on_disk()


# --- API models ------------------------------------------------------------------------------------


def test_public_models_show_hex_ids_and_no_ciphertext() -> None:
    member_id = bytes(range(32))
    customer = Customer(
        member_id=member_id,
        partner_id=1,
        pii_ciphertext=b"\xff" * 40,
        external_ref_hmac=b"\xfe" * 32,
        created_at=datetime(2025, 1, 1, tzinfo=UTC),
    )
    public = CustomerPublic.model_validate(customer)
    assert public.member_id == "0x" + member_id.hex()
    assert "ciphertext" not in public.model_dump_json()
    assert "hmac" not in public.model_dump_json()

    interaction = _interaction(customer, "INV-1", id=7, created_at=datetime(2025, 1, 1, tzinfo=UTC))
    shown = InteractionPublic.model_validate(interaction).model_dump(mode="json")
    assert "payload_ciphertext" not in shown and "proof" not in shown
    assert shown["leaf_hash"] == "0x" + interaction.leaf_hash.hex()
    assert shown["kind"] == "purchase"


def test_create_models_refuse_malformed_addresses_and_member_ids() -> None:
    PartnerCreate(name="Acme", address="0x" + "aB" * 20)
    with pytest.raises(ValidationError):
        PartnerCreate(name="Acme", address="0x" + "g" * 40)

    def submit(member_id: str) -> InteractionCreate:
        return InteractionCreate(
            kind=InteractionKind.VISIT, occurred_at=datetime.now(UTC), member_id=member_id, payload={}
        )

    assert submit("0x" + "ab" * 32).member_id == "0x" + "ab" * 32
    with pytest.raises(ValidationError):
        submit("0x" + "ab" * 31)  # 31 bytes


def test_a_window_of_point_events_is_read_by_its_blocks(sqlite_engine: Engine) -> None:
    """verify --all reads a partner's confirmed events a window of blocks at a time: exactly the window's,
    by block then id, through the block index, not by visiting every event of the partner (SQLite's
    planner chose the (partner, external key) index for the partner's equality: each window cost the
    whole history, 25 CPU s at 1M interactions). PostgreSQL plans by its statistics; the window's rows
    on it are checked by tests/api/test_verify_from_chain.py."""
    engine = sqlite_engine
    partner_id, member_id = _seed(engine)
    with session(engine) as db:
        for i, block in enumerate([7, 3, 5, 5, 9, 4]):
            db.add(
                PointEvent(
                    partner_id=partner_id,
                    member_id=member_id,
                    kind=PointKind.EARN,
                    amount=i + 1,
                    ref=_hash(f"ref {i}"),
                    external_key=f"INV-{i}",
                    tx_hash="0x" + _hash(f"tx {i}").hex(),
                    block_number=block,
                )
            )
        db.add(
            PointEvent(  # in flight: no block yet, in no window
                partner_id=partner_id, member_id=member_id, kind=PointKind.EARN, amount=99, ref=_hash("x")
            )
        )
    statements: list[tuple[str, object]] = []

    def seen(_conn: object, _cursor: object, statement: str, parameters: object, *_: object) -> None:
        statements.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", seen)
    try:
        with Session(engine) as db:
            window = points.confirmed_in_blocks(db, partner_id, 4, 7)
            beyond = points.confirmed_in_blocks(db, partner_id, 8, None)
    finally:
        event.remove(engine, "before_cursor_execute", seen)
    assert [(int(r.block_number), int(r.amount)) for r in window] == [(4, 6), (5, 3), (5, 4), (7, 1)]
    assert [(int(r.block_number), int(r.amount)) for r in beyond] == [(9, 5)]
    statement, parameters = next(s for s in statements if "FROM point_events" in s[0])
    with engine.connect() as connection:
        plan = " ".join(
            str(row[3])
            for row in connection.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters)  # type: ignore[arg-type]
        )
    assert "ix_point_events_block_number_partner_id_id (block_number>? AND block_number<?)" in plan, plan


def test_a_unit_that_writes_what_it_read_waits_for_another_writer_instead_of_failing(
    tmp_path: Path,
) -> None:
    url = default_url(tmp_path)
    mine, theirs = make_engine(url), make_engine(url)
    with mine.begin() as connection:
        connection.exec_driver_sql("CREATE TABLE counter (n INTEGER)")
        connection.exec_driver_sql("INSERT INTO counter VALUES (0)")

    def count(db: Session) -> int:
        return int(db.connection().exec_driver_sql("SELECT n FROM counter").scalar_one())

    def they_add_one() -> None:
        with session(theirs) as db:
            db.connection().exec_driver_sql("UPDATE counter SET n = n + 1")

    # Why: a plain unit reads from a snapshot, and another writer's commit before its own first write
    # makes that write fail at once (SQLite's WAL cannot move a reader's snapshot into a writer)
    with pytest.raises(OperationalError, match="database is locked"), session(mine) as db:
        seen = count(db)
        they_add_one()
        db.connection().exec_driver_sql(f"UPDATE counter SET n = {seen + 10}")
    # A unit that writes holds the write lock from its start: the other writer waits for it to commit
    with session(mine, writes=True) as db:
        seen = count(db)
        other = threading.Thread(target=they_add_one)
        other.start()
        time.sleep(0.3)  # long enough for the other writer to try; it must be waiting, not done
        assert count(db) == seen == 1
        db.connection().exec_driver_sql(f"UPDATE counter SET n = {seen + 10}")
    other.join()
    with session(mine) as db:
        assert count(db) == 12  # neither write lost
