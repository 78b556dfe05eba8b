"""What the models read of a member's history: one `Event` per verified interaction document."""

from __future__ import annotations

import math
import sys
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

PURCHASE = "purchase"
RETURN = "return"
SUPPORT_TICKET = "support_ticket"


@dataclass(frozen=True, slots=True)
class Event:
    member: str  # "0x" + 64 hex digits, as the document names it
    kind: str  # purchase, return, support_ticket, email, visit
    at: datetime  # timezone-aware
    total: float = 0.0  # an invoice's amount (negative for a return)
    items: tuple[tuple[str, int], ...] = ()  # (stock code, quantity) of an invoice's lines
    country: str | None = None
    text: str | None = None  # a support ticket's words
    # each line's unit price and description, in the order of `items` (empty where a document has none)
    prices: tuple[float, ...] = ()
    descriptions: tuple[str, ...] = ()


@dataclass
class Shared:
    """Equal lines' values made one object across the events of a run (`from_document`): on Online Retail
    II 809,561 lines hold 55,432 distinct (stock code, quantity) pairs and 1,022 distinct prices, and a
    training run holds every event at once (a tuple per pair and a float per price were ~60 of the
    histories' 96 MB traced). Immutable values, equal and of the same type: nothing reads them otherwise."""

    pairs: dict[tuple[str, int], tuple[str, int]] = field(default_factory=dict)
    prices: dict[float, float] = field(default_factory=dict)

    def pair(self, code: str, quantity: int) -> tuple[str, int]:
        pair = (code, quantity)
        return self.pairs.setdefault(pair, pair)

    def price(self, value: float) -> float:
        # not a zero (-0.0 equals 0.0 and would come back as the other) nor a NaN (equal to nothing)
        if value == 0.0 or math.isnan(value):
            return value
        return self.prices.setdefault(value, value)


def from_document(document: Mapping[str, Any], shared: Shared | None = None) -> Event:
    """An event from a committed interaction document (its layout: `api/evidence/documents.py`); with
    `shared`, equal lines' values are one object (the same event, held in less memory)."""
    data = document.get("data") or {}
    lines = data.get("lines") or ()
    country = data.get("country")
    if shared is not None and lines:
        # `Shared.pair` and `Shared.price` inline (a call per line was most of what sharing cost)
        pair, price = shared.pairs.setdefault, shared.prices.setdefault
        codes = [(sys.intern(str(line["stockCode"])), int(line["quantity"])) for line in lines]
        items = tuple(pair(p, p) for p in codes)
        # a zero (-0.0 equals 0.0 and would come back as the other) and a NaN (v != v) are left as they come
        values = [float(line.get("price") or 0.0) for line in lines]
        prices = tuple(v if v == 0.0 or v != v else price(v, v) for v in values)
    else:
        items = tuple((sys.intern(str(line["stockCode"])), int(line["quantity"])) for line in lines)
        prices = tuple(float(line.get("price") or 0.0) for line in lines)
    # interned: a few thousand stock codes and countries repeat over hundreds of thousands of lines, and
    # a training run holds every event at once (on Online Retail II one str each was ~40 MB)
    return Event(
        member=sys.intern(document["member"]),
        kind=sys.intern(document["kind"]),
        at=datetime.fromisoformat(document["occurredAt"]),
        total=float(data.get("total") or 0.0),
        items=items,
        country=sys.intern(country) if isinstance(country, str) else country,
        text=data.get("text"),
        prices=prices,
        # a catalogue repeats a few thousand descriptions over a million lines: one string each
        descriptions=tuple(sys.intern(str(line.get("description") or "")) for line in lines),
    )


def by_member(events: Iterable[Event]) -> dict[str, list[Event]]:
    """Each member's events, oldest first (ties in document order)."""
    grouped: dict[str, list[Event]] = defaultdict(list)
    for event in events:
        grouped[event.member].append(event)
    for history in grouped.values():
        history.sort(key=lambda e: e.at)
    return dict(grouped)
