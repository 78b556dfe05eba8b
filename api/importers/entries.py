"""What an import reads from its source, made where the source is read (a child process: see
api/importers/background.py and api/usecases/imports.py). Kept apart from the import itself so that the
child imports the readers and the models, not the chain and the store."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import datetime

from api.importers.online_retail import ReadStats, read_invoices
from api.importers.records import Record
from api.importers.synthetic import SyntheticCustomer, generate
from offchain.canonical import Canonical
from offchain.models import CustomerCreate, InteractionKind

Progress = Callable[[str, int, int | None], None]

# Online Retail II names countries as the retailer did; CustomerCreate wants ISO 3166-1 alpha-2. Names
# with no single code (Channel Islands: JE or GG; European Community; West Indies; Unspecified) map to
# no country; every invoice keeps the name as the source wrote it.
RETAIL_COUNTRIES: dict[str, str] = {
    "Australia": "AU", "Austria": "AT", "Bahrain": "BH", "Belgium": "BE", "Bermuda": "BM", "Brazil": "BR",
    "Canada": "CA", "Cyprus": "CY", "Czech Republic": "CZ", "Denmark": "DK", "EIRE": "IE", "Finland": "FI",
    "France": "FR", "Germany": "DE", "Greece": "GR", "Hong Kong": "HK", "Iceland": "IS", "Israel": "IL",
    "Italy": "IT", "Japan": "JP", "Korea": "KR", "Lebanon": "LB", "Lithuania": "LT", "Malta": "MT",
    "Netherlands": "NL", "Nigeria": "NG", "Norway": "NO", "Poland": "PL", "Portugal": "PT", "RSA": "ZA",
    "Saudi Arabia": "SA", "Singapore": "SG", "Spain": "ES", "Sweden": "SE", "Switzerland": "CH",
    "Thailand": "TH", "USA": "US", "United Arab Emirates": "AE", "United Kingdom": "GB",
}  # fmt: skip


@dataclass(frozen=True, slots=True)
class Entry:
    """One source record as the import needs it, made where the source is read.

    Reading the source and serializing each record's data (RFC 8785) is a third of an import's work;
    done in a child process (`api.importers.background`) it runs on another core, and only this much
    crosses the pipe. `kind` is None for a customer with no interactions."""

    pii: CustomerCreate
    kind: InteractionKind | None = None
    external_key: str = ""
    occurred_at: datetime | None = None
    points: int = 0
    data: Canonical | None = None

    @classmethod
    def of(cls, pii: CustomerCreate, record: Record) -> Entry:
        return cls(
            pii,
            record.kind,
            record.external_key,
            record.occurred_at,
            record.points,
            Canonical.of(record.payload()),
        )


def retail_entries(progress: Progress, path: str) -> Iterator[Entry | ReadStats]:
    """The Online Retail II file as entries; its ReadStats once read (with the invoice count) and at
    the end."""
    stats = ReadStats()
    customers: dict[str, CustomerCreate] = {}
    for invoice in read_invoices(path, stats=stats, progress=progress):
        if stats.invoices == 1:
            yield replace(stats)
        pii = customers.get(invoice.customer_id)
        if pii is None:
            pii = customers[invoice.customer_id] = CustomerCreate(
                name=invoice.customer_id,
                country=RETAIL_COUNTRIES.get(invoice.country),
                external_ref=invoice.customer_id,
            )
        yield Entry.of(pii, invoice)
    yield stats


def synthetic_entries(progress: Progress, seed: int, customers: int, interactions: int) -> Iterator[Entry]:
    pii: CustomerCreate | None = None
    for record in generate(seed, customers, interactions):
        if isinstance(record, SyntheticCustomer):
            pii = record.pii()
            if record.interactions == 0:
                yield Entry(pii)  # a customer who never bought anything is still a customer
        else:
            assert pii is not None  # a customer comes before their records
            yield Entry.of(pii, record)
