"""Two senders of one partner's outboxes at once (two processes, or two threads of a server, each with
connections of its own to one store): the first is paused at a chosen step, the second runs meanwhile,
then the first goes on. Each test holds the result to what one sender alone would have left: every row
on chain once, in the order the chain needs, and the store saying so. The interleavings are made by
events, not by sleeps: the first sender waits until the second has reached its own pause, has finished,
or waits for a lock (PostgreSQL's, or the flock of the partner's lock file of a SQLite home, as the
kernel lists it in /proc/locks).

One chain (eth-tester); the store on PostgreSQL and on a SQLite home's file: SQLite takes one writer at a
time, but nothing else stopped a settle between another sender's claim and its send."""

from __future__ import annotations

import fcntl
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, select, text
from sqlalchemy.pool import NullPool

from api.context import Crm
from api.errors import NotAllowed
from api.evidence import anchoring
from api.evidence.recording import NewInteraction, record_interactions
from api.principal import Principal
from api.usecases.consent import give_consent, send_staged_consents, stage_consents
from api.usecases.customers import register_customer, register_customers, send_staged_enrolments
from api.usecases.decisions import send_staged_decisions
from api.usecases.loyalty import PointsRequest, send_staged_points, stage_earnings
from ledger.clients.consent import purpose_id
from offchain.models import (
    AnchorStatus,
    Batch,
    ConsentReceipt,
    CustomerCreate,
    DecisionRecord,
    Enrolment,
    PointEvent,
)
from offchain.repositories import batches as batch_rows
from offchain.repositories import consents as consent_rows
from offchain.repositories import decisions as decision_rows
from offchain.repositories import enrolments as enrolment_rows
from offchain.repositories import points as point_rows
from offchain.repositories.outbox import (
    LOCKS_FOLDER,
    SENDER_LOCK_CLASS,
    sender_lock,
    sqlite_lock_file,
)

P = Principal.of_partner
ACME = P("acme")
WAIT = 60.0  # seconds: far more than any step here takes; a hang fails the test instead of the run

pytestmark = [pytest.mark.parametrize("session_coalition", ["eth-tester"], indirect=True)]
BOTH = pytest.mark.parametrize("db_url", ["sqlite", "postgresql"], indirect=True)
POSTGRESQL = pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)


@dataclass
class Second:
    """The second sender: run in its own thread when the first reaches its pause; what it returned or
    raised."""

    run: Callable[[], Any]
    reached: threading.Event = field(default_factory=threading.Event)  # its own pause, if it has one
    go: threading.Event = field(default_factory=threading.Event)  # the first sender went on
    result: Any = None
    error: BaseException | None = None
    thread: threading.Thread | None = None

    def start(self) -> None:
        def target() -> None:
            try:
                self.result = self.run()
            except BaseException as exc:  # kept for the test to look at
                self.error = exc

        self.thread = threading.Thread(target=target, name="second-sender", daemon=True)
        self.thread.start()

    def join(self) -> None:
        assert self.thread is not None, "the first sender never reached its pause"
        self.go.set()
        self.thread.join(WAIT)
        assert not self.thread.is_alive(), "the second sender did not finish"


class Interleaving:
    """Pauses the first sender (this thread) at one step and the second (its thread) at another."""

    def __init__(self, crm: Crm, monkeypatch: pytest.MonkeyPatch, second: Callable[[], Any]) -> None:
        self.crm = crm
        self.monkeypatch = monkeypatch
        self.second = Second(second)
        self.main = threading.current_thread()
        self.watcher = create_engine(crm.engine.url, poolclass=NullPool)

    def first_pauses(self, owner: Any, name: str, *, after: bool = False) -> None:
        """The first sender pauses at `owner.name` (before the call, or `after` it), the first time it
        gets there: the second sender starts, and the first goes on once the second has paused, finished
        or waits for a lock; the second's pause ends after the first's call."""
        real = getattr(owner, name)
        calls = [0]

        def paused(*args: Any, **kwargs: Any) -> Any:
            if threading.current_thread() is not self.main:
                return real(*args, **kwargs)
            calls[0] += 1
            if calls[0] != 1:
                return real(*args, **kwargs)
            if not after:
                self.let_the_second_run()
            found = real(*args, **kwargs)
            if after:
                self.let_the_second_run()
            self.second.go.set()
            return found

        self.monkeypatch.setattr(owner, name, paused)

    def second_pauses(self, owner: Any, name: str) -> None:
        """The second sender pauses before its first call of `owner.name` until the first's pause ends."""
        real = getattr(owner, name)
        calls = [0]

        def paused(*args: Any, **kwargs: Any) -> Any:
            if threading.current_thread() is not self.main:
                calls[0] += 1
                if calls[0] == 1:
                    self.second.reached.set()
                    assert self.second.go.wait(WAIT), "the first sender never went on"
            return real(*args, **kwargs)

        self.monkeypatch.setattr(owner, name, paused)

    def let_the_second_run(self) -> None:
        """Start the second sender; return once it has paused, finished or waits for a lock."""
        second = self.second
        second.start()
        deadline = datetime.now(UTC) + timedelta(seconds=WAIT)
        assert second.thread is not None
        while not (second.reached.is_set() or not second.thread.is_alive() or self._waiting_for_a_lock()):
            assert datetime.now(UTC) < deadline, "the second sender neither paused, finished nor waited"
            second.reached.wait(0.01)

    def _waiting_for_a_lock(self) -> bool:
        if self.crm.engine.dialect.name == "sqlite":
            return flock_waiters(self.crm) > 0
        with self.watcher.connect() as connection:
            query = text(
                "SELECT count(*) FROM pg_stat_activity"
                " WHERE datname = current_database() AND wait_event_type = 'Lock'"
            )
            return bool(connection.execute(query).scalar_one())

    def finish(self) -> Second:
        self.second.join()
        self.watcher.dispose()
        return self.second


def flock_waiters(crm: Crm) -> int:
    """How many wait for a sender lock of the SQLite home's partners: the kernel lists each waiter of a
    flock in /proc/locks as `N: -> FLOCK ... <major>:<minor>:<inode> ...`."""
    folder = Path(str(crm.engine.url.database)).resolve().parent / LOCKS_FOLDER
    files = {
        f"{os.major(found.st_dev):02x}:{os.minor(found.st_dev):02x}:{found.st_ino}"
        for found in (path.stat() for path in folder.glob("partner-*.lock"))
    }
    waiting = 0
    for line in Path("/proc/locks").read_text().splitlines():
        fields = line.split()
        if len(fields) > 6 and fields[1] == "->" and fields[2] == "FLOCK":
            waiting += fields[6] in files
    return waiting


@pytest.fixture
def members(crm: Crm) -> list[bytes]:
    """Three customers of acme, enrolled on chain (in one transaction)."""
    enrolled = register_customers(
        crm, ACME, [CustomerCreate(name=f"M {n}", external_ref=f"m-{n}") for n in range(3)]
    )
    assert len(send_staged_enrolments(crm, ACME)) == 3
    return enrolled


def consented(crm: Crm, members: list[bytes], purpose: str) -> None:
    """The members' consent for `purpose` to acme, on chain in one recordBatch (not one transaction each)."""
    assert stage_consents(crm, ACME, members, purpose).staged == members
    assert len(send_staged_consents(crm, ACME)) == len(members)


def interactions(crm: Crm, member: bytes, count: int) -> None:
    """`count` interactions of the member, in pending batches of 8 leaves (as an import leaves them)."""
    start = datetime(2024, 5, 1, tzinfo=UTC)
    items = [
        NewInteraction(
            member, "visit", {"n": n}, occurred_at=start + timedelta(hours=n), external_key=f"v{n}"
        )
        for n in range(count)
    ]
    record_interactions(crm, "acme", items, batch=True, batch_leaves=8)


def column(crm: Crm, model: Any, name: str, *more: str) -> list[Any]:
    """Values of `name` (with `more`: rows of these columns) of every row of `model`'s table, by id."""
    table = model.__table__
    with crm.unit_of_work() as db:
        rows = db.connection().execute(select(*(table.c[n] for n in (name, *more))).order_by(table.c.id))
        return [row[0] for row in rows] if not more else list(rows)


def batch_states(crm: Crm) -> list[tuple[int, AnchorStatus, int | None]]:
    found = column(crm, Batch, "first_index", "status", "onchain_batch_id")
    return [(int(first), AnchorStatus(status), onchain) for first, status, onchain in found]


# --- anchoring batches: a partner's log goes on chain in order ------------------------------------------


@BOTH
def test_a_second_anchoring_run_while_the_first_holds_the_oldest_batch_neither_fails_nor_skips_ahead(
    crm: Crm, members: list[bytes], monkeypatch: pytest.MonkeyPatch
):
    """The first run has read (and locked) the oldest pending batch and not yet signed it; a second run
    of the same partner must not take the next batch past it (the chain would refuse that head) nor
    report that the store and the chain disagree: it waits, and finds everything anchored."""
    interactions(crm, members[0], 16)
    run = Interleaving(crm, monkeypatch, lambda: anchoring.anchor_pending(crm, "acme"))
    run.first_pauses(batch_rows, "pending", after=True)
    first = anchoring.anchor_pending(crm, "acme")
    second = run.finish()
    assert second.error is None, f"the second run failed: {second.error!r}"
    assert sorted(o.batch_id for o in first + second.result) == column(crm, Batch, "id")
    assert [status for _, status, _ in batch_states(crm)] == [AnchorStatus.ANCHORED] * 2
    assert crm.coalition.anchor.head(crm.signer("acme").address).size == 17  # the genesis leaf and 16


@POSTGRESQL
def test_a_sender_waits_for_a_batch_another_transaction_holds_and_never_skips_past_it(
    crm: Crm, members: list[bytes], monkeypatch: pytest.MonkeyPatch
):
    """A transaction that is no sender (it holds no sender lock) has locked the oldest pending batch, as
    a sender reading it does: a sender waits for it, rather than skipping to the next batch."""
    interactions(crm, members[0], 16)
    run = Interleaving(crm, monkeypatch, lambda: anchoring.anchor_pending(crm, "acme"))
    with crm.unit_of_work() as db:
        (held,) = batch_rows.pending(db, crm.partner(db, "acme").id, 1)
        run.let_the_second_run()
        waited = run.second.thread is not None and run.second.thread.is_alive()
    second = run.finish()
    assert second.error is None, f"the sender failed: {second.error!r}"
    assert waited
    assert [o.batch_id for o in second.result] == column(crm, Batch, "id")
    assert held.first_index == 1


@BOTH
def test_a_run_settling_while_another_has_recorded_its_anchor_and_not_sent_it_leaves_the_store_right(
    crm: Crm, members: list[bytes], monkeypatch: pytest.MonkeyPatch
):
    """The first run has signed batch 1's anchor and committed its hash, and not yet sent it; a second
    run settles the partner's batches meanwhile. The node does not know that hash yet: the batch must
    not go back to pending behind the first run's back (sent then, it is anchored on chain while the
    store says pending, and every later run stops: the store looks older than the chain)."""
    interactions(crm, members[0], 16)
    run = Interleaving(crm, monkeypatch, lambda: anchoring.anchor_pending(crm, "acme"))
    run.first_pauses(crm.coalition.anchor, "broadcast")
    run.second_pauses(batch_rows, "pending")
    first_error: BaseException | None = None
    try:
        anchoring.anchor_pending(crm, "acme")
    except Exception as exc:  # reported below, with the store's state
        first_error = exc
    second = run.finish()
    states = batch_states(crm)
    assert (first_error, second.error) == (None, None), states
    assert [status for _, status, _ in states] == [AnchorStatus.ANCHORED] * 2
    # each batch is the chain's head of the same size, once
    heads = crm.coalition.anchor.heads(crm.signer("acme").address)
    assert [(h.batch_id, h.size) for h in heads] == [(onchain, first + 8) for first, _, onchain in states]
    # and a later run finds nothing wrong
    assert anchoring.anchor_pending(crm, "acme") == []


# --- points: an earn goes on chain once -----------------------------------------------------------------


@BOTH
def test_points_released_by_a_second_sender_while_the_first_sends_them_are_not_earned_twice(
    crm: Crm, members: list[bytes], monkeypatch: pytest.MonkeyPatch
):
    """The first sender has recorded the hash of an earnBatch and not yet sent it; a second settles
    meanwhile (the node does not know the hash) and then sends what is staged. Each event is earned
    once on chain, and the store says each was confirmed once."""
    consented(crm, members, "loyalty")
    stage_earnings(
        crm, ACME, [PointsRequest(m, 10 + n, external_key=f"K-{n}") for n, m in enumerate(members)]
    )
    run = Interleaving(crm, monkeypatch, lambda: send_staged_points(crm, ACME))
    run.first_pauses(crm.coalition.loyalty, "broadcast")
    run.second_pauses(point_rows, "staged_earnings")
    first = send_staged_points(crm, ACME)
    second = run.finish()
    assert second.error is None, f"the second sender failed: {second.error!r}"
    balances = [crm.coalition.loyalty.balance_of(m) for m in members]
    assert balances == [10, 11, 12], f"on chain: {balances}"
    assert sorted(e.amount for e in first + second.result) == [10, 11, 12]
    assert None not in column(crm, PointEvent, "block_number")


# --- enrolments and consents: a member enrolled once, before its consent; a consent recorded once ---------


def staged_members(crm: Crm, count: int) -> list[bytes]:
    """`count` customers of acme, their enrolments staged (as an import leaves them)."""
    return register_customers(
        crm, ACME, [CustomerCreate(name=f"S {n}", external_ref=f"s-{n}") for n in range(count)]
    )


@BOTH
def test_enrolments_released_by_a_second_sender_while_the_first_sends_them_are_enrolled_once(
    crm: Crm, monkeypatch: pytest.MonkeyPatch
):
    """The first sender has recorded the hash of an enrolBatch and not yet sent it; a second settles and
    sends meanwhile. Every member is enrolled once, both senders succeed, and the store has each
    enrolment's block."""
    new = staged_members(crm, 3)
    run = Interleaving(crm, monkeypatch, lambda: send_staged_enrolments(crm, ACME))
    run.first_pauses(crm.coalition.members, "broadcast")
    run.second_pauses(enrolment_rows, "staged")
    first_error: BaseException | None = None
    first: list[Any] = []
    try:
        first = send_staged_enrolments(crm, ACME)
    except Exception as exc:  # reported below, with the store's state
        first_error = exc
    second = run.finish()
    blocks = column(crm, Enrolment, "block_number")
    assert (first_error, second.error) == (None, None), blocks
    assert all(crm.coalition.members.member(m).enrolled for m in new)
    assert sorted(bytes(r.member_id) for r in first + second.result) == sorted(new)
    assert None not in blocks


@BOTH
def test_a_consent_sent_while_another_sender_has_recorded_its_members_enrolment_waits_for_it(
    crm: Crm, monkeypatch: pytest.MonkeyPatch
):
    """The first sender has recorded the hash of an enrolBatch and not yet sent it; the consent outbox no
    longer holds those members' consents back (their enrolment has a hash). A second sender of the
    consents must not send them before the enrolment is on chain (the chain refuses a consent of a
    member it does not know): both succeed, the consents are on chain, once each."""
    new = staged_members(crm, 3)
    assert stage_consents(crm, ACME, new, "loyalty").staged == new
    run = Interleaving(crm, monkeypatch, lambda: send_staged_consents(crm, ACME))
    run.first_pauses(crm.coalition.members, "broadcast")
    first_error: BaseException | None = None
    try:
        send_staged_enrolments(crm, ACME)
    except Exception as exc:  # reported below
        first_error = exc
    second = run.finish()
    assert (first_error, second.error) == (None, None)
    assert [r.member_id for r in second.result] == new
    acme = crm.signer("acme").address
    lengths = [crm.coalition.consent.history_length(m, acme, purpose_id("loyalty")) for m in new]
    assert lengths == [1, 1, 1]


@BOTH
def test_consents_released_by_a_second_sender_while_the_first_sends_them_are_recorded_once(
    crm: Crm, members: list[bytes], monkeypatch: pytest.MonkeyPatch
):
    """The first sender has recorded the hash of a recordBatch and not yet sent it; a second settles and
    sends meanwhile. Each member's consent is recorded once on chain and confirmed once in the store."""
    assert stage_consents(crm, ACME, members, "profiling").staged == members
    run = Interleaving(crm, monkeypatch, lambda: send_staged_consents(crm, ACME))
    run.first_pauses(crm.coalition.consent, "broadcast")
    run.second_pauses(consent_rows, "staged")
    first = send_staged_consents(crm, ACME)
    second = run.finish()
    assert second.error is None, f"the second sender failed: {second.error!r}"
    acme = crm.signer("acme").address
    lengths = [crm.coalition.consent.history_length(m, acme, purpose_id("profiling")) for m in members]
    assert lengths == [1, 1, 1], f"records on chain: {lengths}"
    assert sorted(bytes(r.member_id) for r in first + second.result) == sorted(members)
    assert None not in column(crm, ConsentReceipt, "block_number")


@BOTH
def test_senders_of_different_partners_do_not_wait_for_each_other(
    crm: Crm, members: list[bytes], monkeypatch: pytest.MonkeyPatch
):
    """acme's sender holds its lock, paused before it sends; borealis's sender goes through meanwhile,
    to the end, without waiting for it."""
    interactions(crm, members[0], 8)
    bob = register_customer(crm, P("borealis"), CustomerCreate(name="Bob", email="bob@example.org"))
    record_interactions(crm, "borealis", [NewInteraction(bob, "visit", {"n": 1}, external_key="b1")])
    run = Interleaving(crm, monkeypatch, lambda: anchoring.anchor_pending(crm, "borealis"))
    finished_meanwhile: list[bool] = []
    real = crm.coalition.anchor.broadcast

    def acme_paused(signed: Any) -> None:
        if threading.current_thread() is run.main and not finished_meanwhile:
            run.let_the_second_run()
            assert run.second.thread is not None
            finished_meanwhile.append(not run.second.thread.is_alive())
        real(signed)

    monkeypatch.setattr(crm.coalition.anchor, "broadcast", acme_paused)
    assert len(anchoring.anchor_pending(crm, "acme")) == 1
    second = run.finish()
    assert finished_meanwhile == [True]
    assert second.error is None and len(second.result) == 1


# --- decisions: each logged once ------------------------------------------------------------------------


@BOTH
def test_decisions_released_by_a_second_sender_while_the_first_sends_them_are_logged_once(
    crm: Crm, members: list[bytes], monkeypatch: pytest.MonkeyPatch
):
    """The first sender has recorded the hash of a recordDecisions and not yet sent it; a second settles
    and sends meanwhile. The chain logs each decision once, and the store numbers each as the chain did."""
    consented(crm, members, "profiling")
    model_id = crm.coalition.decisions.register_model(
        crm.signer("acme"), b"\x01" * 32, b"\x02" * 32, b"\x03" * 32
    )
    with crm.unit_of_work() as db:
        partner_id = crm.partner(db, "acme").id
        decision_rows.insert(
            db,
            [
                {
                    "partner_id": partner_id,
                    "member_id": member,
                    "model_id": model_id,
                    "as_of": datetime(2024, 6, 1, tzinfo=UTC),
                    "input_ids": "[]",
                    "input_root": bytes([n]) * 32,
                    "score_bps": 5000 + n,
                    "action": "retain",
                    "reasons": bytes(32),
                    "explanation_hash": bytes([n + 7]) * 32,
                    "explanation_ciphertext": None,
                    "decision_id": None,
                    "tx_hash": None,
                    "block_number": None,
                    "created_at": datetime.now(UTC),
                }
                for n, member in enumerate(members)
            ],
        )
    before = crm.coalition.decisions.decision_count()
    run = Interleaving(crm, monkeypatch, lambda: send_staged_decisions(crm, ACME))
    run.first_pauses(crm.coalition.decisions, "broadcast")
    run.second_pauses(decision_rows, "staged")
    first = send_staged_decisions(crm, ACME)
    second = run.finish()
    assert second.error is None, f"the second sender failed: {second.error!r}"
    logged = crm.coalition.decisions.decision_count() - before
    assert logged == 3, f"decisions logged on chain: {logged}"
    numbers = column(crm, DecisionRecord, "decision_id")
    assert sorted(number for _, number in first + second.result) == sorted(numbers)
    assert None not in numbers


@BOTH
def test_a_sender_lock_is_let_go_when_its_send_fails(crm: Crm) -> None:
    """A send that raises (here, in its block) lets the partner's lock go: another connection (another
    open of the lock file) takes it at once."""
    with pytest.raises(RuntimeError), sender_lock(crm.engine, 7):
        raise RuntimeError("a send failed")
    if crm.engine.dialect.name == "sqlite":
        path = sqlite_lock_file(crm.engine, 7)
        assert path is not None
        assert oct(path.stat().st_mode & 0o777) == oct(0o600)
        with path.open("rb") as other:
            fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)  # BlockingIOError if it were still held
        return
    with crm.engine.connect() as connection:
        query = text("SELECT pg_try_advisory_lock(:kind, 7), pg_advisory_unlock(:kind, 7)")
        assert tuple(connection.execute(query, {"kind": SENDER_LOCK_CLASS}).one()) == (True, True)


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_link_planted_where_a_sqlite_homes_sender_lock_belongs_is_refused_and_nothing_sent(
    crm: Crm, tmp_path: Path
) -> None:
    """Someone who may write in the home's folder (not in the store) plants a link where acme's lock
    file goes, to a file of theirs: the sender refuses in words, writes nothing through the link (its
    target keeps its bytes and mode), and nothing staged goes on chain."""
    new = staged_members(crm, 1)
    with crm.unit_of_work() as db:
        acme = crm.partner(db, "acme").id
    path = sqlite_lock_file(crm.engine, acme)
    assert path is not None
    path.parent.mkdir(mode=0o700, exist_ok=True)
    target = tmp_path / "theirs.txt"
    target.write_text("keep me")
    target.chmod(0o644)
    path.symlink_to(target)
    with pytest.raises(NotAllowed, match=r"sender lock .* cannot be opened"):
        send_staged_enrolments(crm, ACME)
    assert (target.read_text(), oct(target.stat().st_mode & 0o777)) == ("keep me", oct(0o644))
    assert not crm.coalition.members.member(new[0]).enrolled
    assert column(crm, Enrolment, "tx_hash") == [None]


# --- direct writes: a use case that sends from the partner's account waits for its running sender --------


@BOTH
def test_a_consent_given_while_a_sender_holds_an_unsent_transaction_waits_for_it_and_both_go_through(
    crm: Crm, members: list[bytes], monkeypatch: pytest.MonkeyPatch
):
    """The points sender has signed an earnBatch with the partner's next nonce, recorded its hash and not
    yet sent it; a consent given meanwhile (signed and sent at once, from the same account) must not take
    that nonce: it waits for the sender, then goes through. Both succeed: the points earned once, the
    consent recorded once."""
    consented(crm, members, "loyalty")
    stage_earnings(crm, ACME, [PointsRequest(members[0], 10, external_key="K-0")])
    run = Interleaving(crm, monkeypatch, lambda: give_consent(crm, ACME, members[1], "profiling"))
    waited: list[bool] = []
    real = crm.coalition.loyalty.broadcast

    def paused(signed: Any) -> None:
        if threading.current_thread() is run.main and not waited:
            run.let_the_second_run()
            assert run.second.thread is not None
            waited.append(run.second.thread.is_alive())  # waiting for the lock, not done
        real(signed)

    monkeypatch.setattr(crm.coalition.loyalty, "broadcast", paused)
    first_error: BaseException | None = None
    try:
        send_staged_points(crm, ACME)
    except Exception as exc:  # reported below
        first_error = exc
    second = run.finish()
    assert (first_error, second.error) == (None, None)
    assert waited == [True]
    assert crm.coalition.loyalty.balance_of(members[0]) == 10
    acme = crm.signer("acme").address
    assert crm.coalition.consent.history_length(members[1], acme, purpose_id("profiling")) == 1
    assert second.result.block_number is not None
