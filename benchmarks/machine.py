"""The header every benchmark prints first: what machine, software and load its figures come from."""

from __future__ import annotations

import os
import platform
from collections.abc import Iterable

from rich.table import Table


def load() -> str:
    """The 1/5/15-minute load averages: other work on the machine skews every timing."""
    try:
        return " / ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "unknown"


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
