"""`Idempotency-Key` on writes, as the IETF draft (httpapi-idempotency-key-header) describes: the same
key with the same request answers the first answer again; the same key with another request is 422;
a key whose first request is still being answered is 409. Kept in the store, per credential."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.routing import APIRoute

from api.http.deps import SAFE_METHODS, credential_id
from api.http.problems import problem
from offchain.repositories import idempotency

HEADER = "Idempotency-Key"
REPLAYED = "Idempotent-Replayed"
_KEPT_HEADERS = ("content-type", "location")


class IdempotentRoute(APIRoute):
    """A route whose writes honour `Idempotency-Key`."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def run(request: Request) -> Response:
            key = request.headers.get(HEADER)
            if request.method in SAFE_METHODS or key is None:
                return await handler(request)
            if not 1 <= len(key) <= 255 or not key.isprintable():
                return problem(
                    400, "bad-request", "Bad request", f"{HEADER} is 1 to 255 printable characters", request
                )
            crm = request.app.state.crm
            credential = credential_id(request) or "anonymous"
            body = await request.body()
            digest = hashlib.sha256(
                b"\0".join(
                    (
                        request.method.encode(),
                        str(request.url.path).encode(),
                        request.url.query.encode(),
                        body,
                    )
                )
            ).digest()

            def claim() -> Any:
                with crm.unit_of_work() as db:
                    earlier = idempotency.claim(db, credential, key, digest)
                    if earlier is None:
                        return None
                    return (earlier.request_hash, earlier.status_code, earlier.headers_json, earlier.body)

            earlier = await run_in_threadpool(claim)
            if earlier is not None:
                request_hash, status_code, headers_json, stored = earlier
                if request_hash != digest:
                    return problem(
                        422,
                        "idempotency-key-reused",
                        "Idempotency key reused",
                        f"this {HEADER} was used for another request: use a new key for a new request",
                        request,
                    )
                if status_code is None:
                    return problem(
                        409,
                        "idempotency-in-flight",
                        "Request in progress",
                        f"the first request with this {HEADER} is still being answered; try again shortly",
                        request,
                    )
                headers = json.loads(headers_json or "{}")
                headers[REPLAYED] = "true"
                return Response(stored or b"", status_code=status_code, headers=headers)

            def release() -> None:
                with crm.unit_of_work() as db:
                    idempotency.release(db, credential, key)

            try:
                response = await handler(request)
            except BaseException:
                await run_in_threadpool(release)  # refused or failed: nothing to replay, the key is free
                raise
            if response.status_code >= 500 or response.status_code in (401, 429):
                await run_in_threadpool(release)
                return response
            kept = {k: v for k, v in response.headers.items() if k in _KEPT_HEADERS}

            def answer() -> None:
                with crm.unit_of_work() as db:
                    idempotency.answer(
                        db, credential, key, response.status_code, json.dumps(kept), bytes(response.body)
                    )

            await run_in_threadpool(answer)
            return response

        return run
