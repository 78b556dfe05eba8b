"""What an import reads from its source, made where the source is read (a child process: see
api/importers/background.py and api/usecases/imports.py). Kept apart from the import itself so that the
child imports the readers and the models, not the chain and the store.

Entries cross the pipe as plain tuples (`EntryWire`), each customer's PII once: the importer's process
is the busy one, and unpickling Online Retail II's 44,876 entries as frozen dataclasses, each with a
pydantic model, took it ~0.4 s, against ~0.13 s for the tuples and rebuilding the entries from them."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime
from typing import TYPE_CHECKING, Any, NamedTuple, cast

from api.importers.background import ChildSource, WiredSource
from api.importers.online_retail import ReadStats, read_records
from api.importers.records import CustomerRecord, Record
from api.progress import Progress
from offchain.canonical import Canonical
from offchain.kinds import InteractionKind

if TYPE_CHECKING:
    from offchain.customer_data import CustomerCreate

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


class Entry(NamedTuple):
    """One source record as the import needs it, made where the source is read.

    Reading the source and serializing each record's data (RFC 8785) is a third of an import's work;
    done in a child process (`api.importers.background`) it runs on another core, and only this much
    crosses the pipe (as `EntryWire` tuples). `kind` is None for a customer with no interactions (yet:
    the Online Retail II source sends each customer that way before their invoices).

    A named tuple, not a frozen dataclass: one is made per record on each side of the pipe (50,820 for
    Online Retail II), and a frozen dataclass's `__init__` sets each of its six fields through
    `object.__setattr__` (~1 us more an entry)."""

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
            Canonical(record.canonical_payload()),
        )


class EntryWire:
    """Entries as tuples on the pipe (`api.importers.background.Wire`); other items (ReadStats) in a 1-tuple.

    A customer's PII goes once, as (slot, pii), and their entries name the slot: (slot, kind,
    external_key, occurred_at, points, data as canonical bytes or None). Rebuilt here, every entry of a
    customer carries the same CustomerCreate object, as in the child. Slots are reused oldest first past
    `SLOTS` customers, so neither side keeps every customer of a long source; a customer seen again after
    that is sent again, which changes nothing but the cost."""

    SLOTS = 1 << 12  # ~4 MB of PII objects on each side at most, whatever the number of customers

    def __init__(self) -> None:
        # child: id(pii) -> (slot, pii); the pii is held so that its id is not reused while it has a slot
        self._sent: dict[int, tuple[int, CustomerCreate]] = {}
        self._received: dict[int, CustomerCreate] = {}  # parent: slot -> pii

    def encode(self, items: list[Any]) -> list[tuple[Any, ...]]:
        sent = self._sent
        wire: list[tuple[Any, ...]] = []
        for item in items:
            if not isinstance(item, Entry):
                wire.append((item,))
                continue
            known = sent.get(id(item.pii))
            if known is None:
                slot = len(sent) if len(sent) < self.SLOTS else sent.pop(next(iter(sent)))[0]
                sent[id(item.pii)] = slot, item.pii
                wire.append((slot, item.pii))
            else:
                slot = known[0]
            data = None if item.data is None else item.data.json
            wire.append((slot, item.kind, item.external_key, item.occurred_at, item.points, data))
        return wire

    def decode(self, message: list[tuple[Any, ...]]) -> list[Any]:
        received = self._received
        items: list[Any] = []
        for wire in message:
            if len(wire) == 6:
                slot, kind, key, occurred_at, points, data = wire
                canonical = None if data is None else Canonical(data)
                items.append(Entry(received[slot], kind, key, occurred_at, points, canonical))
            elif len(wire) == 2:
                pii = wire[1]
                received[wire[0]] = pii.pii() if type(pii) is RetailCustomer else pii
            else:
                items.append(wire[0])
        return items


class RetailCustomer(NamedTuple):
    """An Online Retail II customer as the reader process sends it: the fields of their `CustomerCreate`,
    which `pii` makes (and validates) in the importer's process, once per customer (`EntryWire.decode`).
    The reader thereby never loads pydantic and the models (~0.12 CPU s before its first row; 5,942
    models made and pickled there besides), on the path to the first invoice the importer waits for;
    the importer has them loaded, and registers the customers while the reader reads on."""

    name: str
    country: str | None
    external_ref: str

    def pii(self) -> CustomerCreate:
        from offchain.customer_data import CustomerCreate

        return CustomerCreate(name=self.name, country=self.country, external_ref=self.external_ref)


def _retail_entries(progress: Progress, path: str, *, plain: bool = False) -> Iterator[Entry | ReadStats]:
    """The entries; with `plain`, each customer's pii is a `RetailCustomer` (for `EntryWire`, which makes
    it the CustomerCreate on the other side of the pipe)."""
    stats = ReadStats()
    customers: dict[str, CustomerCreate] = {}
    for record in read_records(path, stats=stats, progress=progress):
        if isinstance(record, CustomerRecord):
            number = record.customer_id
            fields = RetailCustomer(number, RETAIL_COUNTRIES.get(record.country), number)
            # plain: only ever decoded by EntryWire, which gives the importer the CustomerCreate
            pii = customers[record.customer_id] = cast("CustomerCreate", fields) if plain else fields.pii()
            yield Entry(pii)  # the importer registers them while the rest of the file is read
            continue
        if stats.invoices == 1:
            yield replace(stats)
        yield Entry.of(customers[record.customer_id], record)
    yield stats


def _retail_entries_piped(progress: Progress, path: str) -> Iterator[Entry | ReadStats]:
    return _retail_entries(progress, path, plain=True)


def _synthetic_entries(progress: Progress, seed: int, customers: int, interactions: int) -> Iterator[Entry]:
    from api.importers.synthetic import SyntheticCustomer, generate

    pii: CustomerCreate | None = None
    for record in generate(seed, customers, interactions):
        if isinstance(record, SyntheticCustomer):
            pii = record.pii()
            if record.interactions == 0:
                yield Entry(pii)  # a customer who never bought anything is still a customer
        else:
            assert pii is not None  # a customer comes before their records
            yield Entry.of(pii, record)


retail_entries = WiredSource(_retail_entries, EntryWire)
"""retail_entries(progress, path): the Online Retail II file as entries. Each customer first (`Entry(pii)`,
no interaction) while the file is read; then the reader's ReadStats (with the invoice count), the
invoices, and the ReadStats again, complete."""

piped_retail_entries = WiredSource(_retail_entries_piped, EntryWire)
"""`retail_entries` as a child process runs it: through its `EntryWire` the same entries come out."""

synthetic_entries = WiredSource(_synthetic_entries, EntryWire)
"""synthetic_entries(progress, seed, customers, interactions): `generate`'s data set as entries."""


def start_reading_retail(path: str) -> ChildSource[Entry | ReadStats]:
    """The Online Retail II file at `path` read in a child process from now on, for
    `api.usecases.imports.import_online_retail(..., reader=...)`: the file takes longer to read than
    anything else an import does before its first invoice, so a caller that starts it first (the CLI,
    before it loads the chain and store modules and opens them) has it read that much sooner."""
    return ChildSource(piped_retail_entries, path)
