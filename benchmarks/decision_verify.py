"""Issue #32's `decision verify` row alone: one decision verified as a whole process, on anvil.

With `--home PATH` (a home whose partner `retail` has scored members: e.g. one `--build` made and kept),
nothing is set up; otherwise a fresh anvil and a home under a temporary folder are made first (untimed:
`import online-retail DATA --partner retail --purposes loyalty,profiling`, `model train --partner
retail --no-backtest`, `score --partner retail --all`), and `--keep PATH` keeps that home and its node
running for later runs (the node's pid is printed: end it yourself).

Then, `--processes` times each (5), on decisions drawn with `--seed`: `ledgercrm decision verify ID`
(full: the partner's keys, the score and explanation recomputed) and the same with `--auditor`, each a
whole process with its wall time, CPU seconds (user + system from wait4: anvil's are not in them), peak
RSS and the load average; the medians against the target (<= 1 s). Then the same verification split in
one child interpreter, on the CPU clock: the CLI's imports, the use case's imports, opening the home,
the verification, and the exit (what the process cost beyond the clock's last reading).

    .venv/bin/python benchmarks/decision_verify.py [--home PATH | --build [--keep PATH]] [--processes 5]
"""

from __future__ import annotations

import argparse
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.import_cli import CLI, DEFAULT_DATA  # noqa: E402

TARGET_CPU = 1.0

SPLIT = """
import gc, os, sys, time
gc.disable()  # as `decision verify` runs (api.cli.common.short_lived)
t0 = time.process_time()
import api.cli.root  # every command, as the ledgercrm script loads them
t1 = time.process_time()
from pathlib import Path
from api.principal import Principal
from api.usecases.decision_verification import verify_decision
from api.usecases.home_open import open_crm_to_verify
t2 = time.process_time()
crm = open_crm_to_verify(Path(sys.argv[1]))
t3 = time.process_time()
ok = verify_decision(crm, Principal.operator(), int(sys.argv[2]), auditor=sys.argv[3] == "auditor").ok
crm.close()
t4 = time.process_time()
print(f"{t1 - t0} {t2 - t1} {t3 - t2} {t4 - t3} {t4} {ok}", flush=True)
gc.freeze()  # as main() does after it
"""


def measured(command: list[str]) -> tuple[float, float, int, float, str]:
    """wall s, CPU s (wait4), peak MB, load at the end, output."""
    start = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=ROOT)
    assert process.stdout is not None
    output = process.stdout.read().decode()
    _, _, usage = os.wait4(process.pid, 0)
    return (
        time.perf_counter() - start,
        usage.ru_utime + usage.ru_stime,
        usage.ru_maxrss // 1024,
        os.getloadavg()[0],
        output,
    )


def build(folder: Path, data: Path) -> tuple[Path, int]:
    from ledger.anvil import free_port, start_anvil

    port = free_port()
    anvil = start_anvil(port, detach=True)
    home = folder / "home"
    h = ["--home", str(home)]
    steps = [
        ["init", "--chain", f"http://127.0.0.1:{port}"],
        ["partner", "add", "retail"],
        ["import", "online-retail", str(data), "--partner", "retail", "--purposes", "loyalty,profiling"],
        ["model", "train", "--partner", "retail", "--no-backtest"],
        ["score", "--partner", "retail", "--all"],
    ]
    for step in steps:
        print("set-up:", " ".join(step[:2]), flush=True)
        subprocess.run([CLI, *h, *step], check=True, capture_output=True)
    return home, anvil.pid


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--home", type=Path, help="an existing home whose partner retail has scored")
    parser.add_argument("--build", action="store_true", help="make a fresh anvil and home first")
    parser.add_argument("--keep", type=Path, help="with --build: keep the home here (and its node running)")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--processes", type=int, default=5)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    if (args.home is None) == (not args.build):
        raise SystemExit("give --home PATH or --build")
    from rich.console import Console
    from rich.table import Table

    from benchmarks.machine import machine_table

    console = Console(width=160)
    console.print(machine_table("Machine", [("Processes", str(args.processes))]))
    anvil_pid = None
    with tempfile.TemporaryDirectory(prefix="ledgercrm-verify-") as folder:
        home = args.home
        if home is None:
            if not args.data.exists():
                raise SystemExit(f"no data at {args.data} (see ../shared/data/README.md)")
            home, anvil_pid = build(Path(folder), args.data)
        try:
            listing = subprocess.run(
                [CLI, "--home", str(home), "decision", "list", "--partner", "retail"],
                check=True,
                capture_output=True,
                text=True,
            ).stdout
            ids = [int(m) for m in re.findall(r"^(\d+) ", listing, re.M)]
            if not ids:
                raise SystemExit(f"{home}: partner retail has logged no decision")
            chosen = random.Random(args.seed).sample(ids, min(args.processes, len(ids)))
            table = Table(
                "command", "wall s", "CPU s", "peak MB", "load", "CPU s of each", title="decision verify"
            )
            for label, mode in (("decision verify ID", []), ("decision verify ID --auditor", ["--auditor"])):
                runs = []
                for decision_id in chosen:
                    run = measured([CLI, "--home", str(home), "decision", "verify", str(decision_id), *mode])
                    if "reproduced" not in run[4] and "checks without keys pass" not in run[4]:
                        raise SystemExit(f"decision {decision_id} did not verify:\n{run[4]}")
                    runs.append(run)
                cpu = statistics.median(r[1] for r in runs)
                table.add_row(
                    label,
                    f"{statistics.median(r[0] for r in runs):.2f}",
                    f"{cpu:.2f} ({'meets' if cpu <= TARGET_CPU else 'above'} <= {TARGET_CPU:.0f} s)",
                    str(max(r[2] for r in runs)),
                    f"{statistics.median(r[3] for r in runs):.1f}",
                    " ".join(f"{r[1]:.2f}" for r in runs),
                )
            console.print(table)
            split = Table(
                "mode", "CLI imports", "use case imports", "opening", "verifying", "exit", "process",
                title="Where its CPU seconds go (medians; CPU clock in the child, exit = wait4 - clock)",
            )  # fmt: skip
            for kind in ("full", "auditor"):
                parts = []
                for decision_id in chosen:
                    run = measured([sys.executable, "-c", SPLIT, str(home), str(decision_id), kind])
                    cli, usecase, opening, verifying, clock, ok = run[4].split()
                    if ok != "True" and kind == "full":
                        raise SystemExit(f"decision {decision_id} did not reproduce in process")
                    figures = [float(x) for x in (cli, usecase, opening, verifying)]
                    parts.append([*figures, run[1] - float(clock), run[1]])
                split.add_row(kind, *(f"{statistics.median(p[i] for p in parts):.3f}" for i in range(6)))
            console.print(split)
        finally:
            if anvil_pid is not None:
                if args.keep is not None:
                    shutil.copytree(home, args.keep)
                    print(f"kept {args.keep}; its anvil runs as pid {anvil_pid}")
                else:
                    os.kill(anvil_pid, 15)


if __name__ == "__main__":
    main()
