"""The records importers produce: what a source system says happened, before the CRM seals any of it.

Money is `Decimal` here (exact sums for totals and points) and becomes a JSON number only in
`payload()`, the data an interaction commits to.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, ClassVar

from offchain.canonical import canonical_json, canonical_number, canonical_str
from offchain.kinds import InteractionKind


def line_json(*, description: bytes, price: bytes, quantity: bytes, stock_code: bytes) -> bytes:
    """A line's canonical JSON from its values' canonical bytes: the shape is fixed, so the keys are
    written in RFC 8785 order as they are."""
    return (
        b'{"description":'
        + description
        + b',"price":'
        + price
        + b',"quantity":'
        + quantity
        + b',"stockCode":'
        + stock_code
        + b"}"
    )


@dataclass(frozen=True, slots=True)
class Line:
    stock_code: str
    description: str
    quantity: int  # negative on a return
    price: Decimal  # per unit
    # Computed once per line object: a catalogue repeats a few tens of thousands of distinct lines over a
    # million (Online Retail II: 73k of 824k), and its reader makes equal lines one object, so an
    # invoice's total and serialization cost a lookup per line instead of arithmetic and encoding. Both
    # are plain slots, read as they are: a property or a method call per line of every invoice (824k
    # each) cost the reader ~0.2 CPU s more than the slot reads (0.09 for the bytes, ~0.1 for the amounts).
    amount: Decimal = field(init=False, repr=False, compare=False)  # quantity * price
    _json: bytes | None = field(default=None, init=False, repr=False, compare=False)  # see canonical()

    def __post_init__(self) -> None:
        object.__setattr__(self, "amount", self.quantity * self.price)

    def canonical(self) -> bytes:
        """`canonical_json(self.as_json())`, encoded on first use (it refuses what JSON cannot hold)."""
        json = self._json
        if json is None:
            json = line_json(
                description=canonical_str(self.description),
                price=canonical_number(float(self.price)),
                quantity=canonical_number(self.quantity),
                stock_code=canonical_str(self.stock_code),
            )
            object.__setattr__(self, "_json", json)
        return json

    def encoded(self, json: bytes) -> Line:
        """This line, its `canonical()` bytes given: `line_json` of its four values' own encodings
        (`canonical_str`, `canonical_number`), by a reader that encodes each distinct value once rather
        than once per line (api/importers/columnar.py: 12k values for 73k lines)."""
        object.__setattr__(self, "_json", json)
        return self

    def as_json(self) -> dict[str, Any]:
        # float(Decimal("2.95")) is the double nearest 2.95, whose shortest form is "2.95" again
        return {
            "stockCode": self.stock_code,
            "description": self.description,
            "quantity": self.quantity,
            "price": float(self.price),
        }


@dataclass(frozen=True, slots=True)
class InvoiceRecord:
    """One invoice of one customer: a purchase, or a return (a cancellation invoice, "C...")."""

    invoice: str  # the source's invoice number; unique per source, so the idempotency key
    customer_id: str  # the source's customer number, e.g. "13085"
    country: str  # as the source names it ("United Kingdom", "EIRE", ...)
    occurred_at: datetime  # timezone-aware
    kind: InteractionKind  # PURCHASE or RETURN
    lines: tuple[Line, ...]
    total: Decimal  # sum of the lines' amounts (negative for a return)

    @property
    def external_key(self) -> str:
        return self.invoice

    def payload(self) -> dict[str, Any]:
        """The interaction's data: the invoice as the source has it."""
        return {
            "invoice": self.invoice,
            "country": self.country,
            "lines": [line.as_json() for line in self.lines],
            "total": float(self.total),
        }

    def canonical_payload(self) -> bytes:
        """`canonical_json(self.payload())`, laid out here: the shape is fixed, so the keys are written in
        RFC 8785 order as they are and only the values go through the encoder, instead of a walk over a
        dict per line (the walk was most of a reader's time after the file; 824k lines in Online Retail
        II). tests/offchain/test_canonical_fast.py holds the two to the same bytes."""
        number = canonical_number
        # a line's bytes once made are in its slot (never empty: they start with "{")
        lines = b",".join([line._json or line.canonical() for line in self.lines])
        text = canonical_str
        return (
            b'{"country":'
            + text(self.country)
            + b',"invoice":'
            + text(self.invoice)
            + b',"lines":['
            + lines
            + b'],"total":'
            + number(float(self.total))
            + b"}"
        )

    @property
    def points(self) -> int:
        """Coalition points this invoice earns: one per whole currency unit of a purchase's total."""
        if self.kind is not InteractionKind.PURCHASE or self.total < 1:
            return 0
        return int(self.total)  # Decimal -> int truncates; the total is positive here, so it floors


@dataclass(frozen=True, slots=True)
class TicketRecord:
    """A support ticket with free text (synthetic data only: the retail data set has none)."""

    ticket: str  # unique per source, the idempotency key
    customer_id: str
    occurred_at: datetime
    channel: str  # "email", "phone", "chat"
    category: str  # "delivery", "damaged", "refund", ...
    subject: str
    text: str
    invoice: str | None = None  # the invoice it is about, if any

    kind: ClassVar[InteractionKind] = InteractionKind.SUPPORT_TICKET
    points: ClassVar[int] = 0  # tickets earn nothing

    @property
    def external_key(self) -> str:
        return self.ticket

    def payload(self) -> dict[str, Any]:
        return {
            "ticket": self.ticket,
            "channel": self.channel,
            "category": self.category,
            "subject": self.subject,
            "text": self.text,
            "invoice": self.invoice,
        }

    def canonical_payload(self) -> bytes:
        return canonical_json(self.payload())


Record = InvoiceRecord | TicketRecord


@dataclass(frozen=True, slots=True)
class CustomerRecord:
    """A customer, as soon as a reader sees their first invoice line: before their invoices, which the
    Online Retail II reader can give only once the whole file is read (an invoice's lines are scattered),
    so that the import can register them while the file is still being read."""

    customer_id: str  # the source's customer number
    country: str  # their first invoice's country, as the source names it
