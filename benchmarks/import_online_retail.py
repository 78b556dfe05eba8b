"""The full Online Retail II import on the in-process chain and on anvil, against the bare floor.

For each chain: a fresh home (SQLite store and key store in a temp folder), partner `retail`, then
`import_online_retail` (customers, loyalty consent on chain, one interaction per invoice, points on chain,
everything anchored) in a child process, so that each run's peak RSS is its own. Then `verify_all` in the
same child, timed separately. The floor (stdlib: CSV -> per-invoice JSON -> SQLite) runs in its own child.

    .venv/bin/python benchmarks/import_online_retail.py [--chains memory anvil] [--rounds N] [--data PATH]
                                                        [--plot PATH]

On a shared machine the floor itself varies by a third from one run to the next, so one pair of runs
gives a noisy ratio. `--rounds N` repeats floor-then-imports N times, each import against the floor of its
own round, and reports every round's ratio and their median (verify and the re-import run in round 1).

A bar chart of each run's time by phase next to the floor goes to benchmarks/out/import_online_retail.png.
"""

from __future__ import annotations

import argparse
import importlib.util
import multiprocessing
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path
from queue import Empty
from typing import Any

from rich.console import Console
from rich.table import Table

from api.principal import Principal

P = Principal.of_partner

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "online_retail_II.csv.gz"
PLOT = Path(__file__).resolve().parent / "out" / "import_online_retail.png"
console = Console(width=130)  # wide tables stay readable in logs and pipes


def _peak_rss_mb(who: int = resource.RUSAGE_SELF) -> float:
    return resource.getrusage(who).ru_maxrss / 1024  # Linux reports KiB


def _floor(path: str, queue: Any) -> None:
    from benchmarks.floor import floor_import

    with tempfile.TemporaryDirectory() as folder:
        seconds, invoices = floor_import(Path(path), Path(folder) / "floor.db")
    queue.put({"seconds": seconds, "invoices": invoices, "rss": _peak_rss_mb()})


def _import(chain: str, path: str, full: bool, queue: Any) -> None:
    from api.context import Crm
    from api.evidence.verification import verify_all
    from api.settings import Settings
    from api.usecases.imports import import_online_retail
    from api.usecases.partners import register_partner
    from ledger.anvil import free_port, start_anvil
    from ledger.backends import Backend, EthTesterBackend, RpcBackend
    from ledger.coalition import Coalition

    process = None
    try:
        backend: Backend
        if chain == "anvil":
            port = free_port()
            process = start_anvil(port)
            backend = RpcBackend(f"http://127.0.0.1:{port}")
        else:
            backend = EthTesterBackend()
        coalition = Coalition.deploy(backend, founders=backend.accounts[:1])
        with tempfile.TemporaryDirectory() as home:
            crm = Crm.open(Settings(environment="development", home=Path(home)), coalition)
            try:
                register_partner(crm, "retail", backend.accounts[0])
                start = time.perf_counter()
                report = import_online_retail(crm, P("retail"), path)
                result: dict[str, Any] = {
                    "seconds": time.perf_counter() - start,
                    "rss": _peak_rss_mb(),
                    # the import reads the file in a child process of its own (api/importers/background.py)
                    "rss_reader": _peak_rss_mb(resource.RUSAGE_CHILDREN),
                    "report": report.as_dict(),
                }
                if full:  # later rounds only want the import's time
                    start = time.perf_counter()
                    verified = verify_all(crm, "retail")
                    result |= {
                        "verify_seconds": time.perf_counter() - start,
                        "verified": len(verified.results),
                        "verify_ok": verified.ok,
                    }
                    start = time.perf_counter()
                    again = import_online_retail(crm, P("retail"), path)
                    result |= {
                        "again_seconds": time.perf_counter() - start,
                        "again_new": again.interactions_new + again.customers_new + again.point_events,
                        "store_mb": sum(f.stat().st_size for f in Path(home).iterdir() if f.is_file())
                        / 2**20,
                        "anchors_on_chain": coalition.anchor.batch_count(),
                    }
            finally:
                crm.close()
        queue.put(result)
    finally:
        if process is not None:
            process.terminate()
            process.wait(timeout=30)


def _run(target: Any, *args: Any) -> dict[str, Any]:
    """Run `target` in a fresh interpreter; its result, or the reason it died."""
    context = multiprocessing.get_context("spawn")
    queue: Any = context.Queue()
    child = context.Process(target=target, args=(*args, queue))
    child.start()
    while True:
        try:
            result: dict[str, Any] = queue.get(timeout=5)
            break
        except Empty:
            if not child.is_alive():
                return {"error": f"the child exited with code {child.exitcode} before reporting"}
    child.join()
    return result


def plot(floor: dict[str, Any], runs: dict[str, dict[str, Any]], path: Path) -> None:
    """One horizontal bar per run: the floor, then each chain's import split by phase, and its verify."""
    import matplotlib

    matplotlib.use("Agg")  # files only: no display on CI or over ssh
    import matplotlib.pyplot as plt

    done = {chain: run for chain, run in runs.items() if "error" not in run}
    labels = ["floor", *("eth-tester" if chain == "memory" else chain for chain in done)]
    figure, axes = plt.subplots(figsize=(11, 1.2 + 0.8 * len(labels)))
    axes.barh(0, floor["seconds"], color="black", label="floor (stdlib)")
    phases = list(next(iter(done.values()))["report"]["timings"]) if done else []
    colours = [*(f"C{i}" for i in range(len(phases))), "tab:cyan"]  # distinct from the floor's black
    for row, run in enumerate(done.values(), start=1):
        left = 0.0
        for i, phase in enumerate([*phases, "verify"]):
            width = run["verify_seconds"] if phase == "verify" else run["report"]["timings"][phase]
            if width:
                # one legend entry per phase, from the first chain only
                axes.barh(row, width, left=left, color=colours[i], label=phase if row == 1 else None)
            left += width
    axes.set_yticks(range(len(labels)), labels)
    axes.invert_yaxis()  # the floor on top
    axes.set(xlabel="seconds", title="Online Retail II import: time by phase, against the floor")
    axes.legend(fontsize="small", loc="center left", bbox_to_anchor=(1.01, 0.5))  # beside, never over a bar
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(figure)
    console.print(f"Plot: {path}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--chains", nargs="+", default=["memory", "anvil"], choices=["memory", "anvil"])
    parser.add_argument(
        "--rounds", type=int, default=1, help="floor-then-imports this many times (default 1)"
    )
    parser.add_argument("--plot", type=Path, default=PLOT, help=f"where the PNG goes (default: {PLOT})")
    args = parser.parse_args()
    if importlib.util.find_spec("matplotlib") is None:  # fail now, not after the runs
        console.print("[red]matplotlib is missing:[/] run scripts/setup.sh (it is a dev dependency)")
        sys.exit(1)
    if args.rounds < 1:
        parser.error("--rounds is at least 1")
    if not args.data.is_file():
        console.print(f"[red]the data set is not at {args.data}[/] (see ../shared/data/README.md)")
        sys.exit(1)

    from benchmarks.machine import machine_table

    console.print(
        machine_table(
            "Machine and setup",
            [
                ("Data", str(args.data)),
                (
                    "Chains",
                    ", ".join("eth-tester (in process)" if c == "memory" else "anvil" for c in args.chains),
                ),
                ("Store", "SQLite (WAL) and key store in a fresh home per run"),
                ("Rounds", str(args.rounds)),
            ],
        )
    )
    floors: list[dict[str, Any]] = []
    rounds: list[dict[str, dict[str, Any]]] = []
    for number in range(1, args.rounds + 1):
        of = f"round {number}/{args.rounds}: " if args.rounds > 1 else ""
        with console.status(f"{of}floor: stdlib CSV -> per-invoice JSON -> SQLite"):
            floors.append(_run(_floor, str(args.data)))
        rounds.append({})
        for chain in args.chains:
            with console.status(f"{of}full import on {chain} (minutes)"):
                rounds[-1][chain] = _run(_import, chain, str(args.data), number == 1)
    floor, runs = floors[0], rounds[0]

    table = Table(title=f"Online Retail II import ({floor['invoices']:,} invoices with a customer)")
    table.add_column("run")
    for column in ("wall s", "interactions/s", "peak RSS MB", "x floor", "verify s", "verified/s"):
        table.add_column(column, justify="right")
    table.add_row(
        "floor (stdlib, no crypto, no chain)",
        f"{floor['seconds']:.1f}",
        f"{floor['invoices'] / floor['seconds']:,.0f}",
        f"{floor['rss']:.0f}",
        "1.0",
        "",
        "",
    )
    for chain, run in runs.items():
        if "error" in run:
            table.add_row(f"import on {chain}", f"[red]failed: {run['error']}[/]")
            continue
        report = run["report"]
        table.add_row(
            f"import on {'eth-tester (in process)' if chain == 'memory' else 'anvil'}",
            f"{run['seconds']:.1f}",
            f"{report['interactions_new'] / run['seconds']:,.0f}",
            f"{run['rss']:.0f} + reader {run['rss_reader']:.0f}",
            f"{run['seconds'] / floor['seconds']:.1f}",
            f"{run['verify_seconds']:.1f}",
            f"{run['verified'] / run['verify_seconds']:,.0f}",
        )
    console.print(table)

    for chain, run in runs.items():
        if "error" in run:
            continue
        report = run["report"]
        details = Table(title=f"{chain}: what was imported", show_header=False)
        for key in (
            "customers_new",
            "interactions_new",
            "consents_recorded",
            "point_events",
            "points_earned",
            "batches_anchored",
            "leaves_anchored",
            "rows_skipped_no_customer",
            "rows_repeated",
        ):
            details.add_row(key.replace("_", " "), f"{report[key]:,}")
        details.add_row("phases", ", ".join(f"{k} {v:.1f}s" for k, v in report["timings"].items() if v))
        details.add_row("verify --all", f"{run['verified']:,} checked, ok={run['verify_ok']}")
        details.add_row("re-import", f"{run['again_seconds']:.1f}s, {run['again_new']} new rows (idempotent)")
        details.add_row("store + key store on disk", f"{run['store_mb']:.0f} MB")
        details.add_row("anchor batches on chain", str(run["anchors_on_chain"]))
        console.print(details)
    if args.rounds > 1:
        _print_rounds(floors, rounds, args.chains)
    plot(floor, runs, args.plot)


def _print_rounds(
    floors: list[dict[str, Any]], rounds: list[dict[str, dict[str, Any]]], chains: list[str]
) -> None:
    """Each round's floor and imports, each import as a multiple of its own round's floor, and the medians."""
    table = Table(title="Rounds: each import against the floor measured just before it")
    table.add_column("round", justify="right")
    table.add_column("floor s", justify="right")
    for chain in chains:
        table.add_column(f"{chain} s (x floor)", justify="right")
    ratios: dict[str, list[float]] = {chain: [] for chain in chains}
    for number, (floor, runs) in enumerate(zip(floors, rounds, strict=True), start=1):
        cells = []
        for chain in chains:
            run = runs[chain]
            if "error" in run:
                cells.append(f"[red]failed: {run['error']}[/]")
                continue
            ratios[chain].append(run["seconds"] / floor["seconds"])
            cells.append(f"{run['seconds']:.1f} ({ratios[chain][-1]:.2f}x)")
        table.add_row(str(number), f"{floor['seconds']:.1f}", *cells)
    medians = [f"{statistics.median(r):.2f}x" if r else "" for r in ratios.values()]
    table.add_row("median", f"{statistics.median(f['seconds'] for f in floors):.1f}", *medians)
    console.print(table)


if __name__ == "__main__":
    main()
