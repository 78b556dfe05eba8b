"""Crash safety of the synthetic import: kill -9 it five times, finish it, check nothing was lost or doubled.

Run from the project root:

    .venv/bin/python benchmarks/import_crash.py [--kills 5] [--kill-seed 1] [--mode progress|time]
        [--database-url postgresql+psycopg://...]

A fresh anvil (on a free port, stopped at the end) and a fresh home with partner acme; then

    ledgercrm --home HOME import synthetic --partner acme --seed 11 --customers 1000 --interactions 20000

runs as a subprocess, is killed with SIGKILL at a random moment, and is started again, `--kills` times;
the last run goes to completion. Kill moments come from `random.Random(--kill-seed)`:

- `--mode progress` (default): the import's progress, read from the CLI's own progress bars on stderr,
  is put on one scale (the five steps of every 1,000-record chunk: customers, consent, interactions,
  anchor, points); one random point on that scale per kill, sorted, and a random 0-1.5 s more once the
  run reaches it (which also lands kills in the final flush, where in-flight transactions are
  settled). So kills land anywhere, and a restart is never killed before it has caught up and done
  something new.
- `--mode time`: a random delay of `--delays LO HI` seconds (2 to 25 by default) after each start.
  Restarts skip what is done in seconds, so later kills often miss a finished import.

After each kill the store is read: what each outbox held (confirmed, in flight, staged) and, for a
transaction in flight, whether the chain has it. After the last run the script checks, against the
generator's own records and against the chain: no interaction lost, none duplicated; every customer once;
one consent receipt per customer and one consent record on chain each; the points on chain equal the
generator's per member and `reconcile` agrees; and the partner's log, from the chain down: the chain's
head size equals the genesis leaf plus the interactions and erasure receipts in the store, every leaf
index 1..size-1 is held by exactly one record and proves against an anchored head (the head of its
batch, read from the chain), no root appears in two `BatchAnchored` events and the partner's events
are its heads, each head is claimed by one store batch with its root and size; and `verify --all` (the
use case the CLI runs). A last table sums up lost, duplicated and anchored twice, each of which must be
0. It exits 1 if any check fails.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import IO, Any

if importlib.util.find_spec("ledger") is None:  # a bare checkout, without the editable install
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from rich.console import Console, JustifyMethod
from rich.table import Table
from sqlalchemy import func, or_
from sqlmodel import col, select
from sqlmodel.sql.expression import SelectOfScalar

from api.evidence.anchoring import GENESIS_SIZE
from api.importers.records import InvoiceRecord, TicketRecord
from api.importers.synthetic import SyntheticCustomer, generate
from api.principal import Principal
from api.usecases.consent import LOYALTY
from api.usecases.customers import find_customers_by_ref
from api.usecases.home import add_partner, init_home, open_crm
from api.usecases.imports import RECORDS_PER_CHUNK
from api.usecases.loyalty import reconcile
from api.usecases.verification import verify
from benchmarks.machine import load, machine_table
from ledger.anvil import running_anvil
from ledger.clients import purpose_id
from ledger.errors import LedgerError
from ledger.merkle import leaf_hash, verify_inclusion
from offchain.models import (
    AnchorStatus,
    Batch,
    ConsentReceipt,
    Customer,
    ErasureReceipt,
    Interaction,
    PointEvent,
)
from offchain.vault import INDEX_MEMBER

P = Principal.of_partner
OP = Principal.operator()

PARTNER = "acme"
# per chunk of RECORDS_PER_CHUNK records, in order (each chunk's anchor is sent right after its interactions)
CHUNK_PHASES = ("customers", "consent", "interactions", "anchor", "points")
JITTER = 1.5  # seconds, at most, between reaching a progress target and the kill
RUN_TIMEOUT = 900.0  # seconds a run may take before it counts as hung
BAR = re.compile(r"\b(customers|consent|interactions|points|anchor)\s[^0-9\r\n]*?(\d+)/(\d+|\?)")
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")

# tables are wider than 80 columns: captured output (a pipe, a log) gets 200
console = Console(width=None if sys.stdout.isatty() else 200)


class Interrupted(Exception):
    pass


def _on_sigterm(_signum: int, _frame: FrameType | None) -> None:
    raise Interrupted("SIGTERM")


# --------------------------------------------------------------------------------------------------
# The generator's truth


@dataclass
class Expected:
    customers: set[str] = field(default_factory=set)  # source customer numbers
    interactions: set[str] = field(default_factory=set)  # external keys (invoices, tickets)
    points: dict[str, int] = field(default_factory=dict)  # customer number -> points earned
    point_events: int = 0  # purchases that earn points


def expected_records(seed: int, customers: int, interactions: int) -> Expected:
    truth = Expected()
    current = ""
    for record in generate(seed, customers, interactions):
        if isinstance(record, SyntheticCustomer):
            current = record.customer_id
            truth.customers.add(current)
            truth.points[current] = 0
        elif isinstance(record, InvoiceRecord | TicketRecord):
            truth.interactions.add(record.external_key)
            if record.points > 0:
                truth.points[current] += record.points
                truth.point_events += 1
    return truth


# --------------------------------------------------------------------------------------------------
# Reading the child's progress bars


class ProgressWatch:
    """Reads a running import's stderr (Rich progress bars, forced on), keeps the highest count each
    bar showed, and copies the raw stream to a log file."""

    def __init__(self, stream: IO[bytes], log: Path) -> None:
        self.stream, self.log = stream, log
        self.done: dict[str, int] = {}
        self.total: int | None = None
        self.text = ""  # the tail of the cleaned stream, for error messages
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        tail = ""
        fd = self.stream.fileno()
        with self.log.open("wb") as log:
            while chunk := os.read(fd, 65536):
                log.write(chunk)
                tail = (tail + ANSI.sub("", chunk.decode("utf-8", "replace")))[-4000:]
                for match in BAR.finditer(tail):
                    phase, done, total = match.group(1), int(match.group(2)), match.group(3)
                    self.done[phase] = max(self.done.get(phase, 0), done)
                    if total != "?" and phase != "anchor":
                        self.total = max(self.total or 0, int(total))
                self.text = tail

    def join(self) -> None:
        self._thread.join(timeout=10)

    def position(self, records: int) -> float:
        """Where the import is on the 0 .. records scale (the final flush and settling come after
        `records`, and are reached by the random delay added to a kill late on the scale)."""
        done = [self.done.get(p, 0) for p in CHUNK_PHASES]
        top = max(done)
        if top == 0:
            return 0.0
        finished = sum(1 for d in done if d == top)  # phases of the newest chunk already reported
        chunk = top - (top - 1) // RECORDS_PER_CHUNK * RECORDS_PER_CHUNK
        return top - chunk + chunk * finished / len(CHUNK_PHASES)

    def phase(self) -> str:
        """The phase the import was most likely in, from the last progress it reported."""
        done = [self.done.get(p, 0) for p in CHUNK_PHASES]
        top = max(done)
        if top == 0:
            return "startup or resume (no progress shown yet)"
        for name, count in zip(CHUNK_PHASES, done, strict=True):
            if count < top:
                return f"{name} (records {top - (top - 1) % RECORDS_PER_CHUNK:,}-{top:,})"
        if self.total is not None and top >= self.total:
            return "final flush: the last consent, points and anchors settled"
        return f"customers/read (records {top + 1:,}-{top + RECORDS_PER_CHUNK:,})"

    def summary(self) -> str:
        shown = [f"{p[:5]} {self.done[p]:,}" for p in CHUNK_PHASES if p in self.done]
        return " ".join(shown) or "-"


# --------------------------------------------------------------------------------------------------
# What the store holds


@dataclass(frozen=True)
class Outbox:
    confirmed: int
    in_flight: int  # hash written, block not
    staged: int  # no hash yet

    def __str__(self) -> str:
        return f"{self.confirmed:,}/{self.in_flight:,}/{self.staged:,}"


@dataclass(frozen=True)
class StoreState:
    customers: int
    interactions: int
    interactions_anchored: int
    consents: Outbox
    points: Outbox
    batches: Outbox  # anchored / submitted / pending
    in_flight: list[str]  # each transaction with a hash and no block, and what the chain says of it


def _tx_status(client: Any, tx_hash: str) -> str:
    try:
        found = client.lookup(tx_hash)
    except LedgerError as exc:
        return f"error ({exc})"
    if found is None:
        return "never sent"
    return "pending on the node" if found == "pending" else f"mined in block {found.block_number}"


def anchored_batches() -> SelectOfScalar[int | None]:
    """The ids of anchored batches (an interaction's anchoring status is its batch's)."""
    return select(col(Batch.id)).where(Batch.status == AnchorStatus.ANCHORED)


def store_state(home: Path) -> StoreState:
    crm = open_crm(home)
    try:
        with crm.unit_of_work() as db:

            def count(*where: Any, model: Any = None) -> int:
                query = select(func.count()).select_from(model)
                return int(db.exec(query.where(*where) if where else query).one())

            def outbox(model: Any) -> Outbox:
                return Outbox(
                    count(col(model.block_number).is_not(None), model=model),
                    count(col(model.tx_hash).is_not(None), col(model.block_number).is_(None), model=model),
                    count(col(model.tx_hash).is_(None), model=model),
                )

            def open_hashes(model: Any) -> Counter[str]:
                rows = db.exec(
                    select(model.tx_hash).where(
                        col(model.tx_hash).is_not(None), col(model.block_number).is_(None)
                    )
                )
                return Counter(str(h) for h in rows)

            state = StoreState(
                customers=count(model=Customer),
                interactions=count(model=Interaction),
                interactions_anchored=count(
                    col(Interaction.batch_id).in_(anchored_batches()), model=Interaction
                ),
                consents=outbox(ConsentReceipt),
                points=outbox(PointEvent),
                batches=Outbox(
                    count(Batch.status == AnchorStatus.ANCHORED, model=Batch),
                    count(Batch.status == AnchorStatus.SUBMITTED, model=Batch),
                    count(Batch.status == AnchorStatus.PENDING, model=Batch),
                ),
                in_flight=[],
            )
            consents, points = open_hashes(ConsentReceipt), open_hashes(PointEvent)
            batches = [
                (b.tx_hash, b.size)
                for b in db.exec(select(Batch).where(Batch.status == AnchorStatus.SUBMITTED))
                if b.tx_hash
            ]
        coalition = crm.coalition
        for what, client, hashes in (
            ("consent recordBatch", coalition.consent, consents),
            ("earnBatch", coalition.loyalty, points),
            ("anchor", coalition.anchor, Counter(dict(batches))),
        ):
            for tx_hash, items in hashes.items():
                status = _tx_status(client, tx_hash)
                state.in_flight.append(f"{what} {tx_hash[:10]}… ({items:,}): {status}")
        return state
    finally:
        crm.close()


# --------------------------------------------------------------------------------------------------
# Running and killing the import


@dataclass
class Attempt:
    number: int
    target: str
    seconds: float  # from start to kill (or to exit)
    killed: bool
    exit_code: int | None
    phase: str
    progress: str
    state: StoreState | None = None


def cli_env() -> dict[str, str]:
    """Make the CLI draw its progress bars into a pipe, without colour, wide enough to parse."""
    return dict(
        os.environ, TTY_COMPATIBLE="1", TTY_INTERACTIVE="1", NO_COLOR="1", TERM="xterm", COLUMNS="160"
    )


def start_import(command: Sequence[str], log: Path) -> tuple[subprocess.Popen[bytes], ProgressWatch]:
    """Start the CLI: stdout to `log` with suffix .stdout; stderr read by a ProgressWatch, copied to `log`."""
    with log.with_suffix(".stdout").open("wb") as out:  # the child keeps its own descriptor
        child = subprocess.Popen(
            command, stdout=out, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, env=cli_env()
        )
    assert child.stderr is not None
    return child, ProgressWatch(child.stderr, log)


def run_and_kill(
    number: int,
    command: Sequence[str],
    log: Path,
    records: int,
    ready: Callable[[ProgressWatch, float], bool],
    jitter: float,
    target: str,
) -> Attempt:
    """Start the import, wait until `ready(watch, seconds)`, wait `jitter` more, then SIGKILL it."""
    child, watch = start_import(command, log)
    started = time.monotonic()
    killed = False
    try:
        while child.poll() is None and time.monotonic() - started < RUN_TIMEOUT:
            if ready(watch, time.monotonic() - started):
                time.sleep(jitter)
                if child.poll() is None:
                    os.kill(child.pid, signal.SIGKILL)
                    killed = True
                break
            time.sleep(0.02)
        seconds = time.monotonic() - started
        phase, progress = watch.phase(), watch.summary()  # the last progress before the kill
        code = child.wait()
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        watch.join()
    return Attempt(number, target, seconds, killed, code, phase, progress)


# --------------------------------------------------------------------------------------------------
# The checks


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str


@dataclass(frozen=True)
class Leaf:
    """A record of the store that holds a leaf of the partner's log."""

    record: str
    index: int | None
    hash: bytes
    proof: bytes
    batch_id: int | None


def final_checks(home: Path, truth: Expected, tally: dict[str, int]) -> list[Check]:
    """The checks, and in `tally` the three figures that must be 0: lost (a generated interaction not
    in the store, a leaf of the chain's log no record holds, a record outside the log), duplicated (an
    external key twice, a leaf held twice) and anchored twice (a root in two BatchAnchored events, a
    leaf hash at two places of the log)."""
    checks: list[Check] = []

    def check(name: str, ok: bool, detail: str) -> None:
        checks.append(Check(name, ok, detail))

    crm = open_crm(home)
    try:
        coalition = crm.coalition
        with crm.unit_of_work() as db:
            partner = crm.partner(db, PARTNER)
            keys = [str(k) for k in db.exec(select(Interaction.external_key))]
            unanchored = int(
                db.exec(
                    select(func.count()).where(
                        or_(
                            col(Interaction.batch_id).is_(None),
                            col(Interaction.batch_id).not_in(anchored_batches()),
                        )
                    )
                ).one()
            )
            customers = list(db.exec(select(Customer.member_id, Customer.external_ref_hmac)))
            consents = list(db.exec(select(ConsentReceipt)))
            events = list(db.exec(select(PointEvent)))
            batches = list(db.exec(select(Batch).order_by(col(Batch.id))))
            # the store's half of the log: every record that holds a leaf (interactions, erasure receipts)
            leaves = [
                Leaf(
                    f"interaction {r.id}", r.leaf_index, bytes(r.leaf_hash), bytes(r.proof or b""), r.batch_id
                )
                for r in db.exec(select(Interaction).where(Interaction.partner_id == partner.id))
            ] + [
                Leaf(
                    f"erasure receipt {r.id}",
                    r.leaf_index,
                    leaf_hash(bytes(r.receipt_hash)),
                    bytes(r.proof or b""),
                    r.anchored_batch_id,
                )
                for r in db.exec(select(ErasureReceipt).where(ErasureReceipt.partner_id == partner.id))
            ]
            receipts = sum(1 for leaf in leaves if leaf.record.startswith("erasure"))

        # interactions: none lost, none doubled
        stored = set(keys)
        missing, extra = truth.interactions - stored, stored - truth.interactions
        check(
            "interactions: none lost",
            not missing and not extra and len(keys) == len(truth.interactions),
            f"{len(keys):,} in the store, {len(truth.interactions):,} generated; "
            f"{len(missing):,} missing, {len(extra):,} not generated",
        )
        check(
            "interactions: none duplicated",
            len(stored) == len(keys),
            f"{len(stored):,} distinct external keys in {len(keys):,} rows",
        )

        # customers: each once, each findable by its source number
        found = find_customers_by_ref(crm, P(PARTNER), truth.customers)
        hmacs = {bytes(h) for _, h in customers if h is not None}
        check(
            "customers: each once",
            len(customers) == len(truth.customers) == len(found) == len(hmacs),
            f"{len(customers):,} rows, {len(hmacs):,} distinct source numbers, "
            f"{len(found):,} of {len(truth.customers):,} generated found",
        )

        # consent: one receipt per customer in the store, one record per customer on chain
        per_member = Counter(bytes(r.member_id) for r in consents)
        unconfirmed = sum(1 for r in consents if r.block_number is None)
        check(
            "consent: one receipt per customer, confirmed",
            len(per_member) == len(customers)
            and max(per_member.values(), default=0) == 1
            and not unconfirmed,
            f"{len(consents):,} receipts for {len(per_member):,} members, "
            f"at most {max(per_member.values(), default=0)} per member, {unconfirmed:,} unconfirmed",
        )
        purpose = purpose_id(LOYALTY)
        history = Counter(
            coalition.consent.history_length(bytes(member), partner.address, purpose)
            for member, _ in customers
        )
        check(
            "consent: one record per member on chain",
            set(history) == {1},
            "members by on-chain history length: "
            + ", ".join(f"{n} record(s): {c:,}" for n, c in sorted(history.items())),
        )

        # points: the chain against the generator, then the store against the chain
        balances_off = 0
        for ref, member in found.items():
            if coalition.loyalty.balance_of(member) != truth.points[ref]:
                balances_off += 1
        issued = coalition.loyalty.issued_by(partner.address)
        expected_total = sum(truth.points.values())
        check(
            "points: chain equals the generator",
            balances_off == 0 and issued == expected_total,
            f"{balances_off:,} of {len(found):,} balances differ; issued {issued:,}, "
            f"generated {expected_total:,}",
        )
        event_keys = Counter(e.external_key for e in events)
        unconfirmed_points = sum(1 for e in events if e.block_number is None)
        check(
            "points: one confirmed event per purchase",
            len(events) == truth.point_events and set(event_keys.values()) <= {1} and not unconfirmed_points,
            f"{len(events):,} events ({truth.point_events:,} purchases earn points), "
            f"{sum(1 for c in event_keys.values() if c > 1):,} keys twice, "
            f"{unconfirmed_points:,} unconfirmed",
        )
        reconciliation = reconcile(crm, OP)
        check(
            "points: reconcile(crm, OP).ok",
            reconciliation.ok,
            f"{reconciliation.members_checked:,} members, {reconciliation.partners_checked} partners; "
            + ("; ".join(reconciliation.mismatches[:3]) or "no mismatch"),
        )

        # the log, from the chain down: its heads (storage) and its BatchAnchored events (the event log)
        heads = coalition.anchor.heads(partner.address)
        head = coalition.anchor.head(partner.address)
        anchor_events = coalition.anchor.anchored_events()
        # leaf 0 is the partner's genesis leaf (its first head's root was proven on chain to start with
        # it); the store's records are leaves 1.. of the log
        check(
            "log: head size = genesis leaf + interactions + erasure receipts",
            head.size == GENESIS_SIZE + len(keys) + receipts and head.count == len(heads),
            f"the chain's head of {partner.name}: {head.size:,} leaves in {head.count} heads; the store: "
            f"{len(keys):,} interactions + {receipts:,} erasure receipts, after {GENESIS_SIZE} genesis leaf",
        )
        held = Counter(leaf.index for leaf in leaves if leaf.index is not None)
        unplaced = [leaf.record for leaf in leaves if leaf.index is None]
        gaps = [i for i in range(GENESIS_SIZE, head.size) if i not in held]
        at_genesis = sorted(i for i in held if i < GENESIS_SIZE)  # a record where the genesis leaf is
        twice = sorted(i for i, c in held.items() if c > 1)
        beyond = sorted(i for i in held if i >= head.size)
        check(
            "log: every leaf 1..size-1 held once by the store",
            not gaps and not twice and not beyond and not unplaced and not at_genesis,
            f"{len(held):,} leaf indexes held; {len(gaps):,} missing ({_ranges(gaps[:20])}), "
            f"{len(at_genesis):,} at the genesis leaf, "
            f"{len(twice):,} held twice ({_ranges(twice[:20])}), {len(beyond):,} beyond the head, "
            f"{len(unplaced):,} records not in the log",
        )
        by_batch = {b.id: b for b in batches}
        chain_heads = {h.batch_id: h for h in heads}
        unproven: list[str] = []
        for leaf in leaves:
            batch = by_batch.get(leaf.batch_id) if leaf.batch_id is not None else None
            anchored_head = (
                chain_heads.get(batch.onchain_batch_id)
                if batch is not None and batch.onchain_batch_id is not None
                else None
            )
            if anchored_head is None or leaf.index is None:
                unproven.append(f"{leaf.record}: no anchored head")
                continue
            proof = [leaf.proof[i : i + 32] for i in range(0, len(leaf.proof), 32)]
            result = verify_inclusion(leaf.hash, leaf.index, anchored_head.size, proof, anchored_head.root)
            if not result.ok:
                unproven.append(f"{leaf.record} (leaf {leaf.index}): {result}")
        check(
            "log: every leaf proves against an anchored head",
            not unproven,
            f"{len(leaves) - len(unproven):,} of {len(leaves):,} leaves prove against the chain's head "
            f"of their batch; " + ("; ".join(unproven[:3]) or "none fails"),
        )
        roots = Counter(e.root for e in anchor_events)
        again = sum(1 for c in roots.values() if c > 1)
        mine = [e for e in anchor_events if e.partner == partner.address]
        check(
            "log: no root anchored twice (BatchAnchored events)",
            again == 0
            and [(e.batch_id, e.root, e.size) for e in mine] == [(h.batch_id, h.root, h.size) for h in heads],
            f"{len(anchor_events):,} events, {len(roots):,} distinct roots, {again} anchored more than once; "
            f"{partner.name}'s events "
            + ("match" if len(mine) == len(heads) else f"({len(mine)}) do not match")
            + f" its {len(heads)} heads",
        )
        # each head claimed by exactly one store batch, with the same root and the same log size
        anchored = [b for b in batches if b.status is AnchorStatus.ANCHORED]
        ids = Counter(b.onchain_batch_id for b in anchored)
        mismatched = [
            b.onchain_batch_id
            for b in anchored
            if b.onchain_batch_id not in chain_heads
            or (chain_heads[b.onchain_batch_id].root, chain_heads[b.onchain_batch_id].size)
            != (b.root, b.first_index + b.size)
        ]
        check(
            "log: each head claimed by one store batch, same root and size",
            set(ids) == set(chain_heads)
            and max(ids.values(), default=1) == 1
            and not mismatched
            and len(anchored) == len(batches),
            f"{len(heads)} heads on chain, {len(anchored)} anchored store batches "
            f"({len(batches) - len(anchored)} not anchored); {sum(1 for c in ids.values() if c > 1)} "
            f"claimed twice; {len(mismatched)} with another root or size",
        )
        check(
            "interactions: every one anchored",
            unanchored == 0,
            f"{unanchored:,} of {len(keys):,} interactions not in an anchored batch",
        )
        hashes = Counter(leaf.hash for leaf in leaves if leaf.index is not None)
        tally.update(
            lost=len(missing) + len(gaps) + len(unplaced),
            duplicated=(len(keys) - len(stored)) + len(twice),
            anchored_twice=again + sum(1 for c in hashes.values() if c > 1),
        )

        report = verify(crm, OP)  # what `ledgercrm verify --all` runs
        counts = report.counts
        check(
            "verify --all: ok",
            report.ok,
            ", ".join(f"{c:,} {o.value}" for o, c in sorted(counts.items(), key=lambda kv: str(kv[0])))
            + "".join(f"; {p.outcome.value}: {p.detail}" for p in report.problems[:3]),
        )

        members = {bytes(m) for m, _ in customers}
        keyed = {k.member for k in crm.keystore.list_for_partner(PARTNER)} - {INDEX_MEMBER}
        without_key, unused = len(members - keyed), len(keyed - members)
        check(
            "customers: each has its data key",
            without_key == 0,
            f"{without_key:,} customers without a wrapped key",
        )
        checks.append(
            Check(
                "info: wrapped keys without a customer",
                True,
                f"{unused:,} (a kill between creating keys and committing their customers leaves "
                "unused keys: a documented caveat, not a failure)",
            )
        )
    finally:
        crm.close()
    return checks


def _ranges(values: Iterable[int]) -> str:
    """0, 1, 2, 3, 5 -> "0-3, 5"."""
    runs: list[list[int]] = []
    for value in sorted(values):
        if runs and value == runs[-1][1] + 1:
            runs[-1][1] = value
        else:
            runs.append([value, value])
    return ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in runs) or "none"


# --------------------------------------------------------------------------------------------------
# Printing


def print_attempts(attempts: Sequence[Attempt]) -> None:
    table = Table(title="Kills (store read after each)", title_justify="left")
    columns: tuple[tuple[str, JustifyMethod], ...] = (
        ("#", "right"),
        ("kill target", "left"),
        ("at s", "right"),
        ("phase (from stderr)", "left"),
        ("progress shown", "left"),
        ("customers", "right"),
        ("interactions (anchored)", "right"),
        ("consents ok/flight/staged", "right"),
        ("points ok/flight/staged", "right"),
        ("batches ok/submitted/pending", "right"),
        ("transactions in flight", "left"),
    )
    for column, justify in columns:
        table.add_column(column, justify=justify)
    for a in attempts:
        outcome = (
            f"{a.seconds:.1f}" if a.killed else f"{a.seconds:.1f} [yellow](exited {a.exit_code} first)[/]"
        )
        s = a.state
        table.add_row(
            str(a.number),
            a.target,
            outcome,
            a.phase,
            a.progress,
            "-" if s is None else f"{s.customers:,}",
            "-" if s is None else f"{s.interactions:,} ({s.interactions_anchored:,})",
            "-" if s is None else str(s.consents),
            "-" if s is None else str(s.points),
            "-" if s is None else str(s.batches),
            "-" if s is None else ("\n".join(s.in_flight) or "none"),
        )
    console.print(table)


def print_checks(checks: Sequence[Check]) -> None:
    table = Table(title="Final checks", title_justify="left")
    table.add_column("check")
    table.add_column("result", justify="center")
    table.add_column("detail")
    for c in checks:
        mark = "[dim]info[/]" if c.name.startswith("info") else ("[green]ok[/]" if c.ok else "[red]FAIL[/]")
        table.add_row(c.name, mark, c.detail)
    console.print(table)


def print_tally(tally: dict[str, int]) -> None:
    table = Table(title="Against the generator and the chain (each must be 0)", title_justify="left")
    for column in ("lost", "duplicated", "anchored twice"):
        table.add_column(column, justify="right")
    cells = [tally.get(k) for k in ("lost", "duplicated", "anchored_twice")]
    table.add_row(*("-" if c is None else (f"{c:,}" if c == 0 else f"[red]{c:,}[/]") for c in cells))
    console.print(table)


# --------------------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--kills", type=int, default=5, help="kills before the run to completion (default: 5)"
    )
    parser.add_argument("--kill-seed", type=int, default=1, help="seed of the kill moments (default: 1)")
    parser.add_argument(
        "--mode", choices=("progress", "time"), default="progress", help="how kills are timed (see above)"
    )
    parser.add_argument(
        "--delays",
        type=float,
        nargs=2,
        default=(2.0, 25.0),
        metavar=("LO", "HI"),
        help="--mode time: seconds after each start (default: 2 25)",
    )
    parser.add_argument("--seed", type=int, default=11, help="seed of the synthetic data (default: 11)")
    parser.add_argument("--customers", type=int, default=1000)
    parser.add_argument("--interactions", type=int, default=20_000)
    parser.add_argument(
        "--database-url",
        default=None,
        help="an empty PostgreSQL database's URL (scripts/postgres.sh) for the store; default: SQLite",
    )
    parser.add_argument("--keep", action="store_true", help="keep the home and the stderr logs; print where")
    args = parser.parse_args(argv)
    if args.kills < 0 or args.customers < 1 or args.interactions < 1:
        parser.error("--kills >= 0, --customers and --interactions >= 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _on_sigterm)  # so `finally` stops the import and anvil
    started = time.perf_counter()
    cli = Path(sys.executable).with_name("ledgercrm")
    if not cli.is_file():
        found = shutil.which("ledgercrm")
        if found is None:
            console.print("[red]error:[/] the ledgercrm command is not installed next to this Python")
            return 2
        cli = Path(found)
    rng = random.Random(args.kill_seed)
    workdir = Path(tempfile.mkdtemp(prefix="import-crash-"))
    home = workdir / "home"
    attempts: list[Attempt] = []
    checks: list[Check] = []
    tally: dict[str, int] = {}
    final_out = ""
    final_code: int | None = None
    console.print(
        machine_table(
            "Machine and setup",
            [
                ("Chain", "anvil, a fresh node"),
                (
                    "Import",
                    f"synthetic, seed {args.seed}, {args.customers:,} customers, "
                    f"{args.interactions:,} interactions",
                ),
                ("Kills", f"{args.kills}, --mode {args.mode}, --kill-seed {args.kill_seed}"),
            ],
        )
    )
    try:
        with console.status("Generating the expected records") if console.is_terminal else _nothing():
            truth = expected_records(args.seed, args.customers, args.interactions)
        records = len(truth.interactions) + max(0, args.customers - args.interactions)
        console.print(
            f"Generator, seed {args.seed}: {len(truth.customers):,} customers, "
            f"{len(truth.interactions):,} interactions, {truth.point_events:,} earning points "
            f"({sum(truth.points.values()):,} points)"
        )
        with running_anvil() as (url, _):
            init_home(home, url, args.database_url)
            add_partner(home, PARTNER)
            command = [
                str(cli),
                "--home",
                str(home),
                "import",
                "synthetic",
                "--partner",
                PARTNER,
                "--seed",
                str(args.seed),
                "--customers",
                str(args.customers),
                "--interactions",
                str(args.interactions),
            ]
            console.print(f"Home {home} on {url}; running: ledgercrm {' '.join(command[1:])}")
            targets = sorted(rng.uniform(0.03, 1.0) * records for _ in range(args.kills))
            for number in range(1, args.kills + 1):
                ready: Callable[[ProgressWatch, float], bool]
                if args.mode == "progress":
                    goal = targets[number - 1]
                    ready = _progress_reached(goal, records)
                    jitter = rng.uniform(0.0, JITTER)
                    target = f"records {goal:,.0f} +{jitter:.2f}s"
                else:
                    delay = rng.uniform(*args.delays)
                    ready = _time_passed(delay)
                    jitter, target = 0.0, f"{delay:.2f}s after start"
                attempt = run_and_kill(
                    number, command, workdir / f"run{number}.stderr", records, ready, jitter, target
                )
                attempt.state = store_state(home)
                attempts.append(attempt)
                console.print(
                    f"  run {number}: "
                    + (
                        f"killed after {attempt.seconds:.1f}s in {attempt.phase}"
                        if attempt.killed
                        else f"exited {attempt.exit_code} after {attempt.seconds:.1f}s before the kill"
                    )
                )
            # the last run, to completion
            log = workdir / "final.stderr"
            child, watch = start_import(command, log)
            began = time.monotonic()
            try:
                final_code = child.wait(timeout=RUN_TIMEOUT)
                final_out = ANSI.sub("", log.with_suffix(".stdout").read_text("utf-8", "replace"))
            except subprocess.TimeoutExpired:
                final_out = f"(no result after {RUN_TIMEOUT:.0f}s: killed)"
            finally:
                if child.poll() is None:
                    child.kill()
                    child.wait()
                watch.join()
            final = Attempt(
                args.kills + 1, "none: to completion", time.monotonic() - began, False, final_code, "-", "-"
            )
            final.state = store_state(home)
            attempts.append(final)
            if final_code != 0:
                console.print(f"[red]the final run exited {final_code}[/]; its stderr ends:")
                console.print(watch.text[-2000:], markup=False, highlight=False)
            checks = final_checks(home, truth, tally)
    except (Interrupted, KeyboardInterrupt) as exc:
        console.print(f"[red]Interrupted[/] ({exc or 'SIGINT'})")
        return 130
    finally:
        if args.keep:
            console.print(f"Kept {workdir} (home and each run's stderr)")
        else:
            shutil.rmtree(workdir, ignore_errors=True)

    console.print()
    print_attempts(attempts)
    console.print(
        "[dim]ok/flight/staged: confirmed on chain / transaction hash written, block not / no transaction "
        "yet. Batches: anchored / submitted / pending. Phase: the last progress the CLI drew before the "
        "kill (it redraws 10 times a second).[/]"
    )
    console.print()
    console.print("[bold]The last run's report[/] (stdout of ledgercrm):")
    console.print(final_out.rstrip(), markup=False, highlight=False)
    console.print()
    checks.insert(
        0,
        Check(
            "final run exits 0",
            final_code == 0,
            f"exit code {final_code}, after {len([a for a in attempts if a.killed])} kills",
        ),
    )
    print_checks(checks)
    print_tally(tally)
    failed = [c for c in checks if not c.ok]
    if failed:
        console.print("\n[red]FAILED[/]: " + ", ".join(c.name for c in failed))
    else:
        console.print("\n[green]All checks pass.[/]")
    console.print(f"[dim]Total run time {time.perf_counter() - started:.1f}s; load average now {load()}[/]")
    return 1 if failed else 0


@contextmanager
def _nothing() -> Iterator[None]:
    yield


def _progress_reached(goal: float, records: int) -> Callable[[ProgressWatch, float], bool]:
    return lambda watch, _seconds: watch.position(records) >= goal


def _time_passed(delay: float) -> Callable[[ProgressWatch, float], bool]:
    return lambda _watch, seconds: seconds >= delay


if __name__ == "__main__":
    sys.exit(main())
