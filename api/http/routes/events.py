"""`GET /v1/events`: server-sent events of the chain's events about your customers, as they are mined
(consent given or withdrawn through any partner, points earned, redeemed or forfeited, erasure).

Each event's id is `<block>-<n>` (the n-th of your events in that block): a client that reconnects with
`Last-Event-ID` resumes right after it. `from_block` replays from a block; `until_block` and
`max_events` end the stream (without them it follows the chain until the client goes away).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Depends, Header, HTTPException, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.sse import EventSourceResponse, ServerSentEvent

from api.context import Crm
from api.errors import NotAllowed, Unauthenticated
from api.http.deps import CrmDep, PartnerDep, authenticate, needs
from api.http.problems import responses
from api.http.routes.common import hexid
from api.usecases import events

router = APIRouter(prefix="/v1", tags=["events"])
POLL_SECONDS = 1.0  # how often the chain is asked for new blocks
_EVENT_ID = re.compile(r"^(\d{1,18})-(\d{1,9})$")


def _resume(last_event_id: str | None, from_block: int | None) -> tuple[int | None, int]:
    """Where to start and how many of that block's events the client has: from `Last-Event-ID` (an id
    this stream gave), else from `from_block` (else from the next block mined)."""
    found = _EVENT_ID.match(last_event_id or "")
    if found is None:
        return from_block, 0
    return int(found.group(1)), int(found.group(2)) + 1


def _still_signed_in(request: Request, crm: Crm) -> bool:
    """Whether the request's credential still signs it in: a stream outlives the check made when it
    began, and a revoked key must not keep receiving events."""
    request.state.caller = None  # `authenticate` caches its answer on the request
    try:
        authenticate(request, crm)
    except (Unauthenticated, NotAllowed):
        return False
    return True


def _wants_a_stream(request: Request) -> None:
    # checked before the stream starts: once it has, an error can no longer be answered as a problem
    if "text/event-stream" not in request.headers.get("accept", ""):
        raise HTTPException(406, "this route answers with an event stream: send Accept: text/event-stream")


@router.get(
    "/events",
    response_class=EventSourceResponse,
    responses={
        200: {"description": "an event stream", "content": {"text/event-stream": {}}},
        **responses(401, 403, 406, 422),
    },
    **needs("events:read"),
)
async def stream(
    request: Request,
    who: PartnerDep,
    crm: CrmDep,
    from_block: Annotated[int | None, Query(ge=0, le=2**62, description="replay from this block")] = None,
    until_block: Annotated[int | None, Query(ge=0, le=2**62, description="end after this block")] = None,
    max_events: Annotated[int | None, Query(ge=1, le=1_000_000, description="end after this many")] = None,
    last_event_id: Annotated[str | None, Header(alias="Last-Event-ID", max_length=40)] = None,
    _stream: Annotated[None, Depends(_wants_a_stream)] = None,
) -> AsyncIterator[ServerSentEvent]:
    """The chain's events about your customers, as they are mined. Send `Accept: text/event-stream` (as
    every EventSource does): a stream that may never end is not answered to a client that did not ask
    for one."""
    cursor, skip = _resume(last_event_id, from_block)
    sent = 0
    first = True
    while True:
        if not first and not await run_in_threadpool(_still_signed_in, request, crm):
            return  # the key was revoked or expired (or the session ended) since the stream began
        first = False
        page = await run_in_threadpool(events.events_since, crm, who, cursor, until_block)
        seen: dict[int, int] = {}
        for event in page.events:
            n = seen.get(event.block_number, 0)
            seen[event.block_number] = n + 1
            if event.block_number == cursor and n < skip:
                continue  # the client had it before it reconnected
            yield ServerSentEvent(
                event=event.kind,
                id=f"{event.block_number}-{n}",
                data={
                    "kind": event.kind,
                    "member": hexid(event.member),
                    "block_number": event.block_number,
                    "partner": event.partner,
                    "purpose": event.purpose,
                    "expires_at": event.expires_at,
                    "amount": event.amount,
                },
            )
            sent += 1
            if max_events is not None and sent >= max_events:
                return
        cursor, skip = page.next_block, 0
        if until_block is not None and cursor > until_block:
            return
        if page.next_block <= page.head:
            continue  # caught up only part of the way (a read is bounded): read on at once
        if await request.is_disconnected():
            return
        await asyncio.sleep(POLL_SECONDS)
