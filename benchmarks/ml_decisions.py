"""The decision layer on Online Retail II, through the command line on anvil, as whole processes.

On a fresh anvil and home: `import online-retail DATA --partner retail --purposes loyalty,profiling`
(untimed set-up), then, each timed with its peak RSS (a reader can redo every figure with
`/usr/bin/time`):

1. `model train --partner retail`: fitting the glass box, the challenger and every baseline, and the
   card with bootstrap intervals; the metrics table it prints is shown;
2. `score --partner retail --all`: verifying the inputs, scoring, explaining and logging every member
   (decisions per second, and the command's own split by phase);
3. `decision verify ID` for `--verify N` random decisions (full, with the partner's keys), and the same
   with `--auditor`: seconds per decision as a process, and in one process per decision;
4. `segments --partner retail --plot benchmarks/out/segments.png` (silhouette and elbow);
5. item-to-item recommendations against the most popular items, on a temporal split of the verified
   purchases (precision@10, recall@10), computed in process from the same home.

    .venv/bin/python benchmarks/ml_decisions.py [--data PATH] [--verify 20] [--seed 1]
"""

from __future__ import annotations

import argparse
import random
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.import_cli import CLI, DEFAULT_DATA, timed  # noqa: E402

OUT = ROOT / "benchmarks" / "out"


def in_process(home: Path, code: str) -> str:
    """Run `code` in a child Python with `crm` (the home opened) and `who` (partner retail) defined."""
    prelude = (
        "from pathlib import Path\nfrom api.usecases.home import open_crm\n"
        "from api.principal import Principal\n"
        f"crm = open_crm(Path({str(home)!r}))\nwho = Principal.of_partner('retail')\n"
    )
    found = subprocess.run(
        [sys.executable, "-c", prelude + code], cwd=ROOT, capture_output=True, text=True, check=False
    )
    if found.returncode != 0:
        raise SystemExit(f"in-process step failed:\n{found.stderr[-2000:]}")
    return found.stdout


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--verify", type=int, default=20, metavar="N", help="decisions to verify")
    parser.add_argument("--seed", type=int, default=1, help="which decisions are verified")
    args = parser.parse_args()
    if not args.data.exists():
        raise SystemExit(f"no data at {args.data} (see ../shared/data/README.md)")
    from rich.console import Console

    from benchmarks.machine import load, machine_table
    from ledger.anvil import free_port, start_anvil

    Console().print(
        machine_table("Machine", [("Data", str(args.data)), ("Decisions verified", str(args.verify))])
    )
    OUT.mkdir(parents=True, exist_ok=True)
    plot = OUT / "segments.png"
    plot.unlink(missing_ok=True)  # `segments --plot` never overwrites a file
    rows: list[tuple[str, str]] = []
    with tempfile.TemporaryDirectory(prefix="ledgercrm-ml-") as folder:
        port = free_port()
        anvil = start_anvil(port)
        try:
            home = Path(folder) / "home"
            h = ["--home", str(home)]
            subprocess.run(
                [CLI, *h, "init", "--chain", f"http://127.0.0.1:{port}"], check=True, capture_output=True
            )
            subprocess.run([CLI, *h, "partner", "add", "retail"], check=True, capture_output=True)
            seconds, peak, _ = timed(
                [CLI, *h, "import", "online-retail", str(args.data), "--partner", "retail",
                 "--purposes", "loyalty,profiling"]
            )  # fmt: skip
            rows.append(("import with loyalty and profiling consent (set-up)", f"{seconds:.1f} s, {peak} MB"))

            seconds, peak, out = timed([CLI, *h, "model", "train", "--partner", "retail"])
            print(out)
            rows.append(("model train", f"{seconds:.1f} s, peak RSS {peak} MB"))

            seconds, peak, out = timed([CLI, *h, "score", "--partner", "retail", "--all"])
            print(out)
            decided = int(re.search(r"(\d+) decided", out).group(1))  # type: ignore[union-attr]
            rows.append(
                (
                    "score --all",
                    f"{seconds:.1f} s, {decided:,} decisions, {decided / seconds:,.0f}/s, {peak} MB",
                )
            )

            ids = random.Random(args.seed).sample(range(decided), min(args.verify, decided))
            for mode in ([], ["--auditor"]):
                times = []
                for decision_id in ids:
                    took, _, said = timed_ok([CLI, *h, "decision", "verify", str(decision_id), *mode])
                    times.append(took)
                    if not mode and "reproduced" not in said:
                        raise SystemExit(f"decision {decision_id} did not reproduce:\n{said}")
                label = "decision verify" + (" --auditor" if mode else "")
                rows.append((f"{label} (process)", f"median {statistics.median(times):.2f} s per decision"))
            code = (
                "import time\nfrom api.usecases.decisions import verify_decision\n"
                f"ids = {ids!r}\n"
                "for auditor in (False, True):\n"
                "    t = time.perf_counter()\n"
                "    ok = [verify_decision(crm, Principal.operator(), i, auditor=auditor).ok for i in ids]\n"
                "    print(auditor, (time.perf_counter() - t) / len(ids), sum(ok))\n"
            )
            for line in in_process(home, code).split("\n"):
                if line:
                    auditor, per, ok = line.split()
                    label = "decision verify --auditor" if auditor == "True" else "decision verify"
                    rows.append(
                        (f"{label} (in process)", f"{float(per):.3f} s per decision, {ok} of {len(ids)} ok")
                    )

            seconds, peak, out = timed([CLI, *h, "segments", "--partner", "retail", "--plot", str(plot)])
            print(out)
            rows.append(("segments --plot", f"{seconds:.1f} s, {peak} MB, plot {plot.relative_to(ROOT)}"))

            code = (
                "from datetime import UTC, datetime\nfrom api.usecases.models import verified_inputs\n"
                "from ml import recommend\n"
                "inputs = verified_inputs(crm, 'retail')\n"
                "cutoff = datetime(2011, 9, 1, tzinfo=UTC)\n"
                "for name, m in recommend.evaluate(inputs.histories, cutoff).items():\n"
                "    print(name, m['precision@10'], m['recall@10'], m['members'])\n"
            )
            for line in in_process(home, code).strip().split("\n"):
                *name, precision, recall, members = line.split()
                rows.append(
                    (f"recommend: {' '.join(name)}", f"precision@10 {float(precision):.3f}, recall@10 "
                     f"{float(recall):.3f} ({members} members; fit before 2011-09-01, judged after)")
                )  # fmt: skip
        finally:
            anvil.terminate()
            anvil.wait(timeout=30)
    from rich.table import Table

    table = Table(
        "step", "figure", title=f"The decision layer on Online Retail II (load at the end: {load()})"
    )
    for step, figure in rows:
        table.add_row(step, figure)
    Console(width=200).print(table)


def timed_ok(command: list[str]) -> tuple[float, int, str]:
    """`timed`, for a command whose exit code is its verdict (decision verify --auditor exits 1)."""
    start = time.perf_counter()
    found = subprocess.run(command, capture_output=True, text=True, check=False)
    return time.perf_counter() - start, 0, found.stdout + found.stderr


if __name__ == "__main__":
    main()
