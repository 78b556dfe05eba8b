"""What a `ledgercrm` command pays before it does anything: the imports, layer by layer.

Each row imports one more layer in a fresh interpreter (`python -c "import ..."`), `--rounds` times
(3), and shows the median wall and CPU seconds (wait4: user + system), the peak RSS and the load
average; the last rows are `ledgercrm --help` and `ledgercrm decision verify --help` as processes. The
difference between two rows is what the later layer adds. Then the heaviest top-level packages of the
`decision verify` path by their own import time (`python -X importtime`, one run).

    .venv/bin/python benchmarks/startup.py [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

CLI = str(Path(sys.executable).with_name("ledgercrm"))
# each layer with what `decision verify` imports on its way (since it reads the chain without web3:
# api/usecases/home_open.py, ledger/reader.py), then what a command that signs and sends adds
OPEN = "import api.cli.root, api.usecases.home_open, ledger.reader"
VERIFY = "import api.cli.root, api.usecases.home_open, api.usecases.decision_verification"
SENDS = "import api.cli.root, api.usecases.home, api.usecases.decisions"
LAYERS = (
    ("the interpreter", "pass"),
    ("api.cli.root (every command's parser: typer, rich)", "import api.cli.root"),
    ("+ sqlalchemy and sqlmodel (the store)", "import api.cli.root, sqlmodel"),
    ("+ offchain.models (the store's tables)", "import api.cli.root, offchain.models"),
    ("+ the home opened to verify, the JSON-RPC reader", OPEN),
    ("+ api.usecases.decision_verification (--auditor: all)", VERIFY),
    ("+ numpy and scipy.special (a full run's features)", VERIFY + ", scipy.special"),
    ("a command that sends: + web3, eth_account, its home", SENDS),
)  # fmt: skip


def run(command: list[str]) -> tuple[float, float, int]:
    start = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT)
    _, status, usage = os.wait4(process.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(command)} failed")
    return time.perf_counter() - start, usage.ru_utime + usage.ru_stime, usage.ru_maxrss // 1024


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    from rich.console import Console
    from rich.table import Table

    from benchmarks.machine import load, machine_table

    console = Console(width=160)
    console.print(machine_table("Machine", [("Rounds", str(args.rounds))]))
    table = Table("imports", "wall s", "CPU s", "peak MB", "load", title="Start-up, layer by layer (medians)")
    commands = [(label, [sys.executable, "-c", code]) for label, code in LAYERS] + [
        ("ledgercrm --help", [CLI, "--help"]),
        ("ledgercrm decision verify --help", [CLI, "decision", "verify", "--help"]),
    ]
    for label, command in commands:
        runs = [run(command) for _ in range(args.rounds)]
        table.add_row(
            label,
            f"{statistics.median(r[0] for r in runs):.2f}",
            f"{statistics.median(r[1] for r in runs):.2f}",
            str(max(r[2] for r in runs)),
            load().split(" / ")[0],
        )
    console.print(table)

    found = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", LAYERS[-2][1]], cwd=ROOT, capture_output=True, text=True
    ).stderr
    own: dict[str, int] = {}
    for line in found.splitlines():
        match = re.match(r"import time:\s+(\d+) \|\s+\d+ \|\s*(\S+)", line)
        if match:
            top = match[2].split(".")[0]
            own[top] = own.get(top, 0) + int(match[1])
    table = Table(
        "package", "own import time s", title="The decision verify path: the heaviest packages (one run)"
    )
    for name, micros in sorted(own.items(), key=lambda kv: -kv[1])[:15]:
        table.add_row(name, f"{micros / 1e6:.3f}")
    table.add_row("(all)", f"{sum(own.values()) / 1e6:.3f}")
    console.print(table)


if __name__ == "__main__":
    main()
