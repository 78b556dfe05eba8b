"""The decision layer on Online Retail II, through the command line on anvil, as whole processes.

On a fresh anvil and home: `import online-retail DATA --partner retail --purposes loyalty,profiling`
(untimed set-up), then `--rounds` rounds (3) of, each a whole process timed with its CPU seconds and
peak RSS (wait4; a reader can redo every figure with `/usr/bin/time`) and the load average:

1. `model train --partner retail`: fitting the glass box, the challenger and every baseline, the
   three-cut backtest, the refit, and the card with bootstrap intervals; from the first round's card:
   the backtest table (AUC per model and cut on both populations, each with the paired interval
   of its difference to the EBM), the calibration table (calibration error, churn, mean score, the
   share acted on and what the calibration learnt from at each cut, and the reliability table at the
   holdout) and the fairness table;
2. `score --partner retail --all`: verifying the inputs, scoring, explaining and logging every member
   (decisions per second of wall and of CPU time, and the command's own split by phase); then the
   same again, whose inputs' content checks come from the memo the first one wrote (api/evidence/
   inputs.py: the log is still checked from the chain);
3. `decision verify ID` for `--verify N` random decisions of that round (full, with the partner's
   keys), and the same with `--auditor`: the median process;
4. `ledgercrm --help`, three times: the start-up every command pays;

then a table of every round and the medians against issue #32's targets. After the rounds:
`decision verify` in one process per decision, `segments --plot benchmarks/out/segments.png`
(silhouette and elbow), item-to-item recommendations against the most popular items (of all time,
and of the 30 days before the split) on a temporal split of the verified purchases (precision@10,
recall@10), computed in process from the same home; with `--search`, the feature search
(`ml.training.feature_search`), in process: each candidate's mean AUC gain over the three cuts with
its paired interval, kept only if the interval excludes zero.

    .venv/bin/python benchmarks/ml_decisions.py [--data PATH] [--rounds 3] [--verify 5] [--seed 1] [--search]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
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
    parser.add_argument("--verify", type=int, default=5, metavar="N", help="decisions verified a round")
    parser.add_argument("--seed", type=int, default=1, help="which decisions are verified")
    parser.add_argument("--search", action="store_true", help="run the feature search too (minutes)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of train, score and verify (medians)")
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

            figures: dict[str, list[Run]] = {
                "train": [],
                "score": [],
                "again": [],
                "verify": [],
                "auditor": [],
                "help": [],
            }
            decided, ids = 0, []
            for number in range(args.rounds):
                run = measured([CLI, *h, "model", "train", "--partner", "retail"])
                figures["train"].append(run)
                if number == 0:
                    print(run.output)
                    model_id = re.search(r"model id (\d+)", run.output).group(1)  # type: ignore[union-attr]
                    card = json.loads(subprocess.run([CLI, *h, "model", "card", model_id], check=True,
                                                     capture_output=True, text=True).stdout)  # fmt: skip
                    print_card(card)
                run = measured([CLI, *h, "score", "--partner", "retail", "--all"])
                figures["score"].append(run)
                decided = int(re.search(r"(\d+) decided", run.output).group(1))  # type: ignore[union-attr]
                low, high = map(int, re.search(r"decision ids (\d+)\.\.(\d+)", run.output).groups())  # type: ignore[union-attr]
                run.count = decided
                if number == 0:
                    print(run.output)
                # the same again: its inputs' content checks now read from the memo the first one wrote
                again = measured([CLI, *h, "score", "--partner", "retail", "--all"])
                again.count = int(re.search(r"(\d+) decided", again.output).group(1))  # type: ignore[union-attr]
                figures["again"].append(again)
                if number == 0:
                    print(again.output)
                # this round's decisions (made by this round's model): full, then as an auditor
                ids = random.Random(args.seed + number).sample(
                    range(low, high + 1), min(args.verify, decided)
                )
                for key, mode in (("verify", []), ("auditor", ["--auditor"])):
                    runs = [
                        measured([CLI, *h, "decision", "verify", str(i), *mode], check=False) for i in ids
                    ]
                    bad = [r for r in runs if not mode and "reproduced" not in r.output]
                    if bad:
                        raise SystemExit(f"a decision did not reproduce:\n{bad[0].output}")
                    figures[key].append(median_run(runs))
                figures["help"].append(median_run([measured([CLI, "--help"]) for _ in range(3)]))
                print_rounds(figures, number + 1)  # after every round: a long run shows what it has
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


@dataclass
class Run:
    """One whole process: wall seconds, CPU seconds (its own and its waited-for children's, from
    wait4: anvil's are not in it), peak RSS, the load average when it ended, and what it printed."""

    wall: float
    cpu: float
    peak_mb: int
    load: float
    output: str
    count: int = 0  # what it did (decisions scored), where that matters


def measured(command: list[str], *, check: bool = True) -> Run:
    with tempfile.TemporaryFile("w+") as output:
        start = time.perf_counter()
        process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - start
        output.seek(0)
        text = output.read()
    code = os.waitstatus_to_exitcode(status)
    if check and code != 0:
        raise SystemExit(f"{' '.join(command)} failed ({code}):\n{text[-2000:]}")
    return Run(wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss // 1024, os.getloadavg()[0], text)


def median_run(runs: list[Run]) -> Run:
    """The median of each figure of a few runs of the same command."""
    return Run(
        statistics.median(r.wall for r in runs),
        statistics.median(r.cpu for r in runs),
        max(r.peak_mb for r in runs),
        statistics.median(r.load for r in runs),
        runs[0].output,
        runs[0].count,
    )


# issue #32's targets for the decision layer
TARGETS = {
    "train": "<= 30 s, <= 500 MB",
    "score": ">= 1,000 decisions/s",
    "again": ">= 1,000 decisions/s",
    "verify": "<= 1 s",
    "auditor": "",
    "help": "",
}
LABELS = {
    "train": "model train (backtest, refit, card)",
    "score": "score --all (inputs checked row by row: no memo yet)",
    "again": "score --all again (content checks from the memo)",
    "verify": "decision verify ID (process, full)",
    "auditor": "decision verify ID --auditor (process)",
    "help": "ledgercrm --help (start-up)",
}


def print_rounds(figures: dict[str, list[Run]], rounds: int) -> None:
    """Each command's rounds and their medians, with the load average at the end of each."""
    from rich.console import Console
    from rich.table import Table

    table = Table("command", *(f"round {i + 1}" for i in range(rounds)), "median", "target",
                  title="Issue #32's rows: wall s / CPU s / peak MB (load average, 1 min)")  # fmt: skip
    for key, runs in figures.items():
        cells = []
        for r in runs:
            rate = f", {r.count / r.wall:,.0f}/s, {r.count / r.cpu:,.0f}/CPU s" if r.count else ""
            cells.append(f"{r.wall:.2f} / {r.cpu:.2f} / {r.peak_mb}{rate} ({r.load:.1f})")
        mid = median_run(runs)
        rate = (
            f", {statistics.median(r.count / r.wall for r in runs):,.0f}/s,"
            f" {statistics.median(r.count / r.cpu for r in runs):,.0f}/CPU s"
            if mid.count
            else ""
        )
        table.add_row(
            LABELS[key], *cells, f"{mid.wall:.2f} / {mid.cpu:.2f} / {mid.peak_mb}{rate}", TARGETS[key]
        )
    Console(width=220).print(table)


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
            calibrated_on(a["calibration"]),
        )
    console.print(table)
    console.print(f"the registered model: {calibrated_on(card['registered']['calibration'])}")
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


def calibrated_on(calibration: dict[str, Any]) -> str:
    """Which slices a calibration learnt from, in a table cell."""
    slices = calibration["slices"]
    said = f"{len(slices)} slices {slices[0]['asOf'][:7]}..{slices[-1]['asOf'][:7]} (halving monthly)"
    season = calibration.get("season")
    if season is None:
        return said + ", no seasonal shift (last year's slices lack half a year of history)"
    return (
        said + f", seasonal shift {season['shift']:+.3f} ({season['sameSeasonLastYear']['asOf'][:7]} churn "
        f"{season['sameSeasonLastYear']['churnRate']:.1%} vs {season['latestMonthLastYear']['asOf'][:7]} "
        f"{season['latestMonthLastYear']['churnRate']:.1%})"
    )


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


if __name__ == "__main__":
    main()
