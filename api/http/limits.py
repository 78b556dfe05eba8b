"""Requests per credential (or per client address, before sign-in), with a moving window: over the
limit, 429 with `Retry-After`. The `limits` library keeps the counts in this process's memory."""

from __future__ import annotations

import json
import math
import time
from typing import Any

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


class BodyLimit:
    """Refuse a request body larger than its limit, with a problem: at once when Content-Length says
    so, else as soon as the bytes read pass it. `larger` gives some path prefixes (uploads) their own."""

    def __init__(self, app: Any, default: int, larger: dict[str, int] | None = None) -> None:
        self.app, self.default, self.larger = app, default, larger or {}

    def limit(self, path: str) -> int:
        return next((size for prefix, size in self.larger.items() if path.startswith(prefix)), self.default)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit(scope["path"])
        declared = dict(scope.get("headers", [])).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await _too_large(scope, send, limit)
            return
        seen = 0
        answered = False

        async def counted() -> Any:
            nonlocal seen, answered
            if answered:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    # answer now, and tell the app the client left: whatever it sends after is dropped
                    answered = True
                    await _too_large(scope, send, limit)
                    return {"type": "http.disconnect"}
            return message

        async def guarded(message: Any) -> None:
            if not answered:
                await send(message)

        await self.app(scope, counted, guarded)


async def _too_large(scope: dict[str, Any], send: Any, limit: int) -> None:
    from api.http.problems import MEDIA_TYPE, TYPE_BASE

    body = json.dumps(
        {
            "type": TYPE_BASE + "too-large",
            "title": "Request too large",
            "status": 413,
            "detail": f"the request body is larger than this route accepts ({limit:,} bytes)",
            "instance": scope["path"],
        }
    ).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [(b"content-type", MEDIA_TYPE.encode()), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})
