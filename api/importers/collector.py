"""The garbage collector during bulk work (an import, its reader process).

An import allocates millions of short-lived objects (rows, tuples, documents) and keeps almost none in
reference cycles, while the modules loaded before it (web3, SQLAlchemy, pydantic) leave a few hundred
thousand long-lived objects that every full collection walks again. Measured on the Online Retail II
import: 1.9 s of collections in the importing process and 0.6 s in its reader, against 0.5 s and 0.2 s
with the objects alive at the start frozen out of collection (`gc.freeze`) and collections of the
youngest generation made rarer. Cycles are still collected, only later.
"""

from __future__ import annotations

import atexit
import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

BULK_THRESHOLDS = (10_000, 50, 100)
"""gc thresholds while bulk work runs (CPython's default: 700, 10, 10)."""

IMPORT_THRESHOLDS = (50_000, 20, 100)
"""gc thresholds of an import's process: its chunks hold thousands of rows, documents and tuples for a
few tenths of a second, and a young collection every 10,000 allocations walked them again and again
while finding almost nothing to free (Online Retail II: 357 collections, 0.17 CPU s, freeing 3,753
objects; with these, 0.05 CPU s). Cycles are still collected; at most 50,000 more objects wait for it."""


# The collector is the process's: blocks that overlap (a server's import job and a scoring job, each in
# its own thread, or one inside another) tune it once, and the last to end puts it back. Without the
# count, the first to end unfroze everything under the other, and one that began inside another saved
# the bulk thresholds as "before" and left them in place for good.
# And what was frozen before the first block began stays frozen after the last: the `ledgercrm` script
# freezes what its imports made (api/cli/__init__.py), and unfreezing at the end of a score would hand
# all of it back to the collector for the rest of the process.
_lock = threading.Lock()
_open_blocks = 0
_saved: tuple[int, int, int] = gc.get_threshold()
_frozen_before = False


@contextmanager
def bulk_collection(thresholds: tuple[int, int, int] = BULK_THRESHOLDS) -> Iterator[None]:
    """Collect garbage as bulk work needs: what is alive now is frozen (never walked again until the
    block ends) and the youngest generation is collected every 10,000 allocations instead of 700 (or as
    `thresholds` say; the first of blocks that overlap sets them). The thresholds and the freeze are
    undone when the block ends, however it ends (when the last of blocks that overlap ends)."""
    global _open_blocks, _saved, _frozen_before
    with _lock:
        if _open_blocks == 0:
            _saved = gc.get_threshold()
            _frozen_before = gc.get_freeze_count() > 0
            gc.freeze()
            gc.set_threshold(*thresholds)
        _open_blocks += 1
    try:
        yield
    finally:
        with _lock:
            _open_blocks -= 1
            if _open_blocks == 0:
                gc.set_threshold(*_saved)
                if not _frozen_before:
                    gc.unfreeze()


def no_collection_at_exit() -> None:
    """Skip the collection CPython runs over every object when the process ends, which after an import
    walks its whole heap (0.4 s after the Online Retail II import): everything is frozen out of it at
    exit instead. Nothing is lost: objects are still freed by reference counting as modules are torn
    down, and the OS takes back the rest; only objects in reference cycles are not finalized, and an
    import closes what it opened (store, key store, reader process) before it returns."""
    atexit.register(gc.freeze)
