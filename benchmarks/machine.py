"""The header every benchmark prints first: what machine, software and load its figures come from."""

from __future__ import annotations

import os
import platform
from collections.abc import Iterable
from pathlib import Path

from rich.table import Table


def load() -> str:
    """The 1/5/15-minute load averages: other work on the machine skews every timing."""
    try:
        return " / ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "unknown"


def cpu_seconds(pid: int | None) -> float | None:
    """A process's user + system CPU seconds so far, from /proc; None for no process, or once it is gone
    (anvil's, a child's: processes whose `wait4` this one does not get)."""
    if pid is None:
        return None
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_table(title: str, rows: Iterable[tuple[str, str]]) -> Table:
    """Platform, CPUs, Python and the load average, then the benchmark's own `rows` (label, value)."""
    table = Table(title=title, show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column()
    table.add_row("Platform", f"{platform.platform()} ({platform.machine()})")
    table.add_row("CPUs", str(os.cpu_count()))
    table.add_row("Python", f"{platform.python_implementation()} {platform.python_version()}")
    for label, value in rows:
        table.add_row(label, value)
    table.add_row("Load average", load())
    return table
