"""The Online Retail II import through the command line on anvil, process start included, against the
floor; then `verify --all` and `verify --all --auditor` on what it imported.

Each round: the floor (`benchmarks/floor.py`, csv.reader -> per-invoice JSON -> SQLite) in its own
process, then on a fresh anvil a fresh home (`init`, `partner add retail`, untimed) and
`ledgercrm import online-retail DATA --partner retail`, timed as a whole process with its peak RSS,
then both verifications. Every figure is a whole-process wall time a reader can redo with
`/usr/bin/time`. The import's ratio is taken against the floor of its own round, and the median of
the rounds is reported (a shared machine varies by a third between runs).

    .venv/bin/python benchmarks/import_cli.py [--rounds 3] [--data PATH]
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared/data/online_retail_II.csv.gz"
CLI = str(Path(sys.executable).with_name("ledgercrm"))


def timed(command: list[str], cwd: Path | None = None) -> tuple[float, int, str]:
    """Wall seconds, peak RSS (MB) and output of one process (its own rusage, from wait4)."""
    with tempfile.TemporaryFile("w+") as output:
        start = time.perf_counter()
        process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, cwd=cwd)
        _, status, usage = os.wait4(process.pid, 0)
        seconds = time.perf_counter() - start
        process.returncode = os.waitstatus_to_exitcode(status)
        output.seek(0)
        text = output.read()
    if process.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed ({process.returncode}):\n{text[-2000:]}")
    return seconds, usage.ru_maxrss // 1024, text


def floor(data: Path, folder: Path) -> float:
    code = (
        "import sys; from pathlib import Path; from benchmarks.floor import floor_import; "
        f"floor_import(Path({str(data)!r}), Path({str(folder / 'floor.db')!r}))"
    )
    seconds, _, _ = timed([sys.executable, "-c", code], cwd=ROOT)
    return seconds


def one_round(data: Path, number: int) -> dict[str, float]:
    from ledger.anvil import free_port, start_anvil

    with tempfile.TemporaryDirectory(prefix="ledgercrm-bench-") as folder:
        base = floor(data, Path(folder))
        port = free_port()
        anvil = start_anvil(port)
        try:
            home = ["--home", str(Path(folder) / "home")]
            subprocess.run(
                [CLI, *home, "init", "--chain", f"http://127.0.0.1:{port}"], check=True, capture_output=True
            )
            subprocess.run([CLI, *home, "partner", "add", "retail"], check=True, capture_output=True)
            seconds, peak, out = timed(
                [CLI, *home, "import", "online-retail", str(data), "--partner", "retail"]
            )
            verify, verify_peak, verified = timed([CLI, *home, "verify", "--all"])
            audit, audit_peak, audited = timed([CLI, *home, "verify", "--all", "--auditor"])
        finally:
            anvil.terminate()
            anvil.wait(timeout=30)
    leaves = _count(verified, "verified")
    proven = _count(audited, "proven")
    row = {
        "floor s": base,
        "import s": seconds,
        "ratio": seconds / base,
        "import peak MB": peak,
        "verify s": verify,
        "verify records/s": leaves / verify if verify else 0.0,
        "verify peak MB": verify_peak,
        "auditor s": audit,
        "auditor records/s": proven / audit if audit else 0.0,
        "auditor peak MB": audit_peak,
        "verified": leaves,
        "proven": proven,
    }
    print(f"round {number}: " + ", ".join(f"{k} {v:,.1f}" for k, v in row.items()), flush=True)
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
    args = parser.parse_args()
    if not args.data.exists():
        raise SystemExit(f"no data at {args.data} (see ../shared/data/README.md)")
    sys.path.insert(0, str(ROOT))
    from rich.console import Console

    from benchmarks.machine import load, machine_table

    Console().print(machine_table("Machine", [("Data", str(args.data)), ("Rounds", str(args.rounds))]))
    rows = [one_round(args.data, n) for n in range(1, args.rounds + 1)]
    print(f"load average at the end: {load()}")
    print(f"median of {len(rows)} rounds:")
    for key in rows[0]:
        print(f"  {key:20s} {statistics.median(r[key] for r in rows):>12,.2f}")


if __name__ == "__main__":
    main()
