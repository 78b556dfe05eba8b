"""The Online Retail II reader alone, in a process of its own: CPU seconds and peak RSS.

Two measurements, each in a fresh process of the checkout's own venv (so its imports count):
- `records`: `read_records` over the file, CPU seconds to its first invoice (the file read and checked
  whole) and to its end;
- `entries`: what the import's reader process runs (`api.importers.entries.piped_retail_entries`:
  the records made entries, each invoice's canonical bytes), CPU seconds to its first ReadStats (the
  item the importer waits for) and to its end, and the process's peak RSS.

CPU seconds are the process's user + system time from getrusage (every thread's), taken in the process
from its start, interpreter start-up excepted, with the collector tuned as the reader process tunes it
(`bulk_collection`). With `--against DIR` the same runs go on that checkout
too, alternating run by run (the machine's speed drifts over minutes), and the medians are printed side
by side with the load average seen.

`--check` instead reads the file both ways in this checkout, by columns (`read_records`) and by the row
loop (`read_rows`), and says whether every item, the stats at each item and the progress calls are equal.

    .venv/bin/python benchmarks/reader_parse.py [--rounds 5] [--data PATH] [--against /path/to/main]
    .venv/bin/python benchmarks/reader_parse.py --check [--data PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared/data/online_retail_II.csv.gz"

CHILD = """
import json, resource, sys
def cpu():
    used = resource.getrusage(resource.RUSAGE_SELF)
    return used.ru_utime + used.ru_stime
start = cpu()
mode, path = sys.argv[1], sys.argv[2]
from api.importers.collector import bulk_collection
from api.importers.online_retail import InvoiceRecord, ReadStats, read_records
first = None
with bulk_collection():  # as the reader process runs its source
    if mode == "records":
        for item in read_records(path):
            if first is None and isinstance(item, InvoiceRecord):
                first = cpu() - start
    else:
        from api.importers.entries import piped_retail_entries
        for item in piped_retail_entries(lambda *a: None, path):
            if first is None and isinstance(item, ReadStats):
                first = cpu() - start
print(json.dumps({"first": first, "end": cpu() - start,
                  "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def run(tree: Path, mode: str, data: Path) -> dict[str, float]:
    python = tree / ".venv" / "bin" / "python"
    done = subprocess.run(
        [str(python), "-c", CHILD, mode, str(data)], cwd=tree, capture_output=True, text=True, check=True
    )
    figures: dict[str, float] = json.loads(done.stdout)
    figures["load"] = os.getloadavg()[0]
    return figures


def check(data: Path) -> bool:
    """The file read both ways: equal items, stats at each item and progress calls."""
    from dataclasses import asdict

    from api.importers import columnar
    from api.importers.online_retail import ReadStats, read_records, read_rows

    taken = columnar.read_checked(data) is not None
    seen = []
    for read in (read_records, read_rows):
        events: list[object] = []
        stats = ReadStats()
        for item in read(data, stats=stats, progress=lambda *call, events=events: events.append(call)):
            events.append((item, asdict(stats)))
        events.append(asdict(stats))
        seen.append(events)
    same = seen[0] == seen[1]
    print(f"by columns: {taken}; {len(seen[0])} items and progress calls; the same both ways: {same}")
    return taken and same


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--against", type=Path, help="another checkout (with its .venv) run alternately")
    parser.add_argument("--check", action="store_true", help="read the file both ways here and compare")
    args = parser.parse_args()
    if args.check:
        raise SystemExit(0 if check(args.data) else 1)
    trees = {"this": ROOT} | ({"against": args.against.resolve()} if args.against else {})
    results: dict[tuple[str, str], list[dict[str, float]]] = {}
    for round_ in range(args.rounds):
        for mode in ("records", "entries"):
            # alternate which checkout goes first, so that neither always follows the other
            for name in list(trees)[:: 1 if round_ % 2 == 0 else -1]:
                figures = run(trees[name], mode, args.data)
                results.setdefault((name, mode), []).append(figures)
                print(
                    f"round {round_ + 1} {name:8} {mode:8} "
                    + " ".join(f"{k} {v:.2f}" for k, v in figures.items())
                )
    print(f"\nmedians of {args.rounds} (CPU s; peak RSS MB; load average 1 min over the runs):")
    for (name, mode), runs in sorted(results.items()):
        median = {key: statistics.median(r[key] for r in runs) for key in runs[0]}
        loads = [r["load"] for r in runs]
        print(
            f"{name:8} {mode:8} to first {median['first']:.2f}  to end {median['end']:.2f}"
            f"  rss {median['rss_mb']:.0f}  load {min(loads):.2f}-{max(loads):.2f}  ({trees[name]})"
        )


if __name__ == "__main__":
    main()
