"""The Online Retail II import through the command line, one checkout of the code against another,
alternating: whole-process wall and CPU seconds of the CLI, its reader child and anvil, with the load.

    .venv/bin/python benchmarks/import_codes.py --code DIR[,DIR...] [--rounds 3] [--data PATH]

Each round runs one import per code in turn (so the codes share the machine's drift as evenly as a
shared machine allows), each on a fresh anvil and a fresh home (`init --chain`, `partner add retail`,
untimed), as `import_cli.py` does, without its floor and verifications. `--code` names checkouts whose
modules run the command (PYTHONPATH first on the path: a `git worktree` or `git archive` of another
commit in /tmp, byte-compiled first: `python -m compileall -q DIR`); '' is this checkout. The CLI's CPU
is its process's (wait4) less its reader child's (sampled from /proc while it runs). Medians per code
at the end, and each round's difference of every code from the first.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.import_cli import CLI, DEFAULT_DATA, timed_cpu  # noqa: E402  (after the path: a script)
from benchmarks.machine import cpu_seconds, load  # noqa: E402


def one_import(data: Path, code: str) -> dict[str, float]:
    from ledger.anvil import free_port, start_anvil

    env = dict(os.environ)
    if code:
        env["PYTHONPATH"] = code
    with tempfile.TemporaryDirectory(prefix="ledgercrm-codes-") as folder:
        port = free_port()
        anvil = start_anvil(port)
        try:
            home = ["--home", str(Path(folder) / "home")]
            init = [CLI, *home, "init", "--chain", f"http://127.0.0.1:{port}"]
            subprocess.run(init, check=True, capture_output=True, env=env)
            subprocess.run([CLI, *home, "partner", "add", "retail"], check=True, capture_output=True, env=env)
            at = os.getloadavg()[0]
            node_before = cpu_seconds(anvil.pid) or 0.0
            # run from the code's own folder: the reader child is `python -m api.importers.background`,
            # and `-m` puts the working folder first on its path, before PYTHONPATH (run from this
            # checkout, every code's reader was this checkout's)
            wall, peak, _, cpu, reader = timed_cpu(
                [CLI, *home, "import", "online-retail", str(data), "--partner", "retail"],
                cwd=Path(code) if code else ROOT,
                env=env,
            )
            node = (cpu_seconds(anvil.pid) or 0.0) - node_before
        finally:
            anvil.terminate()
            anvil.wait(timeout=30)
    return {"wall": wall, "cli": cpu - reader, "reader": reader, "anvil": node, "peak": peak, "load": at}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--code", default="", help="checkouts, comma-separated; '' is this one")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    args = parser.parse_args()
    if not args.data.exists():
        raise SystemExit(f"no data at {args.data} (see ../shared/data/README.md)")
    codes = args.code.split(",")
    print(f"load average at the start: {load()}")
    print("round  code                  wall s  CLI CPU s  reader CPU s  anvil CPU s  MB  load", flush=True)
    results: dict[str, list[dict[str, float]]] = {code: [] for code in codes}
    for number in range(1, args.rounds + 1):
        for code in codes:
            row = one_import(args.data, code)
            results[code].append(row)
            print(
                f"{number:>5}  {(code or 'this checkout')[-20:]:<20} {row['wall']:>7.2f} {row['cli']:>10.2f}"
                f" {row['reader']:>13.2f} {row['anvil']:>12.2f} {row['peak']:>4.0f}  {row['load']:.2f}",
                flush=True,
            )
    print(f"load average at the end: {load()}")
    for code, rows in results.items():
        medians = {key: statistics.median(r[key] for r in rows) for key in rows[0]}
        print(
            f"median  {(code or 'this checkout')[-20:]:<20} wall {medians['wall']:.2f} s, CLI"
            f" {medians['cli']:.2f}, reader {medians['reader']:.2f}, anvil {medians['anvil']:.2f} CPU s,"
            f" peak {medians['peak']:.0f} MB"
        )
    first = codes[0]
    for code in codes[1:]:
        cli = [r["cli"] - f["cli"] for r, f in zip(results[code], results[first], strict=True)]
        wall = [r["wall"] - f["wall"] for r, f in zip(results[code], results[first], strict=True)]
        print(
            f"{(code or 'this checkout')[-20:]} - {(first or 'this checkout')[-20:]}, each round: CLI CPU s"
            f" {', '.join(f'{d:+.2f}' for d in cli)} (median {statistics.median(cli):+.2f}); wall s"
            f" {', '.join(f'{d:+.2f}' for d in wall)} (median {statistics.median(wall):+.2f})"
        )


if __name__ == "__main__":
    main()
