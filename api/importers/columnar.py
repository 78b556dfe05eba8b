"""Online Retail II read by columns: the file parsed in C (polars), its rows grouped and checked with
array operations, and Python left with the distinct values (73k lines, 45k invoices, 6k customers) instead
of a loop over the 1.07M rows.

`read_checked` gives what `api.importers.online_retail.read_records`' own loop (the reference) would give,
or None. It takes only files it can prove the two read alike, and everything about them that the reference
checks must pass: a file with anything unusual in it (a quote inside an unquoted cell, a carriage return,
a row of another width than the header's, a cell the reference refuses, a bad date, an invoice on two
customers, a total out of range...) gets None, and the reference reads it and names the fault in its own
words. None is decided before anything is yielded: the reference yields customers as it reads, and a
file read by both would give them twice.

Why each shape of file is safe:
- The csv module's default dialect and polars' parser agree on a file of "\\n"-ended rows whose quoted
  cells each start a cell and end one ("..." with "" for a quote, followed by a comma, a newline or the
  end), with no carriage return and no NUL: `_quotes` proves that shape by walking the quotes, and
  counts the commas and newlines inside quoted cells.
- polars pads a short row with empty cells (the reference refuses it), refuses a row wider than its first
  (the header; the reference reads on, ignoring its cells past the eighth), and skips nothing: every row
  has the header's width when the commas outside quotes are (width - 1) x the rows that polars found,
  and the rows are the newlines outside quotes (+ 1 for a last row with none). A blank line is a row of
  one cell, so it fails that count too.
- Cells are compared as the reference compares them: strings by code point (UTF-8 bytes sort the same
  way), dates as raw text first (`_sheet_break` on the few rows that are earlier than the row before).
"""

from __future__ import annotations

import csv
import gzip
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from api.importers.online_retail import (
    HEADER,
    PROGRESS_EVERY,
    ReadStats,
    _Invoice,
    _line,
    _occurred_at,
    _record,
    _settle,
    _sheet_break,
    normalise_customer_id,
)
from api.importers.records import CustomerRecord, InvoiceRecord, Line
from api.progress import Progress
from offchain.kinds import InteractionKind

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    Codes = npt.NDArray[np.int64]

_BOM = b"\xef\xbb\xbf"


@dataclass
class _Seen:
    """Where the reference stands when it yields a customer: the counts it has written to its stats."""

    rows: int
    lines: int
    rows_without_customer: int
    rows_not_invoices: int
    sheets: int  # sheet breaks found so far


@dataclass
class Checked:
    """A file read and checked whole; `records` gives it as the reference gives it."""

    customers: list[tuple[CustomerRecord, _Seen]]
    invoices: dict[str, _Invoice]  # settled (dated, lines and total checked), in the reference's order
    end: _Seen  # the counts once the file is read
    repeated_rows: int

    def records(self, stats: ReadStats, progress: Progress | None) -> Iterator[CustomerRecord | InvoiceRecord]:
        """The customers with the stats and progress calls the reference makes as it reads, then the
        invoices, released as they are yielded."""
        tick = PROGRESS_EVERY
        sheets = 0
        for customer, seen in self.customers:
            while progress is not None and tick <= seen.rows:
                progress("read", tick, None)
                tick += PROGRESS_EVERY
            stats.sheets += seen.sheets - sheets
            sheets = seen.sheets
            stats.customers += 1
            stats.rows, stats.lines = seen.rows, seen.lines
            stats.rows_without_customer, stats.rows_not_invoices = seen.rows_without_customer, seen.rows_not_invoices
            yield customer
        end = self.end
        while progress is not None and tick <= end.rows:
            progress("read", tick, None)
            tick += PROGRESS_EVERY
        stats.sheets += end.sheets - sheets
        stats.rows, stats.lines = end.rows, end.lines
        stats.rows_without_customer, stats.rows_not_invoices = end.rows_without_customer, end.rows_not_invoices
        stats.repeated_rows += self.repeated_rows
        invoices = self.invoices
        stats.invoices_found = len(invoices)
        if progress is not None:
            progress("read", stats.rows, stats.rows)
        self.customers.clear()
        for number in list(invoices):  # as the reference: popped as they go
            record = _record(number, invoices.pop(number))
            stats.invoices += 1
            stats.returns += record.kind is InteractionKind.RETURN
            yield record


def read_checked(path: str | Path) -> Checked | None:
    """The file read by columns, or None where the reference must read it (see the module docstring)."""
    data = _contents(path)
    if data is None:
        return None
    inside = _quotes(data)
    if inside is None:
        return None
    commas_inside, newlines_inside = inside
    records = data.count(b"\n") - newlines_inside + (not data.endswith(b"\n"))
    commas = data.count(b",") - commas_inside

    import polars as pl  # here: ~0.2 CPU s to load, paid by large files only

    try:
        frame = pl.read_csv(data, has_header=False, infer_schema=False, empty_string_is_null=False)
    except (pl.exceptions.PolarsError, UnicodeDecodeError):
        return None  # a row wider than the header, bytes that are not UTF-8, ...: the reference says which
    del data
    width = frame.width
    if frame.height != records or commas != (width - 1) * records or width < len(HEADER) or records < 2:
        return None
    # the csv module refuses a cell longer than its limit: the reference names the row
    lengths = frame.select(pl.all().str.len_chars().max()).row(0)
    if max(length or 0 for length in lengths) > csv.field_size_limit():
        return None
    header = frame.row(0)[: len(HEADER)]
    if tuple(h.strip() for h in header) != HEADER:
        return None
    columns = [_encoded(frame[1:, i]) for i in range(len(HEADER))]
    del frame
    try:
        return _checked(path, columns)
    except ValueError:  # a cell, date or total the reference refuses, with its row
        return None


def _contents(path: str | Path) -> bytes | None:
    """The file's bytes, gunzipped as `open_text` does; None where `open_text` would refuse the file or
    the bytes hold what the quote walk does not cover."""
    try:
        with open(path, "rb") as handle:
            data = handle.read()
        if data[:2] == b"\x1f\x8b":
            data = gzip.decompress(data)
        elif str(path).endswith(".gz"):
            return None
    except (OSError, EOFError, zlib.error):
        return None
    # polars drops one leading byte-order mark, as utf-8-sig does; a second is a cell's text to the csv
    # module, and a quote right after the mark opens a quoted cell there, not here (the walk's rule)
    if data.startswith(_BOM) and (data.startswith(_BOM, 3) or data.startswith(b'"', 3)):
        return None
    if b"\r" in data or b"\0" in data:
        return None
    return data


def _quotes(data: bytes) -> tuple[int, int] | None:
    """(commas, newlines) inside quoted cells, or None unless every quote opens a cell ("... at a cell's
    start), closes it (followed by a comma, a newline or the end) or is doubled inside one."""
    commas = newlines = 0
    limit = csv.field_size_limit()
    find = data.find
    opening = find(b'"')
    while opening != -1:
        if opening and data[opening - 1] not in b",\n":
            return None  # a quote inside an unquoted cell: the csv module keeps it, polars refuses it
        closing = find(b'"', opening + 1)
        while closing != -1 and data.startswith(b'"', closing + 1):
            closing = find(b'"', closing + 2)
        if closing == -1:
            return None  # never closed
        if closing + 1 < len(data) and data[closing + 1] not in b",\n":
            return None  # text after the closing quote
        if closing - opening > limit:
            return None  # longer than the csv module takes (counted in bytes: at least its characters)
        commas += data.count(b",", opening, closing)
        newlines += data.count(b"\n", opening, closing)
        opening = find(b'"', closing + 1)
    return commas, newlines


@dataclass
class _Column:
    values: list[str]  # distinct, in order of first appearance
    codes: Codes  # each row's index in `values`


def _encoded(column: object) -> _Column:
    import numpy as np
    import polars as pl

    assert isinstance(column, pl.Series)
    values = column.unique(maintain_order=True)
    codes = column.cast(pl.Enum(values)).to_physical().to_numpy().astype(np.int64)
    return _Column(values.to_list(), codes)


def _checked(path: str | Path, columns: list[_Column]) -> Checked | None:
    """The reference's read, by columns (its names, its order). ValueError or None: the reference reads."""
    import numpy as np

    number, stock_code, description, quantity, when, price, raw_customer, country = columns
    rows = len(number.codes)

    # customers: the normalised id of each distinct spelling (ValueError for one the reference refuses)
    ids: dict[str, int] = {}
    names: list[str] = []
    spelling = np.empty(len(raw_customer.values), dtype=np.int64)
    for i, raw in enumerate(raw_customer.values):
        customer = normalise_customer_id(raw)
        if customer is None:
            spelling[i] = -1
        else:
            spelling[i] = ids.setdefault(customer, len(ids))
            if spelling[i] == len(names):
                names.append(customer)
    customer_of = spelling[raw_customer.codes]
    numbered = np.array(
        [n.isdigit() or (n[:1] == "C" and n[1:].isdigit()) for n in number.values], dtype=np.bool_
    )[number.codes]
    with_customer = customer_of >= 0
    kept = with_customer & numbered
    not_invoice = with_customer & ~numbered

    # sheets: a row earlier (as text) than the one before, and more than a day earlier as a date
    order = sorted(range(len(when.values)), key=when.values.__getitem__)
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(len(order))
    when_rank = rank[when.codes]
    earlier = np.flatnonzero(when_rank[1:] < when_rank[:-1]) + 1
    values = when.values
    breaks = [
        int(i) for i in earlier if _sheet_break(values[when.codes[i - 1]], values[when.codes[i]])
    ]
    sheet = np.zeros(rows, dtype=np.int64)
    sheet[breaks] = 1
    sheet = np.cumsum(sheet)

    lines_at = np.flatnonzero(kept)  # the rows that are an invoice's lines, in file order
    invoice_of = number.codes[lines_at]
    customer_at = customer_of[lines_at]
    sheet_at = sheet[lines_at]
    present, first = np.unique(invoice_of, return_index=True)
    by_appearance = np.argsort(first, kind="stable")
    first = first[by_appearance]  # each invoice's first line, invoices in order of appearance
    invoice_rank = np.full(len(number.values), -1, dtype=np.int64)
    invoice_rank[present[by_appearance]] = np.arange(len(first))
    rank_at = invoice_rank[invoice_of]
    if np.any(customer_at != customer_at[first][rank_at]):
        return None  # an invoice on two customers' lines
    invoice_sheet = sheet_at[first]

    # the distinct lines: one key per (stock code, description, quantity, price), one `Line` each
    sizes = [len(c.values) for c in (stock_code, description, quantity, price)]
    if sizes[0] * sizes[1] * sizes[2] * sizes[3] >= 2**63:
        return None  # too many distinct cells for one 64-bit key
    key = stock_code.codes[lines_at]
    for column, size in zip((description, quantity, price), sizes[1:], strict=True):
        key = key * size + column.codes[lines_at]
    _, distinct_first, distinct_of = np.unique(key, return_index=True, return_inverse=True)
    at = lines_at[distinct_first]
    stock_codes, descriptions = stock_code.values, description.values
    quantities, prices = quantity.values, price.values
    made = [
        _line((stock_codes[s], descriptions[d], quantities[q], prices[p]), "")
        for s, d, q, p in zip(
            stock_code.codes[at].tolist(),
            description.codes[at].tolist(),
            quantity.codes[at].tolist(),
            price.codes[at].tolist(),
            strict=True,
        )
    ]
    shared = np.empty(len(made), dtype=object)
    shared[:] = made

    # each invoice's lines together, in file order
    grouped = np.argsort(rank_at, kind="stable")
    bounds = np.concatenate(([0], np.cumsum(np.bincount(rank_at, minlength=len(first)))))
    lines: list[Line] = shared[distinct_of.reshape(-1)[grouped]].tolist()
    opening_sheet = sheet_at[grouped] == invoice_sheet[rank_at[grouped]]
    # the earliest time of the lines on the invoice's first sheet
    dates = np.where(opening_sheet, when_rank[lines_at][grouped], len(order))
    starts = bounds[:-1]
    earliest = np.minimum.reduceat(dates, starts) if len(first) else dates
    spread = (
        np.flatnonzero(np.minimum.reduceat(opening_sheet, starts) == 0).tolist() if len(first) else []
    )
    sheets_of: dict[int, list[int]] = {}  # invoices read again from a later sheet: their rows' sheets
    for r in spread:
        sheets_of[r] = sheet_at[grouped[bounds[r] : bounds[r + 1]]].tolist()

    invoices: dict[str, _Invoice] = {}
    numbers, countries, dated = number.values, country.values, [values[i] for i in order]
    opening = lines_at[first]
    bound = bounds.tolist()
    for r, (n, who, where, date, on) in enumerate(
        zip(
            number.codes[opening].tolist(),
            customer_at[first].tolist(),
            country.codes[opening].tolist(),
            earliest.tolist(),
            invoice_sheet.tolist(),
            strict=True,
        )
    ):
        invoice = _Invoice(names[who], countries[where], dated[date], on)
        if r in sheets_of:
            repeats: dict[int, list[Line]] = {}
            for line, its in zip(lines[bound[r] : bound[r + 1]], sheets_of[r], strict=True):
                if its == on:
                    invoice.lines.append(line)
                else:
                    repeats.setdefault(its, []).append(line)
            invoice.repeats = repeats
        else:
            invoice.lines = lines[bound[r] : bound[r + 1]]
        invoices[numbers[n]] = invoice
    del lines
    counted = ReadStats()
    for n, invoice in invoices.items():
        invoice.occurred_at = _occurred_at(n, invoice.earliest)
        _settle(path, n, invoice, counted)

    # the customers, each at their first line (which opens their first invoice), with the counts then
    without = np.cumsum(~with_customer) - (~with_customer).astype(np.int64)  # in the rows before each row
    skipped = np.cumsum(not_invoice) - not_invoice.astype(np.int64)
    _, customer_first = np.unique(customer_at, return_index=True)
    customers: list[tuple[CustomerRecord, _Seen]] = []
    for at in np.sort(customer_first).tolist():
        row = int(lines_at[at])
        seen = _Seen(row + 1, at, int(without[row]), int(skipped[row]), int(sheet[row]))
        customers.append((CustomerRecord(names[customer_at[at]], countries[country.codes[row]]), seen))
    end = _Seen(
        rows, len(lines_at), int(np.count_nonzero(~with_customer)), int(np.count_nonzero(not_invoice)), int(sheet[-1])
    )
    return Checked(customers, invoices, end, counted.repeated_rows)
