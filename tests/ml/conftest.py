"""Histories for the ML tests: the synthetic generator's customers, turned into committed interaction
documents with the evidence core's own layout and read back as `ml` reads verified documents."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from api.evidence.documents import interaction_document
from api.importers.online_retail import read_invoices
from api.importers.records import InvoiceRecord, TicketRecord
from api.importers.synthetic import SyntheticCustomer, generate
from ml.events import Event, by_member, from_document

REAL_FILE = Path(
    os.environ.get(
        "LEDGERCRM_ONLINE_RETAIL", Path(__file__).parents[3] / "shared/data/online_retail_II.csv.gz"
    )
)


def member_of(customer_id: str) -> bytes:
    return customer_id.encode().ljust(32, b"\0")[:32]


def documents(seed: int, customers: int, interactions: int) -> list[dict[str, object]]:
    found = []
    for record in generate(seed, customers, interactions):
        if isinstance(record, SyntheticCustomer):
            continue
        assert isinstance(record, InvoiceRecord | TicketRecord)
        raw = interaction_document(
            "acme", member_of(record.customer_id), record.kind, record.payload(), record.occurred_at,
            record.external_key,
        )  # fmt: skip
        found.append(json.loads(raw))
    return found


@pytest.fixture(scope="session")
def synthetic() -> dict[str, list[Event]]:
    return by_member(from_document(d) for d in documents(seed=11, customers=700, interactions=9000))


@pytest.fixture(scope="session")
def online_retail() -> dict[str, list[Event]]:
    if not REAL_FILE.exists():
        pytest.skip(f"the Online Retail II file is not at {REAL_FILE} (see ../shared/data/README.md)")
    events = [
        Event(
            member=r.customer_id,
            kind=r.kind.value,
            at=r.occurred_at,
            total=float(r.total),
            items=tuple((line.stock_code, line.quantity) for line in r.lines),
            country=r.country,
            prices=tuple(float(line.price) for line in r.lines),
            descriptions=tuple(line.description for line in r.lines),
        )
        for r in read_invoices(REAL_FILE)
    ]
    return by_member(events)
