"""How long work reports its progress: `progress(phase, done, total)`, total None while unknown. The
CLI shows it as Rich bars on a terminal and as plain lines elsewhere."""

from __future__ import annotations

from collections.abc import Callable

Progress = Callable[[str, int, int | None], None]


def no_progress(phase: str, done: int, total: int | None) -> None:
    """A `Progress` that shows nothing."""
