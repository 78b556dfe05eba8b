"""What one eth_getLogs costs the node: time and the node's CPU by window of blocks and by filter.

Run from the project root, against a home that holds an import and the node it was made on (e.g. the
one `import_scaling.py --sizes 100000 --keep DIR` leaves running):

    .venv/bin/python benchmarks/log_reads.py --home DIR/home-100000 --anvil-pid PID [--windows 1,4,16,64]

For each filter verification reads (the partner's earns, its consents as controller, its enrolments,
its heads) and for each window size, the whole history is read a window at a time: the calls made,
the events they returned, the wall seconds of the calls alone (the JSON-RPC round trip and parsing of
the answer as text), the node's CPU seconds over them (from /proc, when its pid is given) and the
seconds this process took to make `RawLog`s of them as `Chain.raw_logs` does. Then the same per block:
what a call of one block costs with and without events matching, to split a call's cost into a fixed
part, a per-block part and a per-event part.
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

if importlib.util.find_spec("ledger") is None:  # a bare checkout, without the editable install
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from eth_utils import event_abi_to_log_topic
from rich.console import Console
from rich.table import Table

from benchmarks.machine import cpu_seconds, load, machine_table

console = Console(width=None if sys.stdout.isatty() else 140)


def topic(event: Any) -> str:
    return "0x" + bytes(event_abi_to_log_topic(event().abi)).hex()


def word(address: str) -> str:
    return "0x" + bytes(12).hex() + address[2:].lower()


def filters(crm: Any, partner: str) -> dict[str, dict[str, Any]]:
    """The filters verify --all reads the whole history with, named."""
    coalition = crm.coalition
    with crm.unit_of_work() as db:
        address = crm.partner(db, partner).address
    loyalty, consent = coalition.loyalty, coalition.consent
    members, anchor = coalition.members, coalition.anchor
    return {
        "earns of the partner": {
            "address": loyalty.contract.address,
            "topics": [topic(loyalty.contract.events.PointsEarned), None, word(address)],
        },
        "consents, controller": {
            "address": consent.contract.address,
            "topics": [topic(consent.contract.events.ConsentRecorded), None, word(address)],
        },
        "enrolments, home": {
            "address": members.contract.address,
            "topics": [topic(members.contract.events.MemberEnrolled), None, word(address)],
        },
        "heads of the partner": {
            "address": anchor.contract.address,
            "topics": [topic(anchor.contract.events.BatchAnchored), None, word(address)],
        },
        "earns, address only": {"address": loyalty.contract.address},
    }


def walk(backend: Any, base: dict[str, Any], latest: int, span: int, pid: int | None) -> dict[str, float]:
    """The whole history (blocks 0..latest) read `span` blocks at a time."""
    from ledger.chain import RawLog

    calls = events = 0
    rpc = decode = 0.0
    cpu_before = cpu_seconds(pid)
    first = 0
    while first <= latest:
        last = min(latest, first + span - 1)
        started = time.perf_counter()
        entries: Any = backend.get_logs_json(base | {"fromBlock": first, "toBlock": last})
        rpc += time.perf_counter() - started
        started = time.perf_counter()
        for e in entries:
            RawLog(
                [bytes.fromhex(t[2:]) for t in e["topics"]],
                bytes.fromhex(e["data"][2:]),
                int(e["blockNumber"], 16),
                bytes.fromhex(e["transactionHash"][2:]),
            )
        decode += time.perf_counter() - started
        calls += 1
        events += len(entries)
        first = last + 1
    cpu_after = cpu_seconds(pid)
    node = (cpu_after - cpu_before) if cpu_before is not None and cpu_after is not None else math_nan()
    return {"calls": calls, "events": events, "rpc": rpc, "decode": decode, "node": node}


def math_nan() -> float:
    return float("nan")


def per_block(backend: Any, base: dict[str, Any], blocks: Sequence[int], rounds: int) -> list[float]:
    """Median seconds of a one-block call at each of `blocks`."""
    found = []
    for block in blocks:
        times = []
        for _ in range(rounds):
            started = time.perf_counter()
            backend.get_logs_json(base | {"fromBlock": block, "toBlock": block})
            times.append(time.perf_counter() - started)
        found.append(statistics.median(times))
    return found


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--home", type=Path, required=True, help="a home holding an import, its node running")
    parser.add_argument("--partner", default="acme", help="the partner whose history is read (acme)")
    parser.add_argument("--anvil-pid", type=int, help="the node's pid, for its CPU seconds (from /proc)")
    parser.add_argument(
        "--windows",
        type=lambda text: [int(s) for s in text.split(",")],
        default=[1, 4, 16, 64, 256, 0],
        metavar="N,N,...",
        help="window sizes in blocks, 0 for the whole history in one call (default: 1,4,16,64,256,0)",
    )
    parser.add_argument("--only", help="only the filters whose name contains this")
    args = parser.parse_args(argv)

    from api.usecases.home import open_crm

    crm = open_crm(args.home)
    try:
        backend: Any = crm.coalition.chain.backend  # an RpcBackend: get_logs_json
        latest = crm.coalition.block_number()
        rows = [("Home", str(args.home)), ("Latest block", f"{latest:,}"), ("Node pid", str(args.anvil_pid))]
        console.print(machine_table("Machine and node", rows))
        table = Table(title="The whole history, a window at a time", title_justify="left")
        for column in (
            "filter",
            "window",
            "calls",
            "events",
            "wall s (calls)",
            "ms per call",
            "node CPU s",
            "RawLogs s",
            "load",
        ):
            table.add_column(column, justify="right")
        named = filters(crm, args.partner)
        for name, base in named.items():
            if args.only and args.only not in name:
                continue
            for span in args.windows:
                result = walk(backend, base, latest, span or latest + 1, args.anvil_pid)
                table.add_row(
                    name,
                    "all" if not span else f"{span:,}",
                    f"{result['calls']:,.0f}",
                    f"{result['events']:,.0f}",
                    f"{result['rpc']:.2f}",
                    f"{1000 * result['rpc'] / result['calls']:.1f}",
                    f"{result['node']:.2f}",
                    f"{result['decode']:.2f}",
                    load().split(" / ")[0],
                )
        console.print(table)

        # one block's call: empty of matches, or full of them
        earns = named["earns of the partner"]
        sample = list(range(max(1, latest - 40), latest + 1, 4))
        counts = [len(backend.get_logs_json(earns | {"fromBlock": b, "toBlock": b})) for b in sample]
        seconds = per_block(backend, earns, sample, 3)
        table = Table(title="One block per call, earns of the partner (median of 3)", title_justify="left")
        for column in ("block", "events", "ms"):
            table.add_column(column, justify="right")
        for block, count, took in zip(sample, counts, seconds, strict=True):
            table.add_row(f"{block:,}", f"{count:,}", f"{1000 * took:.1f}")
        console.print(table)
        console.print(f"[dim]load average now {load()}[/]")
    finally:
        crm.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
