"""The `ledgercrm` command line.

Every command that changes state works on a home folder (`--home`, env LEDGERCRM_HOME, default
./.ledgercrm) created by `init`. User mistakes end in one line on stderr and a non-zero exit, never a
traceback.

The commands live in `api.cli.root` (and its modules); this package loads it on first use, so that the
`ledgercrm` script (`main`) loads it without cycle collection."""

from __future__ import annotations

import gc
import os
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from api.cli.root import GROUPS as GROUPS
    from api.cli.root import PLAIN_PROGRESS_EVERY as PLAIN_PROGRESS_EVERY
    from api.cli.root import PlainProgress as PlainProgress
    from api.cli.root import app as app
    from api.cli.root import app_for as app_for

__all__ = ["GROUPS", "PLAIN_PROGRESS_EVERY", "PlainProgress", "app", "app_for", "main"]


def main() -> None:
    """The `ledgercrm` script. The command line's modules (typer, rich, every command's) load with the
    collector off: collections triggered by their allocations, in a process that has made no garbage
    yet, cost about 0.1 CPU s of a `decision verify` (benchmarks/README.md, `decision_verify.py`). It is
    on again before any command runs (`api.cli.common.short_lived` keeps it off for the few that end
    at once), with what the imports made frozen (gc.freeze).

    OpenBLAS, unless told otherwise, starts a thread per core when numpy loads, and they spin after
    each call: ~0.1 CPU s of a `decision verify` on two shared cores (1.00 -> 0.86 CPU s as a process,
    benchmarks/README.md). The project's native work runs on one thread anyway (`ml.training.fitting`);
    a setting of the user's own wins."""
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    collecting = gc.isenabled()
    gc.disable()
    try:
        from api.cli.root import main as run
    finally:
        # what the imports made lives as long as the process: frozen, later collections (of a command
        # that runs for hours as much as of one that ends at once) do not walk it again
        gc.freeze()
        if collecting:
            gc.enable()
    run()


def __getattr__(name: str) -> Any:
    if name in __all__:
        from api.cli import root

        return getattr(root, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
