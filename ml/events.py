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
    texts: dict[str, str] = field(default_factory=dict)  # each description, interned

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
        items, prices, descriptions = _shared_lines(lines, shared)
    else:
        items = tuple((sys.intern(str(line["stockCode"])), int(line["quantity"])) for line in lines)
        prices = tuple(float(line.get("price") or 0.0) for line in lines)
        # a catalogue repeats a few thousand descriptions over a million lines: one string each
        descriptions = tuple(sys.intern(str(line.get("description") or "")) for line in lines)
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
        descriptions=descriptions,
    )


_NUMBERS = (float, int)


def _shared_lines(
    lines: Iterable[Mapping[str, Any]], shared: Shared
) -> tuple[tuple[tuple[str, int], ...], tuple[float, ...], tuple[str, ...]]:
    """Each line's (code, quantity) pair, price and description as `from_document` makes them without
    `shared`, as `shared`'s one object each. A line's values are looked up as they come from the document:
    a value equal to a stored one converts to it (a str equal to a code is that code; an int or a float
    equal to a stored int or float converts to it), so the str(), int(), float() and intern of every
    line are made once per distinct value (on Online Retail II, 809,561 lines: 1.0-1.1 -> 0.8-0.9 CPU s)."""
    pairs, known_prices, texts = shared.pairs, shared.prices, shared.texts
    intern = sys.intern
    items: list[tuple[str, int]] = []
    prices: list[float] = []
    descriptions: list[str] = []
    for line in lines:
        code, quantity = line["stockCode"], line["quantity"]
        # looked up only as JSON gives them: any other value (a list, say) is converted as without sharing
        pair = pairs.get((code, quantity)) if type(code) is str and type(quantity) is int else None
        if pair is None:
            pair = (intern(str(code)), int(quantity))
            pair = pairs.setdefault(pair, pair)
        items.append(pair)
        raw = line.get("price")
        value = known_prices.get(raw) if raw and type(raw) in _NUMBERS else None
        if value is None:
            value = float(raw or 0.0)
            # a zero (-0.0 equals 0.0 and would come back as the other) and a NaN (v != v) as they come
            if not (value == 0.0 or value != value):
                value = known_prices.setdefault(value, value)
        prices.append(value)
        text = line.get("description")
        described = texts.get(text) if isinstance(text, str) else None
        if described is None:
            described = intern(str(text or ""))
            texts.setdefault(described, described)
        descriptions.append(described)
    return tuple(items), tuple(prices), tuple(descriptions)


def by_member(events: Iterable[Event]) -> dict[str, list[Event]]:
    """Each member's events, oldest first (ties in document order)."""
    grouped: dict[str, list[Event]] = defaultdict(list)
    for event in events:
        grouped[event.member].append(event)
    for history in grouped.values():
        history.sort(key=lambda e: e.at)
    return dict(grouped)
