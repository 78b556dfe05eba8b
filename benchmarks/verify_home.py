"""`ledgercrm verify --all` (and `--auditor`) as whole processes on a home that already holds an import,
against the node it was made on: wall and CPU seconds, peak RSS, the node's CPU, the load.

    .venv/bin/python benchmarks/verify_home.py --home DIR/home-1000000 --anvil-pid PID [--rounds 3]
        [--modes full,auditor] [--code DIR[,DIR...]]

For a home and node left by `import_scaling.py --keep DIR` (a 1M import takes half an hour; its
verification can then be measured as often as needed). `--code` runs the same command with another
checkout's modules first on the path (e.g. a `git worktree` or `git archive` of an earlier commit in
/tmp): each round runs every code and mode in turn, so they share the machine's load as evenly as a
shared machine allows. Medians per code and mode at the end.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.machine import cpu_seconds, load  # noqa: E402  (after the path: run as a script)

CLI = str(Path(sys.executable).with_name("ledgercrm"))


def run(home: Path, auditor: bool, code: str | None, anvil_pid: int | None) -> dict[str, float | str]:
    command = [CLI, "--home", str(home), "verify", "--all"] + (["--auditor"] if auditor else [])
    env = dict(os.environ)
    if code:
        env["PYTHONPATH"] = code
    node_before = cpu_seconds(anvil_pid)
    at = load().split(" / ")[0]
    started = time.perf_counter()
    child = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    assert child.stdout is not None
    out = child.stdout.read()
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - started
    node_after = cpu_seconds(anvil_pid)
    last = out.decode(errors="replace").strip().splitlines()[-3:]
    return {
        "wall": wall,
        "cpu": usage.ru_utime + usage.ru_stime,
        "rss": usage.ru_maxrss / 1024,  # KiB -> MiB
        "node": (node_after - node_before) if node_before is not None and node_after is not None else -1,
        "exit": os.waitstatus_to_exitcode(status),
        "load": at,
        "tail": " | ".join(line.strip() for line in last),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--home", type=Path, required=True)
    parser.add_argument("--anvil-pid", type=int, help="the node's pid, for its CPU seconds (from /proc)")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--modes", default="full,auditor", help="full, auditor or both (default)")
    parser.add_argument(
        "--code",
        default="",
        help="checkouts whose modules run the command (PYTHONPATH), comma-separated; '' is this one",
    )
    args = parser.parse_args(argv)
    codes = args.code.split(",") if args.code else [""]
    modes = [m for m in args.modes.split(",") if m]
    print(f"home {args.home}, node pid {args.anvil_pid}, load {load()}", flush=True)
    print("round  code                  mode     wall s   CPU s  node CPU s  peak MB  exit  load", flush=True)
    results: dict[tuple[str, str], list[dict[str, float | str]]] = {}
    for round_ in range(1, args.rounds + 1):
        for code in codes:
            for mode in modes:
                r = run(args.home, mode == "auditor", code or None, args.anvil_pid)
                results.setdefault((code, mode), []).append(r)
                print(
                    f"{round_:>5}  {(code or 'this checkout')[-20:]:<20}  {mode:<7} {r['wall']:>7.1f} "
                    f"{r['cpu']:>7.1f} {r['node']:>11.1f} {r['rss']:>8.0f} {r['exit']:>5}  {r['load']}",
                    flush=True,
                )
                if r["exit"] != 0:
                    print(f"       {r['tail']}", flush=True)
    print("medians:")
    for (code, mode), rows in results.items():

        def median(key: str, rows: list[dict[str, float | str]] = rows) -> float:
            return statistics.median(float(r[key]) for r in rows)

        print(
            f"  {(code or 'this checkout')[-20:]:<20}  {mode:<7} wall {median('wall'):.1f} s, CPU"
            f" {median('cpu'):.1f} s, node {median('node'):.1f} s, peak {median('rss'):.0f} MB"
            f" ({len(rows)} runs)"
        )
    print(f"load now {load()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
