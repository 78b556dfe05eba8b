"""Reading the UCI Online Retail II data set as one record per invoice.

The file (see shared/data/README.md) is a CSV, optionally gzipped, with the header
``Invoice,StockCode,Description,Quantity,InvoiceDate,Price,Customer ID,Country`` and one row per invoice
line. What the reader does with it, and why:

- Rows without a Customer ID (a quarter of the file) cannot be attributed to anyone: skipped, counted.
- Customer IDs are normalised to the digits of the integer ("13085.0", as spreadsheet exports write
  it, becomes "13085"), so the same customer is one customer however the file was produced.
- An invoice number starting with "C" is a cancellation: a return, with negative quantities. Invoice
  numbers that are neither digits nor "C" + digits (e.g. "A563185", bad-debt adjustments) are not
  customer interactions: skipped, counted.
- The lines of one invoice are not contiguous in the file, so rows are grouped by invoice in memory
  (strings interned: the whole file takes a few hundred MB at most), and invoices are yielded in order of
  first appearance, which is chronological to within minutes. `read_records` also yields each customer
  (`CustomerRecord`) while the file is read, at their first invoice line. Every row, and every invoice's
  date, total and points (a double holds the total; a purchase earns at most one event's points,
  `ledger.caps.MAX_EARN`), is checked before the first invoice is yielded: a consumer that writes
  nothing before then leaves nothing behind when a file is refused, at whatever row.
- The data set is two workbook sheets (2009-12-01..2010-12-09 and 2010-12-01..2011-12-09) one after the
  other, and the week both cover is in the file twice: a row dated more than a day before the previous
  one starts a new sheet, and an invoice that a later sheet repeats line for line is read once (the
  repeat is counted in `ReadStats.repeated_rows`; otherwise those invoices would count double, and earn
  double points). Identical lines within one sheet are kept: a till may scan the same item twice.
- Every `InvoiceDate` (every row's, the skipped rows' too) is in the file's one form, YYYY-MM-DD HH:MM:SS,
  or the file is refused at that row: in one form, text order is time order, and the reader finds an
  invoice's earliest line and each sheet break by comparing the cells as text (a line dated
  "2010-12-01T08:20" beside "2010-12-01 08:26:00" compared later, and a date no one could read passed
  unseen on any line but an invoice's earliest).
- `InvoiceDate` has no time zone. It is taken as UTC (`SOURCE_TIMEZONE`): the retailer is in the UK, so
  in summer the true instant is an hour earlier, but the file does not say, UTC needs no time-zone
  database to reproduce, and the committed documents must not depend on one. An invoice whose lines
  straddle a minute gets its earliest time.
"""

from __future__ import annotations

import csv
import gzip
import io
import math
import os
import re
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import IO

from api.importers.records import CustomerRecord, InvoiceRecord, Line
from api.progress import Progress
from ledger.caps import MAX_EARN
from offchain.kinds import InteractionKind

HEADER = ("Invoice", "StockCode", "Description", "Quantity", "InvoiceDate", "Price", "Customer ID", "Country")
SOURCE_TIMEZONE = UTC
# a row this much earlier than the row before it starts the next workbook sheet
SHEET_BREAK = timedelta(days=1)
PROGRESS_EVERY = 100_000  # rows


@dataclass
class ReadStats:
    """What the reader saw; complete once the iterator is exhausted."""

    rows: int = 0  # data rows in the file
    rows_without_customer: int = 0  # skipped: no Customer ID
    rows_not_invoices: int = 0  # skipped: adjustments and other non-invoice numbers
    lines: int = 0  # rows with a Customer ID on an invoice (repeats included)
    repeated_rows: int = 0  # lines dropped because a later sheet repeats their invoice identically
    sheets: int = 1
    invoices_found: int = 0  # invoices with a Customer ID, known once the file is read
    invoices: int = 0  # records yielded so far
    returns: int = 0  # of which cancellations
    customers: int = 0  # distinct customer ids on invoices, counted as they are read (final once read)


# A cell quoted in a message is cut to this many characters: a cell of thousands of digits would make the
# one line a bad row gets thousands of characters long.
_SHOWN_CELL = 40


def shown(cell: str) -> str:
    """A cell as a message quotes it: its repr, cut with its length said if it is long."""
    if len(cell) <= _SHOWN_CELL:
        return repr(cell)
    return f"{cell[:_SHOWN_CELL]!r}... ({len(cell):,} characters)"


# Digits a customer id may have: Python's int() refuses strings of more than 4,300 digits with a message of
# its own, and no customer id is that long.
_CUSTOMER_ID_DIGITS = 40


def normalise_customer_id(raw: str) -> str | None:
    """The customer id as the digits of an integer, or None for an empty cell; ValueError otherwise."""
    text = raw.strip()
    if not text:
        return None
    if len(text) > _CUSTOMER_ID_DIGITS:
        raise ValueError(f"not a customer id: {shown(raw)}")
    if text.isdigit():
        return str(int(text))  # "013085" and "13085" are one customer
    try:
        number = Decimal(text)
    except InvalidOperation:
        raise ValueError(f"not a customer id: {shown(raw)}") from None
    # An exponent makes a short cell a long integer: "1e45" is 46 digits, which the length cap refuses
    # written out; "1e99999999" took int() minutes and hundreds of MB before failing with Python's own words.
    if (
        not number.is_finite()
        or number.adjusted() >= _CUSTOMER_ID_DIGITS
        or number != number.to_integral_value()
        or number < 0
    ):
        raise ValueError(f"not a customer id: {shown(raw)}")
    return str(int(number))


def open_text(path: str | Path) -> IO[str]:
    """The file as text, gunzipped if it is gzip (by its magic bytes, not its name).

    A gzip file is decompressed whole, in memory, before anything is returned: a truncated or corrupt
    file is refused before the first record is imported, rather than part-way through an import, and it
    is decompressed once (Online Retail II: 15 MB becomes 93 MB, held while the file is read)."""
    with open(path, "rb") as probe:
        gzipped = probe.read(2) == b"\x1f\x8b"
    if not gzipped and str(path).endswith(".gz"):
        raise ValueError(f"{path}: the name ends in .gz but the file is not gzip-compressed")
    # utf-8-sig: tolerate a byte-order mark from spreadsheet exports; newline="" as the csv module wants
    if gzipped:
        try:
            # one call over the whole file, not GzipFile's reads of a block at a time (Online Retail II:
            # 0.32 -> 0.28 CPU s, before the first row can be read)
            with open(path, "rb") as compressed:
                data = gzip.decompress(compressed.read())
        except (EOFError, OSError, zlib.error) as exc:
            raise ValueError(f"{path}: the gzip stream is truncated or corrupt ({exc})") from None
        return io.TextIOWrapper(io.BytesIO(data), encoding="utf-8-sig", newline="")
    return open(path, encoding="utf-8-sig", newline="")


class OpenInvoice:
    """One invoice being accumulated: its lines, one shared `Line` object per distinct line of the file."""

    __slots__ = ("country", "customer", "earliest", "lines", "occurred_at", "repeats", "sheet", "total")

    def __init__(self, customer: str, country: str, when: str, sheet: int) -> None:
        self.customer = customer
        self.country = country
        self.earliest = when  # ISO text compares chronologically
        self.occurred_at: datetime | None = None  # `earliest` parsed, once the whole file is read
        self.sheet = sheet
        self.lines: list[Line] = []
        self.repeats: dict[int, list[Line]] | None = None
        self.total = Decimal(0)  # its lines' amounts, once the whole file is read


def read_invoices(
    path: str | Path, *, stats: ReadStats | None = None, progress: Progress | None = None
) -> Iterator[InvoiceRecord]:
    """Every invoice with a Customer ID, one record each (see the module docstring for the rules).

    The whole file is read before the first record is yielded (lines of an invoice are scattered);
    records are released as they are yielded. `stats` is filled in as it goes; `progress` is called
    with ("read", rows so far, None) while reading."""
    for record in read_records(path, stats=stats, progress=progress):
        if isinstance(record, InvoiceRecord):
            yield record


# From this size on disk a file is read by columns first (api/importers/columnar.py): below it, loading
# the columnar library costs more than the loop over the rows that it saves.
COLUMNAR_FROM = 1 << 20  # bytes


def read_records(
    path: str | Path, *, stats: ReadStats | None = None, progress: Progress | None = None
) -> Iterator[CustomerRecord | InvoiceRecord]:
    """The file's customers, then its invoices (`read_invoices`'s). A `CustomerRecord` is yielded while
    the file is read, as soon as the customer's first invoice line is (so in order of first appearance).
    That line opens their first invoice: every line of an invoice is its customer's, so none of theirs
    can have been opened earlier; it is the first of theirs yielded, and its country is the record's.
    Skipped lines (no Customer ID, not an invoice) do not count.

    A large file is read by columns (`api.importers.columnar`), which gives the same items, stats and
    progress calls, or declines before anything is yielded: then, and for small files, `read_rows` (the
    reference) reads it, and names any fault."""
    stats = stats if stats is not None else ReadStats()
    if _size(path) >= COLUMNAR_FROM:
        from api.importers.columnar import read_checked  # it loads polars: not for small files

        checked = read_checked(path)
        if checked is not None:
            yield from checked.records(stats, progress)
            return
    yield from read_rows(path, stats=stats, progress=progress)


def _size(path: str | Path) -> int:
    try:
        return os.path.getsize(path)
    except OSError:
        return 0  # read_rows says what is wrong with it


def read_rows(
    path: str | Path, *, stats: ReadStats | None = None, progress: Progress | None = None
) -> Iterator[CustomerRecord | InvoiceRecord]:
    """`read_records` by a Python loop over the rows: the reference the columnar reader is held to, and
    what reads whatever that one declines."""
    stats = stats if stats is not None else ReadStats()
    invoices: dict[str, OpenInvoice] = {}
    customers: set[str] = set()
    strings: dict[str, str] = {}  # one copy of each repeated country and date
    intern = strings.setdefault
    # 824k lines in Online Retail II are only 73k distinct (stock code, description, quantity, price):
    # each is checked and made a `Line` once, and equal lines are then the same object (so an invoice's
    # serialization, see records.py, and its repeat check below are done per distinct line, not per row)
    distinct: dict[tuple[str, str, str, str], Line] = {}
    # a few thousand customers on a million rows: normalise each spelling once
    customer_ids: dict[str, str | None] = {}
    dates: set[str] = set()  # checked (`check_date`): a few tens of thousands on a million rows
    sheet = 0
    previous = ""
    with open_text(path) as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if header is None:
            raise ValueError(f"{path}: the file is empty (an Online Retail II file starts with a header row)")
        if tuple(h.strip() for h in header[: len(HEADER)]) != HEADER:
            raise ValueError(
                f"{path}: not an Online Retail II file: its header is {', '.join(header) or '(blank)'};"
                f" expected {', '.join(HEADER)}"
            )
        # Counted in locals (a million rows), written to `stats` before each yield and at the end.
        rows = line_count = without_customer = not_invoices = 0
        # Most rows continue the invoice of the row before (same number, same customer cell): such a row
        # takes that row's outcome (its invoice, or its reason to be skipped) without the lookups.
        run_number = run_customer = None
        run_invoice: OpenInvoice | None = None
        run_without_customer = False
        customer: str | None = None
        for rows, row in enumerate(reader, 1):
            if progress is not None and rows % PROGRESS_EVERY == 0:
                progress("read", rows, None)
            try:
                # a slice per row costs a third of csv's own time: only rows wider than the header's 8
                fields = row if len(row) == 8 else row[:8]
                if len(fields) < 8:
                    raise ValueError(f"{len(row)} cells where the header has {len(HEADER)}")
                number, stock_code, description, quantity, when, price, raw_customer, country = fields
                if when not in dates:
                    check_date(when)
                    dates.add(when)
                same = number == run_number and raw_customer == run_customer
                if not same:
                    customer = customer_ids.get(raw_customer)
                    if customer is None and raw_customer not in customer_ids:
                        customer = customer_ids[raw_customer] = normalise_customer_id(raw_customer)
            except ValueError as exc:
                raise ValueError(f"{path}, data row {rows}: {exc}") from None
            if when < previous and is_sheet_break(previous, when):
                sheet += 1
                stats.sheets += 1
            previous = when
            if same:
                invoice = run_invoice
                if invoice is None:
                    if run_without_customer:
                        without_customer += 1
                    else:
                        not_invoices += 1
                    continue
            else:
                run_number, run_customer, run_invoice = number, raw_customer, None
                run_without_customer = customer is None
                if customer is None:
                    without_customer += 1
                    continue
                invoice = invoices.get(number)
                if invoice is None:
                    if not (number.isdigit() or (number[:1] == "C" and number[1:].isdigit())):
                        not_invoices += 1
                        continue
                    invoice = invoices[number] = OpenInvoice(
                        customer, intern(country, country), intern(when, when), sheet
                    )
                    if customer not in customers:  # only a new invoice can be a customer's first (see above)
                        customers.add(customer)
                        stats.customers += 1
                        stats.rows, stats.lines = rows, line_count
                        stats.rows_without_customer, stats.rows_not_invoices = without_customer, not_invoices
                        yield CustomerRecord(customer, invoice.country)
                elif invoice.customer != customer:
                    raise ValueError(
                        f"{path}, data row {rows}: invoice {number} belongs to customers"
                        f" {invoice.customer} and {customer}"
                    )
                run_invoice = invoice
            line_count += 1
            key = (stock_code, description, quantity, price)
            line = distinct.get(key)
            if line is None:
                line = distinct[key] = parse_line(key, f"{path}, data row {rows}")
            if sheet == invoice.sheet:
                invoice.lines.append(line)
                if when < invoice.earliest:
                    invoice.earliest = when
            else:
                repeats = invoice.repeats if invoice.repeats is not None else {}
                invoice.repeats = repeats
                repeats.setdefault(sheet, []).append(line)
        stats.rows, stats.lines = rows, line_count
        stats.rows_without_customer, stats.rows_not_invoices = without_customer, not_invoices
    # Every invoice's date checked before the first invoice is given: once the reader gives one, the
    # whole file has been read and checked, so an importer that writes nothing before then is refused
    # a bad file with nothing written, wherever its fault is (a date used to be parsed as its invoice
    # was given, after earlier invoices had been imported).
    # Its lines and its total too (the same rule for both): a total a double cannot hold, or one that
    # earns more points than one event carries, was refused only as its invoice was given or imported,
    # after the invoices before it.
    for number, invoice in invoices.items():
        invoice.occurred_at = invoice_date(invoice.earliest)
        settle_invoice(path, number, invoice, stats)
    stats.invoices_found = len(invoices)
    if progress is not None:
        progress("read", stats.rows, stats.rows)
    strings.clear()
    dates.clear()
    distinct.clear()
    customers.clear()
    # pop as we go: memory is released as records are consumed (in the order of a list of the numbers:
    # `next(iter(invoices))` after each pop would scan the dict's freed slots, quadratic in invoices)
    for number in list(invoices):
        record = invoice_record(number, invoices.pop(number))
        stats.invoices += 1
        stats.returns += record.kind is InteractionKind.RETURN
        yield record


# The checks both readers make, the row loop here (the reference) and the columnar path
# (`api.importers.columnar`), which runs these same functions on the distinct values it finds so that
# the two cannot drift apart in what they take or in the words they refuse with.


def is_sheet_break(previous: str, when: str) -> bool:
    """Whether `when`, read after `previous` (both checked by `check_date`), starts the next sheet of the
    workbook: a date over `SHEET_BREAK` earlier than the row before (the file is the workbook's two
    sheets, one after the other)."""
    return datetime.fromisoformat(previous) - datetime.fromisoformat(when) > SHEET_BREAK


# The file's one form of date: digits in ASCII, no time zone, no fraction, no "T".
_DATE_FORM = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}")


def check_date(when: str) -> None:
    """Nothing if `when` is a date in the file's form, YYYY-MM-DD HH:MM:SS (taken as UTC); otherwise a
    ValueError saying what is wrong with it."""
    if _DATE_FORM.fullmatch(when) is not None:
        try:
            datetime.fromisoformat(when)
            return
        except ValueError:  # a 13th month, a 60th second
            pass
    try:
        zoned = datetime.fromisoformat(when).tzinfo is not None
    except ValueError:
        zoned = False
    if zoned:
        # the file's dates are taken as UTC (`SOURCE_TIMEZONE`); a date with an offset of its own was
        # stored as that wall-clock time in UTC, hours off, without a word
        raise ValueError(
            f"InvoiceDate {shown(when)} has a time zone; the file's dates are UTC without one"
            " (YYYY-MM-DD HH:MM:SS)"
        )
    raise ValueError(f"InvoiceDate {shown(when)} is not YYYY-MM-DD HH:MM:SS")


# the largest integer a JSON number (a double) holds exactly (RFC 8785 refuses larger ones)
_JSON_SAFE_INT = 2**53 - 1


def parse_line(row: tuple[str, str, str, str], where: str) -> Line:
    """The line of (StockCode, Description, Quantity, Price), or a ValueError naming `where`."""
    stock_code, description, quantity, price = row
    if len(quantity) > _SHOWN_CELL:  # no quantity in range has that many characters (int() stops at 4,300)
        raise ValueError(f"{where}: quantity {shown(quantity)} is out of range")
    try:
        count = int(quantity)
    except ValueError:
        raise ValueError(f"{where}: quantity {shown(quantity)} is not an integer") from None
    try:
        amount = Decimal(price)
    except InvalidOperation:
        raise ValueError(f"{where}: price {shown(price)} is not a number") from None
    if not amount.is_finite():  # "NaN", "sNaN", "Infinity": Decimal takes them, no price is one
        raise ValueError(f"{where}: price {shown(price)} is not a number")
    # A line's document holds its quantity as a JSON integer and its price as a double: what they cannot
    # hold is refused here, at its row ("1E+400" became an infinite double that canonical JSON refused
    # without naming the row; 2 x "9E+999999" overflowed the Decimal context in the line's amount, an
    # uncaught Overflow and a traceback).
    if abs(count) > _JSON_SAFE_INT:
        raise ValueError(f"{where}: quantity {shown(quantity)} is out of range")
    if not math.isfinite(float(amount)):
        raise ValueError(f"{where}: price {shown(price)} is out of range")
    # so the line's amount (quantity x price, at most ~1.6E+324) stays far inside the Decimal context
    return Line(stock_code, description, count, amount)


def invoice_date(earliest: str) -> datetime:
    """An invoice's date: its earliest line's InvoiceDate (checked by `check_date` at its row), in UTC."""
    return datetime.fromisoformat(earliest).replace(tzinfo=SOURCE_TIMEZONE)


def settle_invoice(path: str | Path, number: str, invoice: OpenInvoice, stats: ReadStats) -> None:
    """The invoice's lines (a later sheet's plain repeat of it dropped) and their total, checked."""
    lines = invoice.lines
    for repeat in (invoice.repeats or {}).values():
        # a multiset comparison by identity: equal lines are one object (`distinct` in read_records)
        if sorted(map(id, repeat)) == sorted(map(id, invoice.lines)):
            stats.repeated_rows += len(repeat)  # the same invoice, read again from the next sheet
        else:
            lines = lines + repeat  # not a plain repeat: keep every line, nothing is lost
    invoice.lines, invoice.repeats = lines, None
    invoice.total = sum([line.amount for line in lines], Decimal(0))
    check_total(path, number, invoice.total)


def check_total(path: str | Path, number: str, total: Decimal) -> None:
    """Nothing if an invoice's total can be imported; a ValueError saying why not otherwise."""
    # each line's amount is finite as a double (`parse_line`), their sum need not be; the document holds it
    # as one
    if not math.isfinite(float(total)):
        raise ValueError(f"{path}: invoice {number}: its total is out of range")
    # a purchase earns a point per whole unit of its total (`InvoiceRecord.points`)
    if not number.startswith("C") and total >= MAX_EARN + 1:
        raise ValueError(
            f"{path}: invoice {number} would earn more than {MAX_EARN:,} points (one event's most)"
        )


def invoice_record(number: str, invoice: OpenInvoice) -> InvoiceRecord:
    """The record of a settled invoice (`invoice_date` and `settle_invoice` done)."""
    occurred_at = invoice.occurred_at
    assert occurred_at is not None  # parsed after the read, before any invoice is given
    return InvoiceRecord(
        invoice=number,
        customer_id=invoice.customer,
        country=invoice.country,
        occurred_at=occurred_at,
        kind=InteractionKind.RETURN if number.startswith("C") else InteractionKind.PURCHASE,
        lines=tuple(invoice.lines),
        total=invoice.total,
    )
