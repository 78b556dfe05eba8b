"""eth_getLogs over a range of blocks, a window of blocks at a time: what both read paths share (the web3
one, `ledger.chain.Chain.raw_logs`, and the web3-free one, `ledger.reader.ChainReader.logs`). It imports
nothing but the standard library and `ledger.errors`, so `decision verify` stays without web3.

Two reasons for windows. One answer for a whole history was one JSON document of every event: the
50,000 members' enrolments or consents of a 1M import were ~150 MB of text and parsed objects at once,
for a list whose items take a fifth of that. And nodes refuse a range past a limit: Besu answers
"exceeds maximum RPC range limit" to a range of more than `--rpc-max-logs-range` blocks (5,000 by
default), other nodes and hosted gateways have limits of their own. So no window spans more than
`max_range()` blocks: LOG_RANGE_MAX, or `$LEDGERCRM_MAX_LOGS_RANGE` for a node whose limit is lower.

Below that cap a window adapts: it starts at LOG_WINDOW_FIRST blocks (or at the cap, where the caller
says so), is halved after an answer of more than LOG_WINDOW_EVENTS events and doubled after one of
under a quarter of that: a sparse history takes a few calls more, a dense one (anvil mines each batch
in a block of its own) holds a few thousand events at once. The windows cover the range exactly once,
oldest first, so their answers one after the other are the one request's answer, in its order."""

from __future__ import annotations

import os
from collections.abc import Iterator

from ledger.errors import BackendError

LOG_RANGE_MAX = 5000  # Besu's default --rpc-max-logs-range
LOG_RANGE_ENV = "LEDGERCRM_MAX_LOGS_RANGE"
LOG_WINDOW_FIRST = 4  # an earnBatch's block holds up to 2,000 events
LOG_WINDOW_EVENTS = 4000


def max_range() -> int:
    """The most blocks one eth_getLogs may span: `$LEDGERCRM_MAX_LOGS_RANGE` where it is set, else
    LOG_RANGE_MAX. Read on each history read, so a bad value fails that read (before any eth_getLogs
    is sent), in one line."""
    text = os.environ.get(LOG_RANGE_ENV, "").strip()
    if not text:
        return LOG_RANGE_MAX
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise BackendError(f"{LOG_RANGE_ENV} is {text!r}: it must be a whole number of blocks, 1 or more")
    return value


class BlockWindows:
    """The windows `(first, last)` (both included) of blocks `first` to `last`, oldest first; call
    `answered(n)` with the number of events of each window's answer to size the next."""

    def __init__(self, first: int, last: int, *, wide: bool = False) -> None:
        """`wide`: the first window is as wide as the cap, not LOG_WINDOW_FIRST blocks (for filters that
        name an event, whose answers are small)."""
        self.cap = max_range()
        self.first, self.last = first, last
        self.span = self.cap if wide else min(self.cap, max(1, LOG_WINDOW_FIRST))

    def __iter__(self) -> Iterator[tuple[int, int]]:
        first = self.first
        while first <= self.last:
            stop = min(self.last, first + self.span - 1)
            yield first, stop
            first = stop + 1

    def answered(self, events: int) -> None:
        if events > LOG_WINDOW_EVENTS:
            self.span = max(1, self.span // 2)
        elif events < LOG_WINDOW_EVENTS // 4:
            self.span = min(self.cap, self.span * 2)
