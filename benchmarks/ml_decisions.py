"""The decision layer on Online Retail II, through the command line on anvil, as whole processes.

On a fresh anvil and home: `import online-retail DATA --partner retail --purposes loyalty,profiling`
(untimed set-up), then, each timed with its peak RSS (a reader can redo every figure with
`/usr/bin/time`):

1. `model train --partner retail`: fitting the glass box, the challenger and every baseline, the
   three-cut backtest, the refit, and the card with bootstrap intervals (time and peak RSS); from the
   card: the backtest table (AUC per model and cut on both populations, each with the paired interval
   of its difference to the EBM), the calibration table (calibration error, churn, mean score and the
   share acted on at each cut, and the reliability table at the holdout) and the fairness table;
2. `score --partner retail --all`: verifying the inputs, scoring, explaining and logging every member
   (decisions per second, and the command's own split by phase);
3. `decision verify ID` for `--verify N` random decisions (full, with the partner's keys), and the same
   with `--auditor`: seconds per decision as a process, and in one process per decision;
4. `segments --partner retail --plot benchmarks/out/segments.png` (silhouette and elbow);
5. item-to-item recommendations against the most popular items (of all time, and of the 30 days before
   the split), on a temporal split of the verified purchases (precision@10, recall@10), computed in
   process from the same home;
6. with `--search`: the feature search (`ml.training.feature_search`), in process: each candidate's
   mean AUC gain over the three cuts with its paired interval, kept only if the interval excludes zero.

    .venv/bin/python benchmarks/ml_decisions.py [--data PATH] [--verify 20] [--seed 1] [--search]
"""

from __future__ import annotations

import argparse
import json
import random
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

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
    parser.add_argument("--search", action="store_true", help="run the feature search too (minutes)")
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
            rows.append(
                ("model train (with the backtest and the refit)", f"{seconds:.1f} s, peak RSS {peak} MB")
            )
            model_id = re.search(r"model id (\d+)", out).group(1)  # type: ignore[union-attr]
            card = json.loads(subprocess.run([CLI, *h, "model", "card", model_id], check=True,
                                             capture_output=True, text=True).stdout)  # fmt: skip
            print_card(card)

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
            if args.search:
                code = (
                    "import json\nfrom api.usecases.models import verified_inputs\n"
                    "from ml.training import TrainConfig, feature_search\n"
                    "inputs = verified_inputs(crm, 'retail')\n"
                    "print(json.dumps(feature_search(inputs.histories, TrainConfig())))\n"
                )
                print_search(json.loads(in_process(home, code).strip().splitlines()[-1]))
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


def print_card(card: dict[str, Any]) -> None:
    """The card's backtest, calibration and fairness as tables."""
    from rich.console import Console
    from rich.table import Table

    console = Console(width=200)

    def interval(v: dict[str, float]) -> str:
        return f"{v['value']:+.3f} [{v['low']:+.3f}, {v['high']:+.3f}]"

    for population in ("active in the last 12 months", "everyone who ever bought"):
        cuts = [c for c in card["backtest"] if population in c["populations"]]
        title = f"Backtest AUC, {population} (paired 95% interval of the difference to the EBM)"
        table = Table("model", *(c["asOf"][:10] for c in cuts), title=title)
        for name in cuts[0]["populations"][population]["models"] if cuts else []:
            cells = []
            for cut in cuts:
                row = cut["populations"][population]["models"][name]
                cells.append(
                    f"{row['auc']:.3f}" + (f" {interval(row['minusEbm'])}" if "minusEbm" in row else "")
                )
            table.add_row(name, *cells)
        members = [f"{c['populations'][population]['members']} members, churn "
                   f"{c['populations'][population]['churnRate']:.1%}" for c in cuts]  # fmt: skip
        table.add_row("(population)", *members)
        console.print(table)
    published = ", ".join(f"{k} {v}" for k, v in card["publishedAccuracy"].items() if k != "source")
    console.print(f"published accuracy ({card['publishedAccuracy']['source']}): {published}")
    console.print(f"label: {card['label']}; population: {card['population']}; split: {card['split']['rule']}")
    table = Table("as of", "calibration error", "churn", "mean score", "share acted on", "calibrated on",
                  title=f"Calibration and the action rule ({card['policy']['rule']})")  # fmt: skip
    for cut in card["backtest"]:
        a = cut["populations"]["active in the last 12 months"]
        table.add_row(
            cut["asOf"][:10],
            f"{a['expectedCalibrationError']:.3f}",
            f"{a['churnRate']:.1%}",
            f"{a['meanScore']:.1%}",
            f"{a['shareActedOn']:.1%}",
            a["calibration"]["slice"][:10],
        )
    console.print(table)
    table = Table("score bin", "members", "predicted", "observed",
                  title=f"Reliability at the holdout {card['split']['holdout']['asOf'][:10]}")  # fmt: skip
    for b in card["calibration"]["holdoutReliability"]:
        table.add_row(b["bin"], str(b["members"]), f"{b['predicted']:.3f}", f"{b['observed']:.3f}")
    console.print(table)
    metrics = ("base_rate", "auc", "selection_rate", "false_positive_rate", "calibration_error")
    table = Table("group", "members", *metrics, title="Fairness at the holdout (95% bootstrap intervals)")
    for group, row in card["fairness"]["groups"].items():
        cells = [f"{row[m]['value']:.3f} [{row[m]['low']:.3f}, {row[m]['high']:.3f}]" for m in metrics]
        table.add_row(group, str(row["members"]), *cells)
    console.print(table)
    console.print(
        "fairlearn ratios (min over max): "
        + ", ".join(f"{k} {v:.3f}" for k, v in card["fairness"]["ratios"].items())
    )
    left = "; ".join(f"{f['name']}: {f['why']}" for f in card["featuresLeftOut"])
    console.print(f"features: {', '.join(f['name'] for f in card['features'])}; left out: {left}")


def print_search(results: list[dict[str, Any]]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table("candidate", "mean AUC gain over the 3 cuts [95% paired]", "kept",
                  title="Feature search (each candidate added alone to the model's set)")  # fmt: skip
    for r in results:
        gain = r.get("gain")
        shown = (
            r.get("why", "")
            if gain is None
            else f"{gain['value']:+.4f} [{gain['low']:+.4f}, {gain['high']:+.4f}]"
        )
        table.add_row(r["feature"], shown, "yes" if r["kept"] else "no")
    Console(width=200).print(table)


def timed_ok(command: list[str]) -> tuple[float, int, str]:
    """`timed`, for a command whose exit code is its verdict (decision verify --auditor exits 1)."""
    start = time.perf_counter()
    found = subprocess.run(command, capture_output=True, text=True, check=False)
    return time.perf_counter() - start, 0, found.stdout + found.stderr


if __name__ == "__main__":
    main()
