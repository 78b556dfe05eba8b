"""The columnar libraries the Online Retail II reader could parse with, on the real file: each run is one
process that gunzips the file, parses every column as text and dictionary-encodes each (its distinct
values and each row's code: what api/importers/columnar.py needs of a library), timed whole with
getrusage (user + system CPU of every thread, the library's import included) and its peak RSS.

`none` is the floor of the lot (the interpreter and the gunzip alone). The libraries run alternately,
`--rounds` times each, and the medians are printed with the load average. pandas is in the project's
venv; polars is the project's choice; pyarrow is not a dependency: install it aside to compare,
e.g. `.venv/bin/python -m pip install --target /tmp/arrow pyarrow` and `PYTHONPATH=/tmp/arrow`.

    .venv/bin/python benchmarks/columnar_candidates.py [--rounds 3] [--data PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared/data/online_retail_II.csv.gz"

CHILD = """
import gzip, io, json, resource, sys
library, path = sys.argv[1], sys.argv[2]
data = gzip.decompress(open(path, "rb").read())
if library == "pandas":
    import pandas as pd
    frame = pd.read_csv(io.BytesIO(data), dtype=object, keep_default_na=False, na_filter=False)
    encoded = [pd.factorize(frame[name].to_numpy(), sort=False) for name in frame.columns]
    distinct = [len(values) for _, values in encoded]
elif library == "pyarrow":
    import pyarrow as pa, pyarrow.compute as pc, pyarrow.csv as pcsv
    names = data[: data.index(b"\\n")].decode().split(",")
    table = pcsv.read_csv(
        io.BytesIO(data),
        convert_options=pcsv.ConvertOptions(
            column_types={name: pa.string() for name in names}, strings_can_be_null=False
        ),
        parse_options=pcsv.ParseOptions(newlines_in_values=True),
    )
    encoded = [pc.dictionary_encode(table.column(name).combine_chunks()) for name in names]
    codes = [column.indices.to_numpy() for column in encoded]
    distinct = [len(column.dictionary.to_pylist()) for column in encoded]
elif library == "polars":
    import polars as pl
    frame = pl.read_csv(data, infer_schema=False, empty_string_is_null=False)
    distinct = []
    for name in frame.columns:
        values = frame[name].unique(maintain_order=True)
        codes = frame[name].cast(pl.Enum(values)).to_physical().to_numpy()
        distinct.append(len(values.to_list()))
else:
    distinct = []
used = resource.getrusage(resource.RUSAGE_SELF)
cpu, rss = used.ru_utime + used.ru_stime, used.ru_maxrss / 1024
print(json.dumps({"cpu": cpu, "rss_mb": rss, "distinct": distinct}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    args = parser.parse_args()
    runs: dict[str, list[dict[str, float]]] = {}
    for _ in range(args.rounds):
        for library in ("none", "pandas", "pyarrow", "polars"):
            done = subprocess.run(
                [sys.executable, "-c", CHILD, library, str(args.data)], capture_output=True, text=True
            )
            if done.returncode != 0:
                print(f"{library}: {done.stderr.strip().splitlines()[-1]}")
                continue
            figures = json.loads(done.stdout)
            figures["load"] = os.getloadavg()[0]
            runs.setdefault(library, []).append(figures)
            cpu, rss = figures["cpu"], figures["rss_mb"]
            print(f"{library:8} CPU {cpu:.2f} s  peak RSS {rss:.0f} MB  distinct {figures['distinct']}")
    print(f"\nmedians of {args.rounds}, alternating:")
    for library, figures in runs.items():
        loads = [f["load"] for f in figures]
        print(
            f"{library:8} CPU {statistics.median(f['cpu'] for f in figures):.2f} s"
            f"  peak RSS {statistics.median(f['rss_mb'] for f in figures):.0f} MB"
            f"  load {min(loads):.2f}-{max(loads):.2f}"
        )


if __name__ == "__main__":
    main()
