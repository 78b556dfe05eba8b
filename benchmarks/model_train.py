"""`model train` on Online Retail II as whole processes: issue #32's row, without the rest of
`ml_decisions.py` (scoring, verifying decisions, segments), so that the row is measured in minutes.

On a fresh anvil and home: `import online-retail DATA --partner retail --purposes loyalty,profiling`
(untimed set-up), then `--rounds` processes of `model train --partner retail`, each with its wall time,
its CPU seconds (user + system from `wait4`), its peak RSS and the load average at its start and end;
then the medians against the target, and the first round's model hash (every round's must be the same:
training is deterministic) and the holdout AUCs it printed.

    .venv/bin/python benchmarks/model_train.py [--rounds 3] [--data PATH]
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.import_cli import CLI, DEFAULT_DATA, timed  # noqa: E402
from benchmarks.ml_decisions import measured  # noqa: E402

TARGET = "<= 30 s, <= 500 MB"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    if not args.data.exists():
        raise SystemExit(f"no data at {args.data} (see ../shared/data/README.md)")
    from rich.console import Console

    from benchmarks.machine import machine_table
    from ledger.anvil import free_port, start_anvil

    Console().print(machine_table("Machine", [("Data", str(args.data))]))
    with tempfile.TemporaryDirectory(prefix="ledgercrm-train-") as folder:
        port = free_port()
        anvil = start_anvil(port)
        try:
            h = ["--home", str(Path(folder) / "home")]
            subprocess.run(
                [CLI, *h, "init", "--chain", f"http://127.0.0.1:{port}"], check=True, capture_output=True
            )
            subprocess.run([CLI, *h, "partner", "add", "retail"], check=True, capture_output=True)
            seconds, peak, _ = timed(
                [CLI, *h, "import", "online-retail", str(args.data), "--partner", "retail",
                 "--purposes", "loyalty,profiling"]
            )  # fmt: skip
            print(f"import (set-up): {seconds:.1f} s, {peak} MB")
            runs, hashes = [], set()
            for number in range(args.rounds):
                start = os.getloadavg()[0]
                run = measured([CLI, *h, "model", "train", "--partner", "retail"])
                runs.append(run)
                hashes.add(re.search(r"model hash (0x[0-9a-f]+)", run.output).group(1))  # type: ignore[union-attr]
                if number == 0:
                    print(run.output)
                print(
                    f"round {number + 1}: {run.wall:.1f} s wall, {run.cpu:.1f} CPU s, "
                    f"{run.peak_mb:,} MB peak "
                    f"(load {start:.1f} -> {run.load:.1f})",
                    flush=True,
                )
        finally:
            anvil.terminate()
            anvil.wait(timeout=30)
    print(
        f"median of {len(runs)}: {statistics.median(r.wall for r in runs):.1f} s wall, "
        f"{statistics.median(r.cpu for r in runs):.1f} CPU s, {max(r.peak_mb for r in runs):,} MB peak "
        f"(the largest); target {TARGET}"
    )
    print(f"model hashes: {', '.join(sorted(hashes))} ({'the same' if len(hashes) == 1 else 'DIFFERENT'})")


if __name__ == "__main__":
    main()
