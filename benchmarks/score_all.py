"""Issue #32's `score --all` row alone: Online Retail II's 4,265 decisions, as whole processes on anvil.

On a fresh anvil and home: `import online-retail DATA --partner retail --purposes loyalty,profiling`
and `model train --partner retail --no-backtest` (untimed set-up; the same model as with the
backtest, which only adds to the card), then an anvil snapshot and a copy of the home. Each of
`--rounds` rounds (3) puts both back and runs `score --partner retail --all` twice: first (no memo yet:
every input decrypted and checked in full, the memo written) and again (warm: the content checks read
from the memo; the log is still checked from the chain, every head and every leaf). Each is a whole
process with its wall time, CPU seconds (user + system from wait4; anvil's are not in them), peak
RSS and the load average; then the same warm run in process with the phases on the CPU clock
(start-up and opening the home, check, verify, consent, score, log). Medians of the rounds at the end.

The project's bytecode is compiled first, as scripts/setup.sh does at install (with PYTHONDONTWRITEBYTECODE
set, as in these machines' environment, an editable install's processes would otherwise compile every
project module they import from source each time: ~0.17 CPU s of this command).

CPU seconds are the figure the machine's load does not move; wall time is only meaningful on a quiet
machine (at load 5-10 on two cores it is 2-4x the CPU time).

    .venv/bin/python benchmarks/score_all.py [--data PATH] [--rounds 3] [--keep DIR]

With `--keep DIR`, the set-up is kept in DIR (the trained home, anvil's state and its port) and reused
by later runs with the same DIR: the import and training are then paid once.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.import_cli import CLI, DEFAULT_DATA  # noqa: E402
from benchmarks.ml_decisions import Run, measured  # noqa: E402

# the warm run in process, each phase on the CPU clock (the use case times its phases with
# time.perf_counter, pointed at time.process_time here)
PHASES = """
import json, sys, time
started = time.process_time()
from pathlib import Path
import api.cli.root  # what the command imports too (api.cli alone loads it on first use)
import api.usecases.decisions as deciding
from api.principal import Principal
from api.usecases.home_open import open_crm_to_decide  # as the command opens it (no web3)
deciding.time.perf_counter = time.process_time
crm = open_crm_to_decide(Path(sys.argv[1]))
opened = time.process_time()
report = deciding.score(crm, Principal.of_partner("retail"))
split = {"start-up and opening": opened - started, **report.timings}
print(json.dumps({**split, "decided": len(report.decided)}))
"""


def rpc(url: str, method: str, params: list[object]) -> object:
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).encode()
    request = urllib.request.Request(url, body, {"content-type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as answer:
        return json.load(answer)["result"]


def decided(run: Run) -> int:
    for line in run.output.splitlines():
        if " decided, " in line:
            return int(line.split(" decided")[0].replace(",", ""))
    raise SystemExit(f"score printed no count:\n{run.output[-2000:]}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--keep", type=Path, help="keep the set-up here and reuse it (see above)")
    args = parser.parse_args()
    if not args.data.exists():
        raise SystemExit(f"no data at {args.data} (see ../shared/data/README.md)")
    # the command as installed: the project's bytecode compiled (scripts/setup.sh does it too), else where
    # PYTHONDONTWRITEBYTECODE is set every process compiles every project module it imports from source
    subprocess.run(
        [sys.executable, "-m", "compileall", "-q", "-j", "0", "api", "ledger", "offchain", "ml"],
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    print(
        "the project's bytecode compiled first (scripts/setup.sh's step); PYTHONDONTWRITEBYTECODE="
        + os.environ.get("PYTHONDONTWRITEBYTECODE", "(unset)"),
        flush=True,
    )
    from benchmarks.machine import load
    from ledger.anvil import free_port, start_anvil

    with tempfile.TemporaryDirectory(prefix="ledgercrm-score-") as folder:
        home, kept = Path(folder) / "home", Path(folder) / "home.trained"
        state = Path(folder) / "anvil.json"
        reused = args.keep is not None and (args.keep / "port").exists()
        if reused:  # the kept chain on the port its home names
            port = int((args.keep / "port").read_text())
            kept = args.keep / "home.trained"
            shutil.copyfile(args.keep / "anvil.json", state)
            shutil.copytree(kept, home)
        else:
            port = free_port()
        url = f"http://127.0.0.1:{port}"
        anvil = start_anvil(port, state_file=state if args.keep is not None else None)
        try:
            h = ["--home", str(home)]
            if not reused:
                subprocess.run([CLI, *h, "init", "--chain", url], check=True, capture_output=True)
                subprocess.run([CLI, *h, "partner", "add", "retail"], check=True, capture_output=True)
                for step in (
                    ["import", "online-retail", str(args.data), "--partner", "retail",
                     "--purposes", "loyalty,profiling"],
                    ["model", "train", "--partner", "retail", "--no-backtest"],
                ):  # fmt: skip
                    subprocess.run([CLI, *h, *step], check=True, capture_output=True)
                shutil.copytree(home, kept)
                if args.keep is not None:  # anvil writes its whole state on exit: keep that, go on
                    anvil.terminate()
                    anvil.wait(timeout=60)
                    args.keep.mkdir(parents=True, exist_ok=True)
                    shutil.copyfile(state, args.keep / "anvil.json")
                    anvil = start_anvil(port, state_file=state)
                    shutil.copytree(kept, args.keep / "home.trained")
                    (args.keep / "port").write_text(str(port))
            snapshot = rpc(url, "evm_snapshot", [])
            figures: dict[str, list[Run]] = {"first": [], "again": []}
            phases: list[dict[str, float]] = []
            for number in range(args.rounds):
                for kind in ("first", "again"):
                    run = measured([CLI, *h, "score", "--partner", "retail", "--all"])
                    run.count = decided(run)
                    figures[kind].append(run)
                    print(
                        f"round {number + 1}, {kind}: {run.count:,} decisions, {run.wall:.2f} s wall,"
                        f" {run.cpu:.2f} CPU s ({run.count / run.cpu:,.0f} per CPU s), {run.peak_mb} MB,"
                        f" load {run.load:.1f}",
                        flush=True,
                    )
                found = subprocess.run(
                    [sys.executable, "-c", PHASES, str(home)], cwd=ROOT, capture_output=True, text=True
                )
                if found.returncode != 0:
                    raise SystemExit(f"the in-process run failed:\n{found.stderr[-2000:]}")
                split = json.loads(found.stdout.splitlines()[-1])
                phases.append(split)
                print(
                    "  in process, warm, CPU s: "
                    + ", ".join(f"{k} {v:.2f}" for k, v in split.items() if k not in ("done", "decided")),
                    flush=True,
                )
                if not rpc(url, "evm_revert", [snapshot]):
                    raise SystemExit("anvil did not revert to the snapshot")
                snapshot = rpc(url, "evm_snapshot", [])
                shutil.rmtree(home)
                shutil.copytree(kept, home)
            print(f"\nmedians of {args.rounds} rounds (load at the end: {load()})")
            for kind, runs in figures.items():
                cpu, wall = statistics.median(r.cpu for r in runs), statistics.median(r.wall for r in runs)
                count = runs[0].count
                print(
                    f"  score --all, {kind}: {wall:.2f} s wall, {cpu:.2f} CPU s, {count / cpu:,.0f} decisions"
                    f" per CPU s, {count / wall:,.0f} per s wall, {max(r.peak_mb for r in runs)} MB"
                    " (target: >= 1,000 decisions/s)"
                )
            names = [k for k in phases[0] if k not in ("done", "decided")]
            print(
                "  in process, warm: "
                + ", ".join(f"{k} {statistics.median(p[k] for p in phases):.2f}" for k in names)
                + " CPU s"
            )
        finally:
            anvil.terminate()
            anvil.wait(timeout=30)


if __name__ == "__main__":
    main()
