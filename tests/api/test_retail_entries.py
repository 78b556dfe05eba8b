"""What the import's source process sends (api/importers/entries.py, background.py): each Online Retail II
customer as soon as the reader sees them, with the data their first invoice gives, before the invoices;
entries that cross the pipe as tuples and come back as the same entries; items that do not wait for a
full chunk when the source is slow."""

from __future__ import annotations

import pickle
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from api.importers.background import in_child_process
from api.importers.entries import (
    RETAIL_COUNTRIES,
    Entry,
    EntryWire,
    piped_retail_entries,
    retail_entries,
    synthetic_entries,
)
from api.importers.online_retail import ReadStats, read_invoices, read_records
from api.importers.records import CustomerRecord, InvoiceRecord
from offchain.models import CustomerCreate

HEADER = "Invoice,StockCode,Description,Quantity,InvoiceDate,Price,Customer ID,Country\n"
# 12348's first row is an adjustment ("A...", skipped) with another country: they are a customer from
# their first invoice line, in Germany. 12349 is only on adjustments: not a customer. 12346's first
# invoice is in France, a later one in Germany. The last row repeats 500001 from a second "sheet".
CSV = (
    HEADER
    + """\
500001,85048,15CM CHRISTMAS GLASS BALL 20 LIGHTS,12,2010-01-04 09:00:00,6.95,12345,United Kingdom
A500900,B,Adjust bad debt,1,2010-01-04 09:01:00,-50.0,12348,Norway
500002,22041,RECORD FRAME,48,2010-01-04 09:05:00,2.1,12346.0,France
A500901,B,Adjust bad debt,1,2010-01-04 09:06:00,-10.0,12349,Norway
500003,21232,STRAWBERRY CERAMIC TRINKET BOX,6,2010-01-04 09:07:00,1.25,12345,United Kingdom
500004,21733,RED HANGING HEART T-LIGHT HOLDER,1,2010-01-05 10:00:00,2.55,,United Kingdom
500002,21232,STRAWBERRY CERAMIC TRINKET BOX,6,2010-01-04 09:05:00,1.25,12346,France
C500005,85048,15CM CHRISTMAS GLASS BALL 20 LIGHTS,-2,2010-01-06 11:00:00,6.95,12348,Germany
500006,22752,SET 7 BABUSHKA NESTING BOXES,2,2010-01-09 08:00:00,7.65,12346,Germany
500007,84029G,KNITTED UNION FLAG HOT WATER BOTTLE,1,2010-01-10 12:00:00,3.75,12348,Germany
500008,84029G,KNITTED UNION FLAG HOT WATER BOTTLE,1,2010-01-11 12:00:00,3.75,12350,Unspecified
500001,85048,15CM CHRISTMAS GLASS BALL 20 LIGHTS,12,2010-01-04 09:00:00,6.95,12345,United Kingdom
"""
)
CUSTOMERS = [("12345", "GB"), ("12346", "FR"), ("12348", "DE"), ("12350", None)]


@pytest.fixture
def small_csv(tmp_path: Path) -> Path:
    path = tmp_path / "small.csv"
    path.write_text(CSV)
    return path


def first_invoice_customers(path: Path) -> list[CustomerCreate]:
    """The customers as the import made them before customers were sent early: at each customer's first
    invoice in the order invoices are yielded, with that invoice's country."""
    customers: dict[str, CustomerCreate] = {}
    for invoice in read_invoices(path):
        if invoice.customer_id not in customers:
            customers[invoice.customer_id] = CustomerCreate(
                name=invoice.customer_id,
                country=RETAIL_COUNTRIES.get(invoice.country),
                external_ref=invoice.customer_id,
            )
    return list(customers.values())


def test_the_reader_yields_each_customer_at_their_first_invoice_line_before_any_invoice(small_csv):
    stats = ReadStats()
    records = list(read_records(small_csv, stats=stats))
    customers = [r for r in records if isinstance(r, CustomerRecord)]
    invoices = [r for r in records if isinstance(r, InvoiceRecord)]
    assert records == customers + invoices  # every customer while the file is read, then the invoices
    assert [(c.customer_id, c.country) for c in customers] == [
        ("12345", "United Kingdom"),
        ("12346", "France"),
        ("12348", "Germany"),
        ("12350", "Unspecified"),
    ]
    assert invoices == list(read_invoices(small_csv))
    assert (stats.customers, stats.invoices, stats.rows_not_invoices, stats.repeated_rows) == (4, 7, 2, 1)


def test_customers_come_first_with_the_data_their_first_invoice_gave(small_csv):
    items = list(retail_entries(lambda *a: None, str(small_csv)))
    customers = [item for item in items if isinstance(item, Entry) and item.kind is None]
    assert items[: len(customers)] == customers  # before the ReadStats and the invoices
    assert [(c.pii.external_ref, c.pii.country) for c in customers] == CUSTOMERS
    assert [c.pii for c in customers] == first_invoice_customers(small_csv)
    read, *invoices, final = items[len(customers) :]
    assert isinstance(read, ReadStats) and isinstance(final, ReadStats)
    assert (read.invoices_found, read.customers, final.invoices, final.customers) == (7, 4, 7, 4)
    by_ref = {c.pii.external_ref: c.pii for c in customers}
    for invoice in invoices:
        assert isinstance(invoice, Entry) and invoice.kind is not None
        assert invoice.pii == by_ref[invoice.pii.external_ref]


def test_customers_reach_the_importer_before_the_file_is_read(small_csv):
    """Through the child process: the customers arrive before the reader reports the end of the read,
    not with the first chunk of invoices."""
    log: list[object] = []
    for item in in_child_process(retail_entries, str(small_csv), progress=lambda *a: log.append(a)):
        log.append(item)
    end_of_read = log.index(("read", 12, 12))
    customers = [item for item in log[:end_of_read] if isinstance(item, Entry)]
    assert [(c.pii.external_ref, c.pii.country) for c in customers] == CUSTOMERS
    assert all(c.kind is None for c in customers)
    assert not any(isinstance(item, ReadStats) for item in log[:end_of_read])


def test_an_error_in_the_file_is_raised_after_the_customers_read_before_it(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text(
        HEADER
        + "500001,85048,BALL,12,2010-01-04 09:00:00,6.95,12345,United Kingdom\n"
        + "500002,85048,BALL,1,2010-01-04 09:01:00,6.95,12346,France\n"
        + "500001,85048,BALL,2,2010-01-04 09:02:00,6.95,12347,France\n"
    )
    got: list[object] = []
    with pytest.raises(ValueError, match="data row 3: invoice 500001 belongs to customers 12345 and 12347"):
        for item in in_child_process(retail_entries, str(path)):
            got.append(item)
    assert [item.pii.external_ref for item in got if isinstance(item, Entry)] == ["12345", "12346"]


def good_row_then(tmp_path: Path, *, quantity: str, price: str) -> Path:
    """A file of a good line, then (data row 2) a line of another invoice with this quantity and price."""
    path = tmp_path / "second_row.csv"
    path.write_text(
        HEADER
        + "500001,85048,BALL,12,2010-01-04 09:00:00,6.95,12345,United Kingdom\n"
        + f"500002,85049,LIGHT,{quantity},2010-01-04 09:01:00,{price},12346,France\n"
    )
    return path


@pytest.mark.parametrize("price", ["sNaN", "NaN", "-Infinity"])
def test_a_price_decimal_takes_but_that_is_no_price_is_refused_at_its_row(tmp_path, price):
    """A signalling NaN also broke the line's amount: the import ended in an uncaught InvalidOperation;
    NaN and infinities were refused only by canonical JSON, without their row."""
    path = good_row_then(tmp_path, quantity="12", price=price)
    with pytest.raises(ValueError, match=f"data row 2: price '{price}' is not a number"):
        list(read_records(path))


@pytest.mark.parametrize(
    ("quantity", "price", "expected"),
    [
        ("2", "9E+999999", "price '9E+999999' is out of range"),  # the line's amount overflowed: a traceback
        ("1", "1E+400", "price '1E+400' is out of range"),  # an infinite double, refused without its row
        ("9007199254740992", "1", "quantity '9007199254740992' is out of range"),  # 2**53: no JSON integer
        # thousands of digits: one short line (int() refuses over 4,300 digits in words of its own)
        ("9" * 5000, "1", "quantity '" + "9" * 40 + "'... (5,000 characters) is out of range"),
        ("2", "9" * 5000, "price '" + "9" * 40 + "'... (5,000 characters) is out of range"),
    ],
)
def test_a_number_no_line_document_holds_is_refused_at_its_row(tmp_path, quantity, price, expected):
    path = good_row_then(tmp_path, quantity=quantity, price=price)
    with pytest.raises(ValueError, match=f"data row 2: {re.escape(expected)}"):
        list(read_records(path))


def test_a_customer_id_of_thousands_of_digits_is_one_short_line(tmp_path):
    path = tmp_path / "huge-id.csv"
    path.write_text(HEADER + f"500001,85048,BALL,12,2010-01-04 09:00:00,6.95,{'1' * 5000},United Kingdom\n")
    with pytest.raises(ValueError, match=re.escape("'" + "1" * 40 + "'... (5,000 characters)")) as refused:
        list(read_records(path))
    assert len(str(refused.value)) < 200


@pytest.mark.parametrize("customer", ["1e45", "1E+5000", "1e99999999", "4.2e40"])
def test_a_customer_id_written_with_a_large_exponent_is_refused_at_its_row(tmp_path, customer):
    """ "1e45" is a customer id of 46 digits, which the cap on a cell's length refuses written out; it was
    taken. "1E+5000" ended in Python's own words on integers of over 4,300 digits, and "1e99999999", ten
    characters, took int() minutes and hundreds of MB first (both readers check every customer id)."""
    path = tmp_path / "exponent.csv"
    path.write_text(
        HEADER
        + "500001,85048,BALL,12,2010-01-04 09:00:00,6.95,12345,United Kingdom\n"
        + f"500002,85049,LIGHT,1,2010-01-04 09:01:00,1.5,{customer},France\n"
    )
    with pytest.raises(ValueError, match=f"data row 2: not a customer id: {re.escape(repr(customer))}$"):
        list(read_records(path))


@pytest.mark.parametrize(
    "when", ["2010-01-04 09:01:00+05:00", "2010-01-04T09:01:00Z", "2010-01-04 09:01-01:00"]
)
def test_an_invoice_date_with_a_time_zone_is_refused_not_shifted(tmp_path, when):
    """The file's dates are taken as UTC; a date with an offset of its own was stored as the same wall-clock
    time in UTC (09:01+05:00 became 09:01 UTC, five hours off), without a word."""
    path = tmp_path / "offset.csv"
    path.write_text(
        HEADER
        + "500001,85048,BALL,12,2010-01-04 09:00:00,6.95,12345,United Kingdom\n"
        + f"500002,85049,LIGHT,1,{when},1.5,12346,France\n"
    )
    with pytest.raises(ValueError, match=f"data row 2: InvoiceDate {re.escape(repr(when))} has a time zone"):
        list(read_records(path))


@pytest.mark.parametrize(
    "when",
    [
        "2010-01-04 9h05",  # garbage
        "2010-01-04 09:01:00.5",  # another form fromisoformat takes: a fraction
        "2010-01-04T08:59:00",  # another: "T", whose text sorts after " " (this line was taken as later)
        "2010-01-04",
        "2010-01-04 09:01:60",  # the form, not a date
        "\u0662\u0660\u0661\u0660-01-04 09:01:00",  # digits other than ASCII's, which fromisoformat takes
    ],
)
def test_a_date_not_in_the_files_form_is_refused_at_its_row_on_any_line(tmp_path, when):
    """Every row's date is checked, not only each invoice's earliest: a later line's date used to be
    compared as text and never read, so garbage there passed unseen, and a date in another form than
    the file's compared out of time order (the invoice's earliest line and a sheet break are found by
    text order)."""
    path = tmp_path / "dates.csv"
    path.write_text(
        HEADER
        + "500001,85048,BALL,12,2010-01-04 09:00:00,6.95,12345,United Kingdom\n"
        + f"500001,85049,LIGHT,1,{when},1.5,12345,United Kingdom\n"
    )
    refused = f"data row 2: InvoiceDate {re.escape(repr(when))} is not YYYY-MM-DD"
    with pytest.raises(ValueError, match=refused):
        list(read_records(path))


def test_a_skipped_rows_date_is_checked_too(tmp_path):
    """A row without a customer is skipped, but its date still takes part in finding sheet breaks."""
    path = tmp_path / "skipped.csv"
    path.write_text(
        HEADER
        + "500001,85048,BALL,12,2010-01-04 09:00:00,6.95,12345,United Kingdom\n"
        + "500002,85049,LIGHT,1,soon,1.5,,United Kingdom\n"
    )
    with pytest.raises(ValueError, match="data row 2: InvoiceDate 'soon' is not YYYY-MM-DD HH:MM:SS"):
        list(read_records(path))


def test_the_largest_numbers_a_line_document_holds_are_read(tmp_path):
    # in returns: a purchase's total is also its points, capped far below (test_imports.py); each
    # invoice's total is held as a double, as its lines' prices are
    path = tmp_path / "large.csv"
    path.write_text(
        HEADER
        + "C500001,85048,BALL,-9007199254740991,2010-01-04 09:00:00,1E+292,12345,United Kingdom\n"
        + "C500002,85048,BALL,-1,2010-01-04 09:00:00,1E+300,12345,United Kingdom\n"
    )
    invoices = [r for r in read_records(path) if isinstance(r, InvoiceRecord)]
    assert [i.total for i in invoices] == [Decimal("-9007199254740991E+292"), Decimal("-1E+300")]


def test_entries_through_the_child_process_are_the_entries_made_in_it(small_csv):
    here = list(retail_entries(lambda *a: None, str(small_csv)))
    # what the CLI's reader process runs: its customers' fields become their CustomerCreate on this side
    there = list(in_child_process(piped_retail_entries, str(small_csv), chunk=3))
    assert there == here
    assert all(type(item.pii) is CustomerCreate for item in there if isinstance(item, Entry))
    # every entry of a customer carries one CustomerCreate, as in the child
    piis: dict[str | None, CustomerCreate] = {}
    for item in there:
        if isinstance(item, Entry):
            assert piis.setdefault(item.pii.external_ref, item.pii) is item.pii


def test_a_synthetic_source_through_the_child_process_is_unchanged():
    here = list(synthetic_entries(lambda *a: None, 5, 4, 30))
    assert list(in_child_process(synthetic_entries, 5, 4, 30, chunk=7)) == here


def test_the_wire_sends_each_customer_once_and_reuses_slots_past_its_limit(monkeypatch):
    monkeypatch.setattr(EntryWire, "SLOTS", 2)
    piis = [CustomerCreate(name=f"c{i}", external_ref=str(i)) for i in range(3)]
    stats = ReadStats(rows=5)
    items = [Entry(piis[0]), Entry(piis[1]), stats] + [Entry(piis[i]) for i in (0, 2, 1, 0)]
    child, parent = EntryWire(), EntryWire()
    first, second = child.encode(items[:3]), child.encode(items[3:])
    assert [len(t) for t in first] == [2, 6, 2, 6, 1]  # pii, entry, pii, entry, other
    # 0 is known; 2 takes the oldest slot (0's), so 0 is sent again later (in 1's slot)
    assert [len(t) for t in second] == [6, 2, 6, 6, 2, 6]
    got = parent.decode(pickle.loads(pickle.dumps(first))) + parent.decode(pickle.loads(pickle.dumps(second)))
    assert got == items
    assert got[0].pii is got[3].pii  # one object per customer while it holds its slot


def slow(progress, pause: float) -> Iterator[tuple[int, float]]:
    yield 1, time.time()
    progress("read", 1, None)  # a report: what was yielded goes first
    yield 2, time.time()
    time.sleep(pause)  # more than FLUSH_AFTER: item 3 is sent when it comes, not with a full chunk
    yield 3, time.time()
    time.sleep(5 * pause)  # 1.5 s: item 3 must have come by then
    yield 4, time.time()


def test_items_of_a_slow_source_do_not_wait_for_a_full_chunk():
    log: list[object] = []
    received: dict[int, float] = {}
    made: dict[int, float] = {}
    for number, at in in_child_process(slow, 0.3, progress=lambda *a: log.append(a), chunk=100):
        received[number], made[number] = time.time(), at
        log.append(number)
    assert log == [1, ("read", 1, None), 2, 3, 4]
    assert received[3] < made[4]  # item 3 came when it was made, not 1.5 s later with item 4


def test_the_reader_process_reads_the_file_without_the_store_pydantic_or_the_models(small_csv) -> None:
    """What the reader process imports and runs leaves SQLAlchemy and the store's tables out (loading them
    there delayed the first invoice of every import by ~0.6 s), and pydantic and the customer model: it
    sends each customer's fields (`RetailCustomer`), the importer's process makes their CustomerCreate
    (loading them cost the reader ~0.12 CPU s before its first row; making and pickling 5,942 models
    more: ~0.25 CPU s before the first invoice, benchmarks/README.md)."""
    items, _, heavy = reader_process(small_csv)
    assert (items, heavy) == (len(CUSTOMERS) + 7 + 2, [])  # customers, invoices, two ReadStats


def reader_process(path: Path) -> tuple[int, bool, list[str]]:
    """The file read as the import's reader process reads it, in a fresh interpreter: the items it sends,
    whether it loaded polars, and which of the modules it must not load it did (the store, pydantic, the
    customer model)."""
    heavy = {
        "sqlalchemy",
        "sqlmodel",
        "offchain.models",
        "pydantic",
        "email_validator",
        "offchain.customer_data",
    }
    code = (
        "import sys; from api.importers.entries import piped_retail_entries as source\n"
        f"items = list(source(lambda *a: None, {str(path)!r}))\n"
        f"print(len(items), 'polars' in sys.modules, *sorted({heavy!r} & set(sys.modules)))"
    )
    found = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    items, polars, *loaded = found.stdout.split()
    return int(items), polars == "True", loaded
