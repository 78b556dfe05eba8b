"""The records importers produce: what a source system says happened, before the CRM seals any of it.

Money is `Decimal` here (exact sums for totals and points) and becomes a JSON number only in
`payload()`, the data an interaction commits to.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, ClassVar

from offchain.models import InteractionKind


@dataclass(frozen=True, slots=True)
class Line:
    stock_code: str
    description: str
    quantity: int  # negative on a return
    price: Decimal  # per unit

    @property
    def amount(self) -> Decimal:
        return self.quantity * self.price

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


Record = InvoiceRecord | TicketRecord


@dataclass(frozen=True, slots=True)
class CustomerRecord:
    """A customer, as soon as a reader sees their first invoice line: before their invoices, which the
    Online Retail II reader can give only once the whole file is read (an invoice's lines are scattered),
    so that the import can register them while the file is still being read."""

    customer_id: str  # the source's customer number
    country: str  # their first invoice's country, as the source names it
