"""Requests per credential (or per client address, before sign-in), with a moving window: over the
limit, 429 with `Retry-After`. The `limits` library keeps the counts in this process's memory."""

from __future__ import annotations

import math
import time

from limits import RateLimitItem, parse
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter


class RequestLimiter:
    def __init__(self, rate: str) -> None:
        self.item: RateLimitItem = parse(rate)
        self._limiter = MovingWindowRateLimiter(MemoryStorage())

    def admit(self, who: str) -> float | None:
        """None if `who` may send this request; else the seconds until it may send one."""
        if self._limiter.hit(self.item, who):
            return None
        reset_at, _remaining = self._limiter.get_window_stats(self.item, who)
        return max(1.0, math.ceil(reset_at - time.time()))
