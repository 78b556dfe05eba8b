"""The Online Retail II import through the command line on anvil, process start included, against the
floor; then `verify --all` and `verify --all --auditor` on what it imported.

Each round: the floor (`benchmarks/floor.py`, csv.reader -> per-invoice JSON -> SQLite) in its own
process, then on a fresh anvil a fresh home (`init`, `partner add retail`, untimed) and
`ledgercrm import online-retail DATA --partner retail`, timed as a whole process with its peak RSS,
then both verifications. Every figure is a whole-process wall time a reader can redo with
`/usr/bin/time`. The import's ratio is taken against the floor of its own round, and the median of
the rounds is reported (a shared machine varies by a third between runs).

CPU seconds, the figure the machine's load does not move: the floor's (its process), and the import's
split by process: the CLI itself, its reader process (the file is parsed in a child of the CLI; its CPU
is read from /proc while it runs), anvil (from /proc, before and after) and, on PostgreSQL, the
cluster's server processes. Verification's CPU is its process's, anvil's and the cluster's.

`--store postgres` runs the same rounds with the home's data on PostgreSQL (a throwaway cluster from
scripts/postgres.sh, a fresh database per round; the key store stays SQLite); `--store both` runs each
round on SQLite and on PostgreSQL, side by side.

    .venv/bin/python benchmarks/import_cli.py [--rounds 3] [--data PATH] [--store sqlite|postgres|both]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from benchmarks.machine import cpu_seconds

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared/data/online_retail_II.csv.gz"
CLI = str(Path(sys.executable).with_name("ledgercrm"))
POSTGRES_SCRIPT = ROOT / "scripts" / "postgres.sh"
TICK = os.sysconf("SC_CLK_TCK")


def _children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as found:
            return [int(child) for child in found.read().split()]
    except OSError:
        return []


class ChildCpu:
    """The CPU seconds of each child of `pid` (its reader process), sampled from /proc while they run:
    the last reading before a child exits is kept (sampled every 50 ms, so at most that much is lost)."""

    def __init__(self, pid: int) -> None:
        self.pid, self.seen = pid, dict[int, float]()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        while not self._stop.wait(0.05):
            for child in _children(self.pid):
                value = cpu_seconds(child)
                if value is not None:
                    self.seen[child] = value

    def stop(self) -> float:
        self._stop.set()
        self._thread.join()
        return sum(self.seen.values())


def server_cpu(directory: Path | None) -> float:
    """CPU seconds of a PostgreSQL cluster so far: its postmaster, the backends it has reaped (their
    time is its children's) and the processes still running under it (/proc)."""
    if directory is None:
        return 0.0
    try:
        pid = int((directory / "data" / "postmaster.pid").read_text().split()[0])
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except (OSError, ValueError, IndexError):
        return 0.0
    own = sum(int(f) for f in fields[11:15]) / TICK  # utime, stime, cutime, cstime
    return own + sum(cpu_seconds(child) or 0.0 for child in _children(pid))


def timed(command: list[str], cwd: Path | None = None) -> tuple[float, int, str]:
    """Wall seconds, peak RSS (MB) and output of one process (its own rusage, from wait4)."""
    seconds, peak, text, _, _ = timed_cpu(command, cwd)
    return seconds, peak, text


def timed_cpu(
    command: list[str], cwd: Path | None = None, env: dict[str, str] | None = None
) -> tuple[float, int, str, float, float]:
    """Wall seconds, peak RSS (MB), output, CPU seconds (the process and the children it waited for,
    from wait4) and the CPU seconds of its children sampled from /proc, of one process."""
    with tempfile.TemporaryFile("w+") as output:
        start = time.perf_counter()
        process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, cwd=cwd, env=env)
        children = ChildCpu(process.pid)
        _, status, usage = os.wait4(process.pid, 0)
        seconds = time.perf_counter() - start
        child_cpu = children.stop()
        process.returncode = os.waitstatus_to_exitcode(status)
        output.seek(0)
        text = output.read()
    if process.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed ({process.returncode}):\n{text[-2000:]}")
    return seconds, usage.ru_maxrss // 1024, text, usage.ru_utime + usage.ru_stime, child_cpu


def floor(data: Path, folder: Path) -> tuple[float, float]:
    code = (
        "import sys; from pathlib import Path; from benchmarks.floor import floor_import; "
        f"floor_import(Path({str(data)!r}), Path({str(folder / 'floor.db')!r}))"
    )
    seconds, _, _, cpu, _ = timed_cpu([sys.executable, "-c", code], cwd=ROOT)
    return seconds, cpu


@contextmanager
def postgres_cluster() -> Iterator[tuple[str, Path]]:
    """A throwaway PostgreSQL cluster (scripts/postgres.sh): its server URL and data directory; stopped
    and removed after."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    directory = Path(tempfile.mkdtemp(prefix="ledgercrm-bench-pg-", dir="/tmp"))
    try:
        started = subprocess.run(
            [str(POSTGRES_SCRIPT), "start", str(directory), str(port)], capture_output=True, text=True
        )
        if started.returncode != 0:
            raise SystemExit(f"PostgreSQL did not start: {started.stderr.strip()}")
        yield started.stdout.strip().splitlines()[-1], directory
    finally:
        subprocess.run([str(POSTGRES_SCRIPT), "stop", str(directory)], capture_output=True)
        shutil.rmtree(directory, ignore_errors=True)


def fresh_database(server_url: str) -> str:
    from sqlalchemy import create_engine, make_url
    from sqlalchemy.pool import NullPool

    server = make_url(server_url)
    name = f"bench_{uuid.uuid4().hex[:12]}"
    admin = create_engine(server, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    with admin.connect() as connection:
        connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
    admin.dispose()
    return server.set(database=name).render_as_string(hide_password=False)


def one_round(
    data: Path, number: int, base: tuple[float, float], store: str, pg: tuple[str, Path] | None
) -> dict[str, float]:
    from benchmarks.machine import load
    from ledger.anvil import free_port, start_anvil

    env = dict(os.environ)
    store_option: list[str] = []
    if store == "postgres":
        assert pg is not None
        # the home keeps its store's URL (init --db); the environment's is not read by the CLI
        store_option = ["--db", fresh_database(pg[0])]
    cluster = pg[1] if store == "postgres" and pg is not None else None
    with tempfile.TemporaryDirectory(prefix="ledgercrm-bench-") as folder:
        port = free_port()
        anvil = start_anvil(port)
        try:
            home = ["--home", str(Path(folder) / "home")]
            chain = f"http://127.0.0.1:{port}"
            init = [CLI, *home, "init", "--chain", chain, *store_option]
            subprocess.run(init, check=True, capture_output=True, env=env)
            subprocess.run([CLI, *home, "partner", "add", "retail"], check=True, capture_output=True, env=env)
            started_load = load()
            node_before, server_before = cpu_seconds(anvil.pid) or 0.0, server_cpu(cluster)
            seconds, peak, out, cpu, reader = timed_cpu(
                [CLI, *home, "import", "online-retail", str(data), "--partner", "retail"], env=env
            )
            node_import = (cpu_seconds(anvil.pid) or 0.0) - node_before
            time.sleep(0.2)  # the import's backends exit as its connections close: reaped, then counted
            server_import = server_cpu(cluster) - server_before
            server_mark = server_cpu(cluster)
            verify, verify_peak, verified, verify_cpu, _ = timed_cpu([CLI, *home, "verify", "--all"], env=env)
            node_verify = (cpu_seconds(anvil.pid) or 0.0) - node_before - node_import
            time.sleep(0.2)
            verify_cpu += server_cpu(cluster) - server_mark
            audit, audit_peak, audited, _, _ = timed_cpu(
                [CLI, *home, "verify", "--all", "--auditor"], env=env
            )
        finally:
            anvil.terminate()
            anvil.wait(timeout=30)
    leaves = _count(verified, "verified")
    proven = _count(audited, "proven")
    import_cpu = cpu + node_import + server_import
    row = {
        "floor s": base[0],
        "import s": seconds,
        "ratio": seconds / base[0],
        "floor cpu s": base[1],
        "import cpu s": import_cpu,
        "  cli cpu s": cpu - reader,
        "  reader cpu s": reader,
        "  anvil cpu s": node_import,
        "  postgres cpu s": server_import,
        "cpu ratio": import_cpu / base[1],
        "import peak MB": peak,
        "verify s": verify,
        "verify ratio": verify / base[0],
        "verify cpu s": verify_cpu + node_verify,
        "verify records/s": leaves / verify if verify else 0.0,
        "verify peak MB": verify_peak,
        "auditor s": audit,
        "auditor ratio": audit / base[0],
        "auditor records/s": proven / audit if audit else 0.0,
        "auditor peak MB": audit_peak,
        "verified": leaves,
        "proven": proven,
    }
    print(
        f"round {number} ({store}, load at the import {started_load}): "
        + ", ".join(f"{k.strip()} {v:,.2f}" for k, v in row.items()),
        flush=True,
    )
    if number == 1:
        print("  import said:", " | ".join(line.strip() for line in out.splitlines()[-14:] if line.strip()))
        print("  verify said:", verified.strip().splitlines()[-1])
        print("  auditor said:", audited.strip().splitlines()[-1])
    return row


def _count(output: str, outcome: str) -> int:
    found = re.search(rf"(\d[\d,]*) {outcome}", output)
    return int(found.group(1).replace(",", "")) if found else 0


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--store", choices=("sqlite", "postgres", "both"), default="sqlite")
    args = parser.parse_args()
    if not args.data.exists():
        raise SystemExit(f"no data at {args.data} (see ../shared/data/README.md)")
    sys.path.insert(0, str(ROOT))
    from rich.console import Console

    from benchmarks.machine import load, machine_table

    stores = ("sqlite", "postgres") if args.store == "both" else (args.store,)
    Console().print(
        machine_table(
            "Machine",
            [("Data", str(args.data)), ("Rounds", str(args.rounds)), ("Stores", ", ".join(stores))],
        )
    )
    rows: dict[str, list[dict[str, float]]] = {store: [] for store in stores}
    with postgres_cluster() if "postgres" in stores else _nothing() as pg:
        for number in range(1, args.rounds + 1):
            with tempfile.TemporaryDirectory(prefix="ledgercrm-floor-") as folder:
                base = floor(args.data, Path(folder))  # each round's imports against its own floor
            for store in stores:
                rows[store].append(one_round(args.data, number, base, store, pg))
    print(f"load average at the end: {load()}")
    for store, measured in rows.items():
        print(f"median of {len(measured)} rounds ({store}):")
        for key in measured[0]:
            print(f"  {key:20s} {statistics.median(r[key] for r in measured):>12,.2f}")


@contextmanager
def _nothing() -> Iterator[None]:
    yield None


if __name__ == "__main__":
    main()
