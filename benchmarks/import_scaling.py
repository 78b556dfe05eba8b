"""How a synthetic import scales: time and peak memory of import and verify, and proof sizes, at 10k,
100k (and 1M) interactions.

Run from the project root:

    .venv/bin/python benchmarks/import_scaling.py [--max 1000000] [--chain anvil|memory] [--seed S]
        [--rounds 3] [--node-url URL [--node-pid PID]]

Each size runs `import_synthetic` (customers = interactions / 20) in a fresh home on a fresh chain, in
a subprocess of its own, so the peak RSS of one run is not the high-water mark of an earlier, smaller
one. On `--chain anvil` (the default) the script starts one anvil per size on a free port and stops it
afterwards; `--chain memory` deploys on eth-tester inside the subprocess instead (about five times
slower: meant for small sizes, e.g. `--chain memory --max 10000`). With `--node-url URL` it runs on a
node it did not start (another client, e.g. Hardhat's EDR: benchmarks/README.md says how to start one):
the node must be a development chain of the devnet's (chain id 31337, the development mnemonic's
accounts funded); each size starts from the state the node had when the script began (`evm_snapshot`
then, `evm_revert` after each size; a node without them runs one size, one round), and the node's CPU
is read from its process (`--node-pid`, else the process listening on the URL's port on this machine).

The figures are the import's own: contract deployment, home creation and partner admission are done
before the clock starts. Peak RSS is the subprocess's `ru_maxrss`, which includes that setup. Then, on
the same home and chain, the cost of an empty block (`evm_mine`, five of them: the node's wall and CPU
milliseconds each, what a block costs the node whatever it holds), `verify --all` as the CLI runs it
(`api.usecases.verification.verify` as the operator), in full mode (payloads decrypted and re-hashed)
and in auditor mode (no key opened), each in a fresh subprocess of its own so that its peak RSS is its
own; and the proof sizes: the inclusion proof of a random leaf (as stored, against its batch's head,
and against the latest head) and the consistency proof between the last two heads, each checked by the
contract. With `--rounds N` the sizes run N times in turn (smallest to largest, then again), and the
ratios are of the rounds' medians: the wall time and the CPU seconds of all three processes (the
import, its data generator, the node). A plot of time and RSS against size goes to
benchmarks/out/import_scaling.png (matplotlib, a dev dependency).
"""

from __future__ import annotations

import argparse
import importlib.util
import itertools
import json
import math
import os
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from types import FrameType
from typing import Any

if importlib.util.find_spec("ledger") is None:  # a bare checkout, without the editable install
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from rich.console import Console
from rich.table import Table

from api.principal import Principal
from benchmarks.machine import cpu_seconds, load, machine_table
from ledger.anvil import free_port, running_anvil, start_anvil

P = Principal.of_partner

SIZES = (10_000, 100_000, 1_000_000)
DEFAULT_MAX = 100_000
INTERACTIONS_PER_CUSTOMER = 20
# the smallest size whose CPU of all three processes is compared (`Run.cpu`: the slices see the generator
# only while it is alive, which a run of a few chunks can miss)
CPU_FROM = 100_000
PARTNER = "acme"
PLOT = Path(__file__).resolve().parent / "out" / "import_scaling.png"
PHASES = ("resume", "read", "customers", "consent", "interactions", "points", "anchor")

# tables are wider than 80 columns: captured output (a pipe, a log) gets 130
console = Console(width=None if sys.stdout.isatty() else 130)


# --------------------------------------------------------------------------------------------------
# The child: one import in a fresh home, reported as one JSON line on stdout


def max_rss_bytes(who: int = resource.RUSAGE_SELF) -> int:
    """This process's peak RSS in bytes: VmHWM where procfs has it, else ru_maxrss (Linux reports KiB,
    macOS bytes). Not ru_maxrss first: Linux carries it over an exec from the forked copy of the parent,
    so a child started after the parent had grown (reading a 1M chain's blocks, `chain_contents`) reported
    the parent's 583 MB as its own; VmHWM belongs to the image the exec made."""
    if who == resource.RUSAGE_SELF and (own := peak_rss_of(os.getpid())) is not None:
        return own
    rss = resource.getrusage(who).ru_maxrss
    return int(rss if sys.platform == "darwin" else rss * 1024)


def store_bytes(home: Path) -> int:
    """The size on disk of the home's stores (data and key store, with their WAL files)."""
    return sum(f.stat().st_size for f in home.glob("*.sqlite*") if f.is_file())


def run_child(args: argparse.Namespace) -> int:
    """One step in a process of its own: the import (on eth-tester also everything after it, since the
    chain lives in that process), one verification, or the proof sizes; one JSON line on stdout."""
    if args.child == "import":
        return _child_import(args)
    from api.usecases.home import open_crm

    crm = open_crm(Path(args.home))
    try:
        if args.child == "proofs":
            result: dict[str, Any] = proof_sizes(crm, args.seed)
        else:
            result = timed_verify(crm, auditor=args.child == "auditor")
    finally:
        crm.close()
    print(json.dumps(result), flush=True)
    return 0


def _child_import(args: argparse.Namespace) -> int:
    from api.context import Crm
    from api.usecases.imports import import_synthetic

    home = Path(args.home)
    setup_started = time.perf_counter()
    crm: Crm
    if args.chain == "memory":
        from api.settings import Settings
        from api.usecases.partners import register_partner
        from ledger import Coalition, EthTesterBackend

        backend = EthTesterBackend()
        founders = list(backend.accounts[:3])
        coalition = Coalition.deploy(backend, founders=founders, deployer=founders[0])
        crm = Crm.open(Settings(home=home), coalition)
        register_partner(crm, PARTNER, founders[0])
    else:
        from api.usecases.home import add_partner, init_home, open_crm

        init_home(home, args.chain)
        add_partner(home, PARTNER)
        crm = open_crm(home)
    setup_seconds = time.perf_counter() - setup_started
    rss_before = max_rss_bytes()

    started = time.perf_counter()
    last_told = started
    size = args.interactions
    slices = Slices(size, args.chain, args.node_pid, started)

    def progress(phase: str, done: int, total: int | None) -> None:
        nonlocal last_told
        now = time.perf_counter()
        slices.told(phase, done, now)
        if args.progress_every > 0 and now - last_told >= args.progress_every:
            last_told = now
            of = f"/{total:,}" if total else ""
            print(
                f"  [{size:,}] {now - started:6.0f}s  {phase:<12} {done:,}{of}", file=sys.stderr, flush=True
            )

    try:
        report = import_synthetic(
            crm,
            P(PARTNER),
            seed=args.seed,
            customers=args.customers,
            interactions=args.interactions,
            progress=progress,
        )
        wall = time.perf_counter() - started
        slices.close(args.interactions, time.perf_counter())
        result: dict[str, Any] = {
            "interactions": args.interactions,
            "customers": args.customers,
            "wall": wall,
            "setup": setup_seconds,
            "rss_before": rss_before,
            "rss_peak": max_rss_bytes(),
            "rss_generator": max_rss_bytes(resource.RUSAGE_CHILDREN),  # the data is generated in a child
            "store_bytes": store_bytes(home),
            "report": report.as_dict(),
            "slices": slices.rows,
        }
        if args.chain == "memory":  # the chain is this process's: verify here (RSS not separable)
            result["verify_full"] = timed_verify(crm, auditor=False, own_process=False)
            result["verify_auditor"] = timed_verify(crm, auditor=True, own_process=False)
            result["proofs"] = proof_sizes(crm, args.seed)
    finally:
        crm.close()
    print(json.dumps(result), flush=True)
    return 0


def children_cpu_seconds(seen: dict[int, float]) -> float:
    """CPU seconds of this process's children (the import's generator process): each live child's read
    now into `seen`, and the last reading of those gone (a child's time leaves /proc with it)."""
    for task in Path("/proc/self/task").iterdir():
        try:
            pids = (task / "children").read_text().split()
        except OSError:
            continue
        for pid in pids:
            value = cpu_seconds(int(pid))
            if value is not None:
                seen[int(pid)] = value
    return sum(seen.values())


def _io_counters(path: Path) -> dict[str, int]:
    """A /proc `io` file's counters (rchar, wchar, read_bytes, write_bytes, ...); empty where unreadable."""
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return {}
    return {name: int(value) for name, _, value in (line.partition(": ") for line in lines)}


def _thread_cpu_seconds(native_id: int) -> float | None:
    """A thread of this process: its user + system CPU seconds so far, from /proc."""
    try:
        fields = Path(f"/proc/self/task/{native_id}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def store_io() -> dict[str, float | None]:
    """What this process has done to its store so far, from /proc: the bytes its threads wrote to files
    (`write_bytes`: the SQLite store's WAL at each commit, the checkpoint thread's copies of its pages
    into the database file, the key store), the bytes its main thread read from files (`rchar`: pages
    SQLite did not find in its own cache; the generator's pipe is read by another thread, the node's
    socket is not counted), and the CPU seconds of the store's checkpoint thread (`checkpoints_beside`;
    None until it runs)."""
    main = threading.main_thread().native_id
    checkpoints = next((t for t in threading.enumerate() if t.name == "sqlite-checkpoints"), None)
    written = _io_counters(Path("/proc/self/io")).get("write_bytes")
    read = _io_counters(Path(f"/proc/self/task/{main}/io")).get("rchar")
    return {
        "written": None if written is None else float(written),
        "read": None if read is None else float(read),
        "checkpoints": (
            None
            if checkpoints is None or checkpoints.native_id is None
            else _thread_cpu_seconds(checkpoints.native_id)
        ),
    }


def latest_block(url: str) -> int | None:
    """The node's block number over a plain JSON-RPC call of its own (not the import's connection)."""
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "eth_blockNumber", "params": []}).encode()
    request = urllib.request.Request(url, body, {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return int(json.loads(answer.read())["result"], 16)
    except (OSError, ValueError, KeyError):
        return None


class NodeError(Exception):
    """A node given by --node-url that cannot serve the run: one line, said before anything runs."""


def rpc(url: str, method: str, params: list[Any], timeout: float = 30.0) -> Any:
    """One plain JSON-RPC call: its result, or NodeError with the node's words (or why none answered)."""
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).encode()
    request = urllib.request.Request(url, body, {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            reply = json.loads(answer.read())
    except urllib.error.HTTPError as exc:
        raise NodeError(f"the node at {url} answered {method} with HTTP {exc.code} {exc.reason}") from None
    except urllib.error.URLError as exc:
        raise NodeError(f"no node answers at {url}: {exc.reason}") from None
    except (OSError, ValueError) as exc:
        raise NodeError(f"no node answers at {url}: {exc}") from None
    if not isinstance(reply, dict) or ("result" not in reply and "error" not in reply):
        raise NodeError(f"the node at {url} answered {method} with no JSON-RPC result")
    if "error" in reply:
        error = reply["error"]
        message = error.get("message", error) if isinstance(error, dict) else error
        raise NodeError(f"the node at {url} refused {method}: {message}")
    return reply["result"]


def pid_listening_on(port: int) -> int | None:
    """The process listening on TCP `port` on this machine (its socket's inode in /proc/net/tcp*, then
    the process holding that socket); None where none is found or /proc does not show it."""
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            # local address "hex-ip:hex-port", state 0A = LISTEN, inode
            if len(fields) > 9 and fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(f"socket:[{fields[9]}]")
    if not inodes:
        return None
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            descriptors = list((proc / "fd").iterdir())
        except OSError:
            continue
        for fd in descriptors:
            try:
                if os.readlink(fd) in inodes:
                    return int(proc.name)
            except OSError:
                continue
    return None


@dataclass
class Node:
    """A node this script did not start (--node-url): where it answers, its process (for its CPU, None
    where unknown), what it says it is, and the snapshot each size starts from (None: it takes none)."""

    url: str
    pid: int | None
    client: str
    start_block: int
    snapshot: str | None

    def reset(self) -> None:
        """Back to the state of the script's start (the snapshot), and a new snapshot of it: a reverted
        snapshot is spent, on anvil and Hardhat alike."""
        if self.snapshot is None:
            return
        if rpc(self.url, "evm_revert", [self.snapshot]) is not True:
            raise NodeError(f"the node at {self.url} did not revert to snapshot {self.snapshot}")
        self.snapshot = str(rpc(self.url, "evm_snapshot", []))


def check_node(url: str, pid: int | None, runs: int) -> Node:
    """The node at `url` as the run needs it, or NodeError saying what is wrong: the devnet's chain id, a
    development client (the import deploys with the public test keys, which `init_home` uses only
    there), the founders' accounts funded, its process found (for its CPU), and, for more than one run,
    a snapshot to start each from."""
    from api.usecases.home import FOUNDERS, dev_accounts
    from ledger.anvil import DEVNET_CHAIN_ID
    from ledger.backends import DEVELOPMENT_CLIENTS

    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise NodeError(f"--node-url takes an http(s) JSON-RPC URL, not {url!r}")
    chain_id = int(rpc(url, "eth_chainId", []), 16)
    if chain_id != DEVNET_CHAIN_ID:
        raise NodeError(f"the node at {url} runs chain id {chain_id}, not the devnet's {DEVNET_CHAIN_ID}")
    client = str(rpc(url, "web3_clientVersion", []))
    if not client.lower().startswith(DEVELOPMENT_CLIENTS):
        raise NodeError(
            f"the node at {url} is {client!r}, not a development node (anvil, Hardhat, Ganache): the import "
            "deploys with the development mnemonic's public keys, which a home uses only on one"
        )
    for index, account in enumerate(dev_accounts(FOUNDERS)):
        balance = int(rpc(url, "eth_getBalance", [account.address, "latest"]), 16)
        if balance < 10**18:
            raise NodeError(
                f"the node at {url} does not fund the devnet's accounts: {account.address} (the development "
                f"mnemonic's account {index}) holds {balance} wei"
            )
    if pid is not None:
        if cpu_seconds(pid) is None:
            raise NodeError(f"--node-pid {pid}: no such process on this machine")
    else:
        pid = pid_listening_on(parts.port or (443 if parts.scheme == "https" else 80))
    try:
        snapshot: str | None = str(rpc(url, "evm_snapshot", []))
    except NodeError as exc:
        if runs > 1:
            raise NodeError(
                f"{exc}: each size needs the chain it started from, so run one size and one round per "
                "fresh node"
            ) from None
        snapshot = None
    start_block = int(rpc(url, "eth_blockNumber", []), 16)
    return Node(url=url, pid=pid, client=client, start_block=start_block, snapshot=snapshot)


def empty_block_cost(url: str, pid: int | None, blocks: int = 5) -> dict[str, Any] | None:
    """What an empty block costs the node: `evm_mine` `blocks` times, the wall and node CPU milliseconds
    of each (on anvil, its state root over everything it holds); None where the node has no evm_mine."""
    cpu_before, started = cpu_seconds(pid), time.perf_counter()
    try:
        for _ in range(blocks):
            rpc(url, "evm_mine", [], timeout=120)
    except NodeError:
        return None
    wall, cpu_after = time.perf_counter() - started, cpu_seconds(pid)
    cpu = None if cpu_before is None or cpu_after is None else cpu_after - cpu_before
    return {
        "blocks": blocks,
        "wall_ms": 1000 * wall / blocks,
        "cpu_ms": None if cpu is None else 1000 * cpu / blocks,
    }


class Slices:
    """The import cut into slices of `size / 10` interactions (100k at 1M), as its progress reports
    them: per slice, its wall seconds, the CPU seconds of the import process, of its generator and of
    anvil, the blocks mined and the seconds between progress calls by phase. What grows from one slice
    to the next is what makes the whole run grow faster than its size."""

    def __init__(self, size: int, chain: str, node_pid: int | None, started: float) -> None:
        self.step = max(1, size // 10)
        self.next = self.step
        self.url = chain if chain.startswith("http") else None
        self.node_pid = node_pid
        self.rows: list[dict[str, Any]] = []
        self.phases: dict[str, float] = {}
        self.children: dict[int, float] = {}  # child pid -> its CPU seconds when last seen
        self.last = started
        self.mark = self._mark(started)

    def _mark(self, now: float) -> dict[str, Any]:
        mark = {
            "at": now,
            "cpu": time.process_time(),
            "generator": children_cpu_seconds(self.children),
            "node": cpu_seconds(self.node_pid) if self.node_pid else None,
            "block": latest_block(self.url) if self.url else None,
        } | store_io()
        if mark["checkpoints"] is None and getattr(self, "mark", None) is not None:
            # the checkpoint thread has ended with the import: its CPU as last seen (the end's row
            # misses what it did after the last chunk)
            mark["checkpoints"] = self.mark["checkpoints"]
        return mark

    def told(self, phase: str, done: int, now: float) -> None:
        # the time since the previous call went to the phase just reported (reading included in the
        # first phase of a chunk, customers)
        self.phases[phase] = self.phases.get(phase, 0.0) + now - self.last
        self.last = now
        if phase == "points" and done >= self.next:  # a chunk's last phase: slices end between chunks
            self._close(done, now)
            while self.next <= done:
                self.next += self.step

    def close(self, done: int, now: float) -> None:
        """The end of the run: what came after the last slice (settling, the last anchors) is a row."""
        self.phases["end"] = self.phases.get("end", 0.0) + now - self.last
        self.last = now
        self._close(done, now, end=True)

    def _close(self, done: int, now: float, *, end: bool = False) -> None:
        mark = self._mark(now)

        def delta(key: str) -> float | None:
            a, b = self.mark[key], mark[key]
            if key == "checkpoints" and a is None and b is not None:
                a = 0.0  # the thread started within the slice
            return None if a is None or b is None else b - a

        self.rows.append(
            {
                "done": done,
                "end": end,
                "wall": now - self.mark["at"],
                "cpu": delta("cpu"),
                "generator": delta("generator"),
                "node": delta("node"),
                "blocks": delta("block"),
                "store_written": delta("written"),
                "store_read": delta("read"),
                "checkpoints": delta("checkpoints"),
                "phases": self.phases,
            }
        )
        self.mark, self.phases = mark, {}


def timed_verify(crm: Any, *, auditor: bool, own_process: bool = True) -> dict[str, Any]:
    """`ledgercrm verify --all [--auditor]` without the printing: the use case the CLI calls, as the
    operator. Peak RSS only when this process does nothing else (`own_process`)."""
    from api.usecases.verification import verify

    rss_before = max_rss_bytes()
    started = time.perf_counter()
    report = verify(crm, Principal.operator(), auditor=auditor)
    wall = time.perf_counter() - started
    return {
        "wall": wall,
        "checked": len(report.results),
        "counts": {str(o): c for o, c in report.counts.items()},
        "failures": [f"{f.label}: {f.detail}" for f in report.failures[:3]],
        "failed": len(report.failures),
        "rss_before": rss_before if own_process else None,
        "rss_peak": max_rss_bytes() if own_process else None,
    }


def proof_sizes(crm: Any, seed: int) -> dict[str, Any]:
    """Bytes of the inclusion proof of a random leaf (as stored: against its batch's head; and against
    the latest head, from a tree rebuilt over every leaf hash) and of the consistency proof between the
    last two heads (as stored with the last batch), each checked by the contract."""
    import random

    from sqlmodel import col, select

    from ledger.merkle import MerkleTree
    from offchain.models import Batch, Interaction

    anchor = crm.coalition.anchor
    with crm.unit_of_work() as db:
        partner = crm.partner(db, PARTNER)
        heads = anchor.heads(partner.address)
        latest = heads[-1]
        index = random.Random(seed).randrange(1, latest.size)  # leaf 0 is the genesis leaf: no record
        row = db.exec(
            select(Interaction).where(Interaction.partner_id == partner.id, Interaction.leaf_index == index)
        ).one()
        batch = db.exec(select(Batch).where(Batch.id == row.batch_id)).one()
        stored = bytes(row.proof or b"")
        leaf = bytes(row.leaf_hash)
        stored_ok = anchor.verify_inclusion(batch.onchain_batch_id, index, leaf, _split(stored))
        # the whole log in leaf order: the genesis leaf, then the records (synthetic imports hold no
        # erasure receipts)
        leaves = [anchor.genesis_leaf(partner.address)] + [
            bytes(h)
            for h in db.exec(
                select(Interaction.leaf_hash)
                .where(Interaction.partner_id == partner.id)
                .order_by(col(Interaction.leaf_index))
            )
        ]
        last = db.exec(select(Batch).where(Batch.onchain_batch_id == latest.batch_id)).one()
        consistency = bytes(last.consistency or b"")
    tree = MerkleTree(leaves)
    to_latest = tree.proof(index)
    latest_ok = tree.root == latest.root and anchor.verify_inclusion(latest.batch_id, index, leaf, to_latest)
    result: dict[str, Any] = {
        "heads": len(heads),
        "size": latest.size,
        "leaf": index,
        "stored_head": batch.first_index + batch.size,
        "inclusion_stored": len(stored),
        "inclusion_stored_ok": stored_ok,
        "inclusion_latest": 32 * len(to_latest),
        "inclusion_latest_ok": latest_ok,
        "consistency": None,
        "consistency_ok": None,
    }
    if len(heads) >= 2:
        before = heads[-2]
        result["consistency"] = len(consistency)
        result["consistency_sizes"] = [before.size, latest.size]
        result["consistency_ok"] = anchor.verify_consistency(
            before.size, latest.size, before.root, latest.root, _split(consistency)
        )
    return result


def _split(proof: bytes) -> list[bytes]:
    return [proof[i : i + 32] for i in range(0, len(proof), 32)]


# --------------------------------------------------------------------------------------------------
# The parent: one fresh chain and one subprocess per size


@dataclass(frozen=True)
class Run:
    interactions: int
    customers: int
    wall: float  # seconds of the import itself
    setup: float  # seconds of deployment, home and partner before it
    rss_before: int  # bytes: the child's peak RSS once set up, before the import
    rss_peak: int  # bytes: the child's peak RSS at the end
    rss_generator: int  # bytes: peak RSS of the process generating the data for it
    store_bytes: int
    node_rss: int | None  # bytes: the node's peak RSS (VmHWM), when known
    timings: dict[str, float]
    recorded: int  # interactions the import recorded
    verify_full: dict[str, Any] | None  # timed_verify's result, with the keys (None: not run)
    verify_auditor: dict[str, Any] | None  # and without
    proofs: dict[str, Any] | None  # proof_sizes's result
    slices: list[dict[str, Any]]  # Slices.rows: the import a tenth at a time
    chain: dict[str, Any] | None = None  # chain_contents's summary of the node's blocks (not eth-tester)
    empty_block: dict[str, Any] | None = None  # empty_block_cost's, after the import (not eth-tester)

    @property
    def per_second(self) -> float:
        return self.interactions / self.wall

    @property
    def cpu(self) -> float | None:
        """CPU seconds of all three processes (the import, its generator, the node), summed over the slices;
        None where a slice did not know one (eth-tester has no node process). A generator is counted while
        it is seen alive at a slice's end, so a run of a few chunks can miss its CPU: a figure for
        `CPU_FROM` and up."""
        total = 0.0
        for row in self.slices:
            for key in ("cpu", "generator", "node"):
                if row.get(key) is None:
                    return None
                total += float(row[key])
        return total if self.slices else None

    @property
    def per_1k(self) -> float:
        return 1000 * self.wall / self.interactions


class Interrupted(Exception):
    pass


def _on_sigterm(_signum: int, _frame: FrameType | None) -> None:
    raise Interrupted("SIGTERM")


def peak_rss_of(pid: int) -> int | None:
    """A running process's peak RSS (VmHWM) from procfs; None where there is none."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


@contextmanager
def fresh_chain(chain: str, keep: bool = False, node: Node | None = None) -> Iterator[tuple[str, int | None]]:
    """The --chain argument the child gets, and the node's process id where known: a fresh anvil this
    script starts (with `keep`, in a session of its own and left running afterwards), or the --node-url
    node, put back afterwards to the state it had when the script started (unless `keep`)."""
    if chain == "memory":
        yield "memory", None
        return
    if node is not None:
        yield node.url, node.pid
        if not keep:
            node.reset()
        return
    if keep:
        port = free_port()
        yield f"http://127.0.0.1:{port}", start_anvil(port, detach=True).pid
        return
    with running_anvil() as (url, process):
        yield url, process.pid


def run_step(
    step: str,
    interactions: int,
    home: Path,
    chain_arg: str,
    seed: int,
    progress_every: float,
    last_line: list[str],
    node_pid: int | None = None,
) -> dict[str, Any]:
    """One child process (`--child step`): its stderr passed through (the last line remembered), its
    last stdout line parsed."""
    customers = max(1, interactions // INTERACTIONS_PER_CUSTOMER)
    command = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--child",
        step,
        "--home",
        str(home),
        "--chain",
        chain_arg,
        "--seed",
        str(seed),
        "--customers",
        str(customers),
        "--interactions",
        str(interactions),
        "--progress-every",
        str(progress_every),
    ]
    if node_pid is not None:
        command += ["--node-pid", str(node_pid)]
    child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def echo() -> None:  # the child's progress lines, passed through and remembered
        assert child.stderr is not None
        for line in child.stderr:
            last_line[0] = line.rstrip()
            sys.stderr.write(line)
            sys.stderr.flush()

    reader = threading.Thread(target=echo, daemon=True)
    reader.start()
    try:
        assert child.stdout is not None
        out = child.stdout.read()
        code = child.wait()
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        reader.join(timeout=5)
    if code != 0:
        raise RuntimeError(f"step {step} of {interactions:,} interactions exited with code {code}")
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return result


def run_size(
    interactions: int,
    chain: str,
    seed: int,
    progress_every: float,
    last_line: list[str],
    *,
    verify: bool = True,
    keep: Path | None = None,
    node: Node | None = None,
) -> Run:
    """One size on a fresh chain and home. `verify`: also verify --all (both modes) and the proofs.
    `keep`: the home goes under that folder and the node is left running (both named on the console),
    for more runs against them (`ledgercrm --home HOME verify --all`). `node`: on that node (--node-url)
    rather than a fresh anvil."""
    customers = max(1, interactions // INTERACTIONS_PER_CUSTOMER)
    with (
        tempfile.TemporaryDirectory(prefix=f"import-scaling-{interactions}-") as tmp,
        fresh_chain(chain, keep=keep is not None, node=node) as (chain_arg, node_pid),
    ):
        home = (keep / f"home-{interactions}") if keep is not None else Path(tmp) / "home"
        if keep is not None and chain != "memory":
            console.print(f"  kept: home {home}, node {chain_arg}, its pid {node_pid or '-'}")
        result = run_step("import", interactions, home, chain_arg, seed, progress_every, last_line, node_pid)
        node_rss = peak_rss_of(node_pid) if node_pid is not None else None
        contents, empty = None, None
        if chain != "memory":
            contents = chain_contents(chain_arg, first=node.start_block + 1 if node is not None else 1)
            empty = empty_block_cost(chain_arg, node_pid)  # after the contents: its blocks are not counted
        if chain != "memory" and verify:  # each in a process of its own, so that its peak RSS is its own
            for step, key in (("full", "verify_full"), ("auditor", "verify_auditor"), ("proofs", "proofs")):
                started = time.strftime("%H:%M:%S")
                console.print(f"  {key.replace('_', ' ')} started {started}, load average {load()}")
                result[key] = run_step(step, interactions, home, chain_arg, seed, progress_every, last_line)
    report = result["report"]
    return Run(
        interactions=interactions,
        customers=customers,
        wall=float(result["wall"]),
        setup=float(result["setup"]),
        rss_before=int(result["rss_before"]),
        rss_peak=int(result["rss_peak"]),
        rss_generator=int(result.get("rss_generator", 0)),
        store_bytes=int(result["store_bytes"]),
        node_rss=node_rss,
        timings={k: float(v) for k, v in report["timings"].items()},
        recorded=int(report["interactions_new"]),
        verify_full=result.get("verify_full"),
        verify_auditor=result.get("verify_auditor"),
        proofs=result.get("proofs"),
        slices=list(result.get("slices", [])),
        chain=contents,
        empty_block=empty,
    )


def _rpc_batch(url: str, calls: Sequence[tuple[str, list[Any]]]) -> list[Any]:
    """Plain JSON-RPC calls in one batch, their results in order (NodeError on the first refused)."""
    body = json.dumps(
        [{"jsonrpc": "2.0", "id": i, "method": m, "params": p} for i, (m, p) in enumerate(calls)]
    ).encode()
    request = urllib.request.Request(url, body, {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=120) as answer:
        replies = json.loads(answer.read())
    results = []
    for reply in sorted(replies, key=lambda r: int(r["id"])):
        if "error" in reply:
            method = calls[int(reply["id"])][0]
            raise NodeError(f"the node at {url} refused {method}: {reply['error'].get('message')}")
        results.append(reply["result"])
    return results


def _block_receipts(url: str, blocks: Sequence[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """Each block's receipts: eth_getBlockReceipts where the node has it (anvil), else one
    eth_getTransactionReceipt per transaction, in one batch (Hardhat's EDR has no eth_getBlockReceipts)."""
    try:
        return _rpc_batch(url, [("eth_getBlockReceipts", [block["number"]]) for block in blocks])
    except NodeError:
        hashes = [[tx["hash"] for tx in block["transactions"]] for block in blocks]
        flat = _rpc_batch(url, [("eth_getTransactionReceipt", [h]) for each in hashes for h in each])
        receipts, at = [], 0
        for each in hashes:
            receipts.append(flat[at : at + len(each)])
            at += len(each)
        return receipts


def _selectors() -> dict[str, str]:
    """4-byte selector (0x-hex) -> function name, of every contract the project builds."""
    from eth_utils import function_abi_to_4byte_selector

    from ledger.compiler import compile_contracts

    return {
        "0x" + bytes(function_abi_to_4byte_selector(item)).hex(): str(item["name"])  # type: ignore[arg-type]
        for abi in compile_contracts().all_abis()
        for item in abi
        if item.get("type") == "function"
    }


def chain_contents(url: str, chunk: int = 50, first: int = 1) -> dict[str, Any]:
    """What the node's blocks from `first` on hold, read after the import (the deployment's blocks
    included): blocks, transactions, gas used against the block's limit, and per function the
    transactions, their items (the length of the first array argument), gas used and gas limit. Whether
    blocks are full, and whether each transaction's limit (what a block packs by) is near what it uses."""
    names = _selectors()
    latest = latest_block(url) or 0
    blocks = transactions = 0
    used_total = limit_total = 0
    kinds: dict[str, dict[str, int]] = {}
    per_block: list[int] = []
    for start in range(first, latest + 1, chunk):
        numbers = range(start, min(latest, start + chunk - 1) + 1)
        found = _rpc_batch(url, [("eth_getBlockByNumber", [hex(n), True]) for n in numbers])
        receipts = _block_receipts(url, found)
        for block, block_receipts in zip(found, receipts, strict=True):
            blocks += 1
            used_total += int(block["gasUsed"], 16)
            limit_total += int(block["gasLimit"], 16)
            per_block.append(len(block["transactions"]))
            for tx, receipt in zip(block["transactions"], block_receipts, strict=True):
                transactions += 1
                data = tx["input"]
                name = names.get(data[:10], "create" if tx.get("to") is None else data[:10])
                items = 0
                if len(data) >= 10 + 128:  # the first argument's head: an array's offset, else a value
                    offset = int(data[10:74], 16)
                    if 0 < offset < len(data) // 2:
                        at = 10 + 2 * offset
                        items = int(data[at : at + 64] or "0", 16)
                kind = kinds.setdefault(name, {"count": 0, "items": 0, "used": 0, "limit": 0, "max_used": 0})
                used = int(receipt["gasUsed"], 16)
                kind["count"] += 1
                kind["items"] += items if items < 1 << 20 else 0
                kind["used"] += used
                kind["limit"] += int(tx["gas"], 16)
                kind["max_used"] = max(kind["max_used"], used)
    return {
        "blocks": blocks,
        "transactions": transactions,
        "gas_used": used_total,
        "gas_limit": limit_total,
        "max_per_block": max(per_block, default=0),
        "kinds": kinds,
    }


def print_chain(runs: Sequence[Run]) -> None:
    """Per size: the node's blocks and transactions by function (chain_contents)."""
    for run in runs:
        c = run.chain
        if c is None:
            continue
        fill = c["gas_used"] / c["gas_limit"] if c["gas_limit"] else 0.0
        table = Table(
            title=(
                f"{run.interactions:,} interactions: {c['blocks']:,} blocks, "
                f"{c['transactions']:,} transactions (up to {c['max_per_block']} a block), "
                f"blocks {100 * fill:.0f}% full by gas used"
            ),
            title_justify="left",
        )
        for column in (
            "function",
            "transactions",
            "items each",
            "gas used each",
            "most used",
            "limit each",
            "used / limit",
        ):
            table.add_column(column, justify="right")
        for name, k in sorted(c["kinds"].items(), key=lambda kv: -kv[1]["used"]):
            n = k["count"]
            table.add_row(
                name,
                f"{n:,}",
                f"{k['items'] / n:,.0f}" if k["items"] else "-",
                f"{k['used'] / n / 1e6:,.2f}M",
                f"{k['max_used'] / 1e6:,.2f}M",
                f"{k['limit'] / n / 1e6:,.2f}M",
                f"{k['used'] / k['limit']:.0%}" if k["limit"] else "-",
            )
        console.print(table)
    console.print(
        "[dim]read from the node after the import (deployment and set-up included); items: the length of "
        "the first array argument; a block takes transactions while the gas used so far plus the next "
        "one's limit stays within the block's limit (30M on the devnet), so a limit far above the gas used "
        "leaves a block emptier.[/]"
    )


def print_empty_blocks(rounds: Sequence[Sequence[Run]]) -> None:
    """Per size and round: what an empty block cost the node once the import was done."""
    if all(run.empty_block is None for runs in rounds for run in runs):
        return
    table = Table(
        title="An empty block after the import (evm_mine): wall ms / node CPU ms", title_justify="left"
    )
    table.add_column("round", justify="right")
    for run in rounds[0]:
        table.add_column(f"{run.interactions:,}", justify="right")

    def cell(run: Run) -> str:
        e = run.empty_block
        if e is None:
            return "-"
        return f"{e['wall_ms']:,.0f} / " + ("-" if e["cpu_ms"] is None else f"{e['cpu_ms']:,.0f}")

    for number, runs in enumerate(rounds, 1):
        table.add_row(str(number), *(cell(run) for run in runs))
    console.print(table)
    console.print(
        "[dim]five blocks with no transaction, mined one by one after the import (its contracts' storage in "
        "place): what a block costs the node for the state it holds, whatever the block changes.[/]"
    )


# --------------------------------------------------------------------------------------------------
# Printing and plotting


def mb(value: int | None) -> str:
    return "-" if value is None else f"{value / 2**20:,.0f}"


def exponent(a: Run, b: Run, seconds_a: float, seconds_b: float) -> float:
    """The k in time ~ size**k between two runs."""
    if seconds_a <= 0 or seconds_b <= 0:
        return math.nan
    return math.log(seconds_b / seconds_a) / math.log(b.interactions / a.interactions)


def print_header(chain: str, seed: int, node: Node | None = None) -> None:
    if node is not None:
        pid = f"pid {node.pid}" if node.pid is not None else "its process not found: no node CPU"
        start = "its snapshot" if node.snapshot is not None else "the node as found (one run)"
        described = (
            f"{node.client} at {node.url} ({pid}; at block {node.start_block:,}; each size from {start})"
        )
    else:
        described = "anvil, a fresh node per size" if chain == "anvil" else "eth-tester (in process)"
    rows = [
        ("SQLAlchemy / web3.py", f"{version('sqlalchemy')} / {version('web3')}"),
        ("Chain", described),
        ("Store", "SQLite (WAL) in a fresh home per size"),
        ("Data", f"synthetic, seed {seed}, customers = interactions / {INTERACTIONS_PER_CUSTOMER}"),
    ]
    console.print(machine_table("Machine and setup", rows))


def print_runs(runs: Sequence[Run]) -> None:
    table = Table(title="Synthetic import scaling", title_justify="left")
    for column in (
        "interactions",
        "customers",
        "wall s",
        "interactions/s",
        "s per 1k",
        "peak RSS MB",
        "RSS growth",
        "generator MB",
        "node peak MB",
        "store MB",
    ):
        table.add_column(column, justify="right")
    previous: Run | None = None
    for run in runs:
        if previous is None:
            growth = "-"
        else:
            delta = run.rss_peak - previous.rss_peak
            growth = f"{delta / 2**20:+,.0f} MB (x{run.rss_peak / previous.rss_peak:.2f})"
        table.add_row(
            f"{run.interactions:,}",
            f"{run.customers:,}",
            f"{run.wall:,.1f}",
            f"{run.per_second:,.0f}",
            f"{run.per_1k:.2f}",
            mb(run.rss_peak),
            growth,
            mb(run.rss_generator),
            mb(run.node_rss),
            mb(run.store_bytes),
        )
        previous = run
    console.print(table)
    notes = [
        "wall s: import_synthetic alone (generation, store, chain, anchoring); deployment, home and "
        "partner come first and are not counted (setup: "
        + ", ".join(f"{run.setup:.1f}s" for run in runs)
        + ").",
        "peak RSS: the import subprocess's ru_maxrss (MB = 2^20 bytes), setup included; once set up and "
        "before importing it was " + ", ".join(f"{mb(run.rss_before)} MB" for run in runs) + ".",
        "generator: the peak RSS of the child process the import generates its data in; node peak: the "
        "node's VmHWM after the import (a --node-url node's: since it started, earlier sizes included); "
        "store: data + key store on disk.",
    ]
    for i, note in enumerate(notes, 1):
        console.print(f"[dim]{i}.[/] {note}")


def print_verify(runs: Sequence[Run]) -> None:
    table = Table(
        title="verify --all on the imported home (full: with keys; auditor: no key)", title_justify="left"
    )
    for column in ("interactions", "mode", "wall s", "records/s", "s per 1k", "peak RSS MB", "result"):
        table.add_column(column, justify="right")
    for run in runs:
        for mode, v in (("full", run.verify_full), ("auditor", run.verify_auditor)):
            if v is None:
                table.add_row(f"{run.interactions:,}", mode, "-", "-", "-", "-", "not run (--verify-max)")
                continue
            outcome = ", ".join(f"{c:,} {o}" for o, c in sorted(v["counts"].items()))
            result = f"ok: {outcome}" if not v["failed"] else f"[red]{v['failed']:,} failures[/]: {outcome}"
            table.add_row(
                f"{run.interactions:,}",
                mode,
                f"{v['wall']:,.1f}",
                f"{run.interactions / v['wall']:,.0f}",
                f"{1000 * v['wall'] / run.interactions:.2f}",
                mb(v["rss_peak"]),
                result,
            )
    console.print(table)
    console.print(
        "[dim]api.usecases.verification.verify(crm, operator, auditor=...), what `ledgercrm verify --all "
        "[--auditor]` runs (heads, leaves, erasures, consent, points, reconciliation; full also decrypts "
        "and re-hashes every payload), each in a fresh process on the same home and node; peak RSS is that "
        "process's ru_maxrss, opening the home included ("
        + ", ".join(
            f"{mb(v['rss_before'])} MB"
            for run in runs
            for v in (run.verify_full, run.verify_auditor)
            if v is not None and v["rss_before"] is not None
        )
        + " before verifying). '-': eth-tester, verified in the import's process.[/]"
    )
    for run in runs:
        for v in (run.verify_full, run.verify_auditor):
            for line in v["failures"] if v is not None else []:
                console.print(f"[red]  {run.interactions:,}: {line}[/]")


def print_proofs(runs: Sequence[Run]) -> None:
    table = Table(title="Proof sizes (bytes; each checked by the contract)", title_justify="left")
    for column in (
        "interactions",
        "heads",
        "random leaf",
        "inclusion, as stored",
        "inclusion, latest head",
        "consistency, last two heads",
    ):
        table.add_column(column, justify="right")

    def mark(ok: bool | None) -> str:
        return "" if ok is None else (" ok" if ok else " [red]REFUSED[/]")

    for run in runs:
        p = run.proofs
        if p is None:
            table.add_row(f"{run.interactions:,}", "-", "-", "not run (--verify-max)", "-", "-")
            continue
        consistency = "-"
        if p["consistency"] is not None:
            old, new = p["consistency_sizes"]
            consistency = f"{p['consistency']:,} ({old:,} -> {new:,}){mark(p['consistency_ok'])}"
        table.add_row(
            f"{run.interactions:,}",
            f"{p['heads']:,}",
            f"{p['leaf']:,}",
            f"{p['inclusion_stored']:,} (head of {p['stored_head']:,}){mark(p['inclusion_stored_ok'])}",
            f"{p['inclusion_latest']:,} (head of {p['size']:,}){mark(p['inclusion_latest_ok'])}",
            consistency,
        )
    console.print(table)
    console.print(
        "[dim]as stored: the leaf's proof in the store, against the head its batch anchored; latest head: "
        "built from a tree over every leaf hash of the store and checked against the latest head; "
        "consistency: the proof the contract checked when the last head was anchored. 32 bytes per hash.[/]"
    )


def print_phases(runs: Sequence[Run]) -> None:
    table = Table(title="Seconds per phase (ImportReport.timings)", title_justify="left")
    table.add_column("phase")
    for run in runs:
        table.add_column(f"{run.interactions:,}", justify="right")
    if len(runs) > 1:
        table.add_column(f"exponent {runs[0].interactions:,} -> {runs[-1].interactions:,}", justify="right")
    for phase in PHASES:
        cells = [f"{run.timings.get(phase, 0.0):,.1f}" for run in runs]
        if len(runs) > 1:
            k = exponent(runs[0], runs[-1], runs[0].timings.get(phase, 0), runs[-1].timings.get(phase, 0))
            cells.append("-" if math.isnan(k) else f"{k:.2f}")
        table.add_row(phase, *cells)
    console.print(table)
    console.print("[dim]exponent k: the phase's time grows as size^k (1 is linear).[/]")


def print_slices(runs: Sequence[Run]) -> None:
    """Each size's import a tenth at a time: what grows from slice to slice."""
    for run in runs:
        if not run.slices:
            continue
        phases = [p for p in (*PHASES, "end") if any(p in row["phases"] for row in run.slices)]
        table = Table(
            title=f"{run.interactions:,} interactions, a slice at a time (seconds)", title_justify="left"
        )
        columns = (
            "through",
            "wall",
            "import CPU",
            "checkpoint CPU",
            "generator CPU",
            "node CPU",
            "blocks",
            "node ms/block",
            "written MB",
            "read MB",
        )
        for column in columns:
            table.add_column(column, justify="right")
        for phase in phases:
            table.add_column(phase, justify="right")

        def number(value: float | None, digits: int = 1) -> str:
            return "-" if value is None else f"{value:,.{digits}f}"

        for row in run.slices:
            blocks, node = row["blocks"], row["node"]
            per_block = 1000 * node / blocks if blocks and node is not None else None
            table.add_row(
                ("end" if row["end"] else f"{row['done']:,}"),
                number(row["wall"]),
                number(row["cpu"]),
                number(row.get("checkpoints")),
                number(row["generator"]),
                number(row["node"]),
                "-" if blocks is None else f"{blocks:,}",
                number(per_block, 0),
                number(megabytes(row.get("store_written")), 0),
                number(megabytes(row.get("store_read")), 0),
                *(number(row["phases"].get(phase)) for phase in phases),
            )
        console.print(table)
    console.print(
        "[dim]import CPU: the import process (all its threads), of which checkpoint CPU its store's "
        "checkpoint thread; generator: its data process; node: the node, from /proc; written MB: what the "
        "import's threads wrote to files (the store's WAL at each commit, the checkpoints' copies into the "
        "database file, the key store); read MB: what its main thread read from files (pages SQLite's "
        "cache did not hold); phase columns: wall seconds between the import's progress reports, by the "
        "phase reported (customers includes reading the chunk); end: settling after the last chunk.[/]"
    )


def megabytes(value: float | None) -> float | None:
    return None if value is None else value / 2**20


def verdict(rounds: Sequence[Sequence[Run]]) -> None:
    """Each pair of sizes: the ratio of the rounds' median wall times, and of their median CPU seconds."""
    per_size = list(zip(*rounds, strict=True))
    if len(per_size) < 2:
        console.print("Linearity: one size only, nothing to compare.")
        return
    of = f"medians of {len(rounds)} rounds" if len(rounds) > 1 else "one round"
    for a_runs, b_runs in itertools.pairwise(per_size):
        a, b = a_runs[0], b_runs[0]
        size_ratio = b.interactions / a.interactions
        for what, seconds in (
            ("wall", lambda run: run.wall),
            ("CPU of all three processes", lambda run: run.cpu),
        ):
            values_a = [seconds(run) for run in a_runs]
            values_b = [seconds(run) for run in b_runs]
            if None in values_a or None in values_b:
                continue
            if what != "wall" and a.interactions < CPU_FROM:
                console.print(
                    f"[dim]Linearity {a.interactions:,} -> {b.interactions:,}, {what}: not compared below "
                    f"{CPU_FROM:,} (a run of a few chunks can miss its generator's CPU)[/]"
                )
                continue
            time_a, time_b = statistics.median(values_a), statistics.median(values_b)
            ratio = time_b / time_a
            k = exponent(a, b, time_a, time_b)
            if k <= 1.1:
                word = "[green]linear[/]"
            elif k <= 1.25:
                word = "[yellow]slightly superlinear[/]"
            else:
                word = "[red]superlinear[/]"
            console.print(
                f"Linearity {a.interactions:,} -> {b.interactions:,}, {what} ({of}): size x{size_ratio:.1f}, "
                f"time x{ratio:.2f} ({ratio / size_ratio:.2f} of linear, time ~ size^{k:.2f}): {word}"
            )


def plot(runs: Sequence[Run], path: Path) -> None:
    # imported here, not at the top: the child processes never plot, and pyplot is slow to import
    import matplotlib

    matplotlib.use("Agg")  # files only: no display on CI or over ssh
    import matplotlib.pyplot as plt
    from matplotlib.ticker import LogFormatter, NullFormatter

    sizes = [run.interactions for run in runs]
    figure, (left, middle, right) = plt.subplots(1, 3, figsize=(16, 4.5))
    left.plot(sizes, [run.wall for run in runs], "o-", label="measured")
    left.plot(sizes, [runs[0].wall * s / sizes[0] for s in sizes], "--", color="grey", label="linear")
    left.set(xscale="log", yscale="log", xlabel="interactions", ylabel="wall seconds", title="Import time")
    left.legend()
    # seconds per 1k interactions: a flat line is a linear phase, a rising one is the phase that slows down
    for phase in PHASES:
        per_1k = [1000 * run.timings.get(phase, 0.0) / run.interactions for run in runs]
        if any(per_1k):
            middle.plot(sizes, per_1k, "o-", label=phase)
    middle.set(xscale="log", xlabel="interactions", ylabel="seconds per 1k interactions", title="By phase")
    middle.set_ylim(bottom=0)
    middle.legend(fontsize="small")
    right.plot(sizes, [run.rss_peak / 2**20 for run in runs], "o-", label="import process")
    if all(run.node_rss for run in runs):
        right.plot(sizes, [(run.node_rss or 0) / 2**20 for run in runs], "s-", label="node")
    right.set(xscale="log", xlabel="interactions", ylabel="peak RSS (MB)", title="Peak memory")
    right.set_ylim(bottom=0)
    right.legend()
    for axes in (left, middle, right):  # the measured sizes as plain numbers, not 10^4 and 3x10^4
        axes.set_xticks(sizes, [f"{size:,}" for size in sizes])
        axes.xaxis.set_minor_formatter(NullFormatter())
    # plain seconds on the log axis (LogFormatter labels minor ticks too when the span is short)
    left.yaxis.set_major_formatter(LogFormatter())
    left.yaxis.set_minor_formatter(LogFormatter(labelOnlyBase=False, minor_thresholds=(2, 0.5)))
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)
    plt.close(figure)
    console.print(f"Plot: {path}")


# --------------------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--max",
        type=int,
        default=DEFAULT_MAX,
        metavar="N",
        help=f"largest size to run, of {', '.join(f'{s:,}' for s in SIZES)} (default: {DEFAULT_MAX:,})",
    )
    parser.add_argument(
        "--sizes",
        type=lambda text: [int(s) for s in text.split(",")],
        metavar="N,N,...",
        help="run exactly these sizes instead (e.g. 2000,5000 for a quick check)",
    )
    parser.add_argument(
        "--chain",
        default="anvil",
        help="anvil (a fresh node per size, the default) or memory (eth-tester, small sizes)",
    )
    parser.add_argument("--seed", type=int, default=7, help="seed of the synthetic data (default: 7)")
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        metavar="N",
        help="run the sizes N times in turn; ratios are of the rounds' medians (default: 1)",
    )
    parser.add_argument("--plot", type=Path, default=PLOT, help=f"where the PNG goes (default: {PLOT})")
    parser.add_argument(
        "--verify-max",
        type=int,
        metavar="N",
        help="verify --all and the proofs only for sizes up to N (default: every size)",
    )
    parser.add_argument(
        "--keep",
        type=Path,
        metavar="DIR",
        help="put the largest size's home in DIR and leave its node running (its pid and URL printed)",
    )
    parser.add_argument(
        "--progress-every",
        type=float,
        default=30.0,
        metavar="S",
        help="print the running import's phase every S seconds (0: never; default: 30)",
    )
    # the subprocess's own arguments
    parser.add_argument("--child", choices=("import", "full", "auditor", "proofs"), help=argparse.SUPPRESS)
    parser.add_argument("--home", help=argparse.SUPPRESS)
    parser.add_argument("--customers", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--interactions", type=int, help=argparse.SUPPRESS)
    parser.add_argument(
        "--node-url",
        metavar="URL",
        help="run on this running node (a development chain like the devnet's), not a fresh anvil per size",
    )
    parser.add_argument(
        "--node-pid",
        type=int,
        metavar="PID",
        help="the --node-url node's process, for its CPU (default: the one listening on its port here)",
    )
    args = parser.parse_args(argv)
    if not args.child:
        if args.chain not in ("anvil", "memory"):
            parser.error("--chain is anvil or memory")
        if args.node_url is not None and args.chain != "anvil":
            parser.error("--node-url runs on that node: it does not go with --chain memory")
        if args.node_pid is not None and args.node_url is None:
            parser.error("--node-pid names the --node-url node's process: give --node-url too")
        if args.sizes is None:
            args.sizes = [s for s in SIZES if s <= args.max]
        if args.rounds < 1:
            parser.error("--rounds is at least 1")
        if not args.sizes or min(args.sizes) < INTERACTIONS_PER_CUSTOMER:
            parser.error(f"sizes are at least {INTERACTIONS_PER_CUSTOMER} (and --max at least {SIZES[0]:,})")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child:
        return run_child(args)
    if importlib.util.find_spec("matplotlib") is None:  # fail now, not after a half-hour run
        console.print("[red]error:[/] matplotlib is missing: run scripts/setup.sh (it is a dev dependency)")
        return 2
    node: Node | None = None
    if args.node_url is not None:
        try:
            node = check_node(args.node_url, args.node_pid, len(args.sizes) * args.rounds)
        except NodeError as exc:
            console.print(f"[red]error:[/] {exc}", soft_wrap=True)
            return 2
    signal.signal(signal.SIGTERM, _on_sigterm)  # so `finally` stops the child and anvil
    started = time.perf_counter()
    print_header(args.chain, args.seed, node)
    rounds: list[list[Run]] = []
    failed: str | None = None
    for round_no in range(1, args.rounds + 1):
        runs = run_round(args, round_no, node)
        if isinstance(runs, str):
            failed = runs
            break
        rounds.append(runs)
    console.print()
    if rounds:
        runs = median_runs(rounds)
        print_runs(runs)
        console.print()
        print_phases(runs)
        console.print()
        print_slices(runs)
        console.print()
        print_chain(runs)
        print_empty_blocks(rounds)
        console.print()
        print_rounds(rounds)
        print_processes(rounds)
        verdict(rounds)
        console.print()
        print_verify(runs)
        console.print()
        print_proofs(runs)
        plot(runs, args.plot)
    if failed:
        console.print(f"[red]Stopped:[/] {failed}")
    console.print(f"\n[dim]Total run time {time.perf_counter() - started:.1f}s; load average now {load()}[/]")
    return 1 if failed else 0


def run_round(args: argparse.Namespace, round_no: int, node: Node | None = None) -> list[Run] | str:
    """Every size once, smallest first; the runs, or why the round stopped."""
    runs: list[Run] = []
    for size in sorted(args.sizes):
        last_line = [""]
        of_rounds = f", round {round_no} of {args.rounds}" if args.rounds > 1 else ""
        console.print(
            f"[bold]{size:,} interactions[/] "
            f"({max(1, size // INTERACTIONS_PER_CUSTOMER):,} customers{of_rounds}): "
            f"{'a fresh ' + args.chain if node is None else 'the node at its snapshot, a fresh'} chain "
            "and home, "
            f"started {time.strftime('%H:%M:%S')}, load average {load()}"
        )
        try:
            run = run_size(
                size,
                args.chain,
                args.seed,
                args.progress_every,
                last_line,
                verify=args.verify_max is None or size <= args.verify_max,
                # only the last round's largest home is kept: an earlier one would hold its node's port
                keep=args.keep if size == max(args.sizes) and round_no == args.rounds else None,
                node=node,
            )
        except (Interrupted, KeyboardInterrupt) as exc:
            return f"interrupted ({exc or 'SIGINT'}) during {size:,}; last progress: {last_line[0] or '-'}"
        except (RuntimeError, NodeError) as exc:
            return f"{exc}; last progress: {last_line[0] or '-'}"
        if run.recorded != size:
            console.print(f"[red]warning:[/] {size:,} asked, {run.recorded:,} interactions recorded")
        cpu = "" if run.cpu is None else f", {run.cpu:,.1f} CPU s (import, generator, node)"
        empty = ""
        if run.empty_block is not None:
            e = run.empty_block
            node_cpu = "-" if e["cpu_ms"] is None else f"{e['cpu_ms']:,.0f}"
            empty = f"; an empty block then {e['wall_ms']:,.0f} ms ({node_cpu} ms of node CPU)"
        console.print(
            f"  done in {run.wall:,.1f}s ({run.per_second:,.0f}/s){cpu}, peak RSS {mb(run.rss_peak)} MB"
            f"{empty}, load average {load()}",
        )
        runs.append(run)
    return runs


def median_runs(rounds: Sequence[Sequence[Run]]) -> list[Run]:
    """Per size, the round whose wall time is the median (the lower middle of an even count): its tables
    are printed; the ratios take each figure's own median (`print_rounds`, `verdict`)."""
    per_size = zip(*rounds, strict=True)
    return [sorted(runs, key=lambda run: run.wall)[(len(runs) - 1) // 2] for runs in per_size]


def process_seconds(run: Run, key: str) -> float | None:
    """One process's CPU seconds over the run's slices (`key`: cpu, generator or node), or its blocks, or
    what the import wrote and read (store_written, store_read) or its checkpoint thread's CPU."""
    values = [row.get(key) for row in run.slices]
    known = [float(v) for v in values if v is not None]
    return float(sum(known)) if known and len(known) == len(values) else None


def print_processes(rounds: Sequence[Sequence[Run]]) -> None:
    """Per size, each process's CPU seconds and the node's blocks (medians over the rounds), the node's
    milliseconds a block over the whole import, and the ratios of the largest size to the smallest: which
    process grows faster than the size."""
    sizes = [run.interactions for run in rounds[0]]
    table = Table(
        title="CPU seconds by process, the import's file I/O (medians of the rounds)", title_justify="left"
    )
    table.add_column("")
    for size in sizes:
        table.add_column(f"{size:,}", justify="right")
    if len(sizes) > 1:
        table.add_column(f"{sizes[-1]:,} / {sizes[0]:,}", justify="right")
    per_size = list(zip(*rounds, strict=True))
    rows: dict[str, list[float | None]] = {}
    for label, key in (
        ("import", "cpu"),
        ("  its checkpoint thread", "checkpoints"),
        ("generator", "generator"),
        ("node", "node"),
        ("blocks", "blocks"),
        ("import's writes, MB", "store_written"),
        ("its main thread's reads, MB", "store_read"),
    ):
        medians: list[float | None] = []
        for runs in per_size:
            values = [process_seconds(run, key) for run in runs]
            known = [v for v in values if v is not None]
            median = statistics.median(known) if len(known) == len(values) else None
            medians.append(megabytes(median) if key.startswith("store_") else median)
        rows[label] = medians
    rows["node ms/block"] = [
        None if node is None or not blocks else 1000 * node / blocks
        for node, blocks in zip(rows["node"], rows["blocks"], strict=True)
    ]
    for label, medians in rows.items():
        digits = 0 if label in ("blocks", "node ms/block") or label.endswith("MB") else 1
        cells = ["-" if m is None else f"{m:,.{digits}f}" for m in medians]
        if len(sizes) > 1:
            first, last = medians[0], medians[-1]
            cells.append("-" if first is None or last is None or not first else f"{last / first:.2f}x")
        table.add_row(label, *cells)
    console.print(table)


def print_rounds(rounds: Sequence[Sequence[Run]]) -> None:
    """Each round's wall and CPU seconds per size, and their medians."""
    table = Table(title="Rounds: wall s / CPU s of all three processes", title_justify="left")
    table.add_column("round", justify="right")
    sizes = [run.interactions for run in rounds[0]]
    for size in sizes:
        table.add_column(f"{size:,}", justify="right")

    def cell(run: Run) -> str:
        return f"{run.wall:,.1f} / " + ("-" if run.cpu is None else f"{run.cpu:,.1f}")

    for number, runs in enumerate(rounds, 1):
        table.add_row(str(number), *(cell(run) for run in runs))
    if len(rounds) > 1:
        medians = []
        for runs in zip(*rounds, strict=True):
            cpus = [run.cpu for run in runs if run.cpu is not None]
            cpu = f"{statistics.median(cpus):,.1f}" if len(cpus) == len(runs) else "-"
            medians.append(f"{statistics.median([run.wall for run in runs]):,.1f} / {cpu}")
        table.add_row("median", *medians)
    console.print(table)


if __name__ == "__main__":
    sys.exit(main())
