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
  way), dates as raw text first (`is_sheet_break` on the few rows that are earlier than the row before).
"""

from __future__ import annotations

import bisect
import csv
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING

from api.importers import online_retail
from api.importers.online_retail import (
    HEADER,
    OpenInvoice,
    ReadStats,
    check_date,
    check_total,
    invoice_date,
    invoice_record,
    is_sheet_break,
    normalise_customer_id,
    parse_line,
    settle_invoice,
)
from api.importers.records import CustomerRecord, InvoiceRecord, Line, line_json
from api.progress import Progress
from offchain.canonical import canonical_number, canonical_str
from offchain.kinds import InteractionKind

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt
    import polars as pl

    Codes = npt.NDArray[np.int32]

_BOM = b"\xef\xbb\xbf"
_CELLS_AT_ONCE = 4096  # quoted cells whose text is joined to be counted at once (bounds its copy)


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
    invoices: dict[str, OpenInvoice]  # settled (dated, lines and total checked), in the reference's order
    end: _Seen  # the counts once the file is read
    repeated_rows: int

    def records(
        self, stats: ReadStats, progress: Progress | None
    ) -> Iterator[CustomerRecord | InvoiceRecord]:
        """The customers with the stats and progress calls the reference makes as it reads, then the
        invoices, released as they are yielded."""
        every = online_retail.PROGRESS_EVERY  # the module's at the time, as the reference reads it
        tick = every
        sheets = 0
        for customer, seen in self.customers:
            while progress is not None and tick <= seen.rows:
                progress("read", tick, None)
                tick += every
            stats.sheets += seen.sheets - sheets
            sheets = seen.sheets
            stats.customers += 1
            stats.rows, stats.lines = seen.rows, seen.lines
            stats.rows_without_customer, stats.rows_not_invoices = (
                seen.rows_without_customer,
                seen.rows_not_invoices,
            )
            yield customer
        end = self.end
        while progress is not None and tick <= end.rows:
            progress("read", tick, None)
            tick += every
        stats.sheets += end.sheets - sheets
        stats.rows, stats.lines = end.rows, end.lines
        stats.rows_without_customer, stats.rows_not_invoices = (
            end.rows_without_customer,
            end.rows_not_invoices,
        )
        stats.repeated_rows += self.repeated_rows
        invoices = self.invoices
        stats.invoices_found = len(invoices)
        if progress is not None:
            progress("read", stats.rows, stats.rows)
        self.customers.clear()
        for number in list(invoices):  # as the reference: popped as they go
            record = invoice_record(number, invoices.pop(number))
            stats.invoices += 1
            stats.returns += record.kind is InteractionKind.RETURN
            yield record


# The file is parsed a slice of rows at a time: polars' frame of the whole file and its working memory
# beside the file's 93 MB took the reader to ~400 MB; a slice's is a fraction of that, and only the
# columns' codes (4 bytes a cell) are kept.
_SLICES = 8


def read_checked(path: str | Path) -> Checked | None:
    """The file read by columns, or None where the reference must read it (see the module docstring)."""
    data = _contents(path)
    if data is None:
        return None
    quoted = _quotes(data)
    if quoted is None:
        return None
    records = data.count(b"\n") + (not data.endswith(b"\n"))
    commas = data.count(b",")
    # the quoted cells' newlines and commas, counted over their text joined a few thousand cells at a
    # time: two `count` calls per cell were ~0.1 CPU s of Online Retail II's 36k quoted cells
    for at in range(0, len(quoted), _CELLS_AT_ONCE):
        inside = b"".join([data[opening:closing] for opening, closing in quoted[at : at + _CELLS_AT_ONCE]])
        records -= inside.count(b"\n")
        commas -= inside.count(b",")

    import polars as pl  # here: ~0.2 CPU s to load, paid by large files only

    limit = csv.field_size_limit()
    header: tuple[str, ...] = ()
    columns = [_Encoder() for _ in HEADER]
    height = 0
    for start, stop in _slices(data, quoted):
        if start and data.startswith(_BOM, start):
            return None  # polars would drop it from the slice's first cell, as from the file's
        try:
            frame = pl.read_csv(
                data[start:stop], has_header=False, infer_schema=False, empty_string_is_null=False
            )
        except (pl.exceptions.PolarsError, UnicodeDecodeError):
            return (
                None  # a row wider than the header, bytes that are not UTF-8, ...: the reference says which
            )
        if not header:
            header = frame.row(0)
            frame = frame[1:]
            # the csv module holds the header's cells to its limit too (the check below sees data rows)
            if max(len(cell or "") for cell in header) > limit:
                return None
        height += frame.height + (start == 0)
        # every row as wide as the header (with the count of commas below); a cell the csv module takes
        if frame.width != len(header) or len(header) < len(HEADER):
            return None
        if max(length or 0 for length in frame.select(pl.all().str.len_bytes().max()).row(0)) > limit:
            return None
        for encoder, i in zip(columns, range(len(HEADER)), strict=True):
            encoder.add(frame[:, i])
        del frame  # before the next slice's is made
    del data
    if height != records or commas != (len(header) - 1) * records or records < 2:
        return None
    if tuple(h.strip() for h in header[: len(HEADER)]) != HEADER:
        return None
    try:
        return _checked(path, [encoder.column() for encoder in columns])
    # a cell, date or total the reference refuses, with its row; TypeError too: a shared check that
    # raised it here would raise it in the reference, which says it after the customers before that row
    except (ValueError, TypeError):
        return None


def _slices(data: bytes, quoted: list[tuple[int, int]]) -> Iterator[tuple[int, int]]:
    """About `_SLICES` ranges of whole rows: each ends after a newline outside quotes."""
    openings = [opening for opening, _ in quoted]
    start = 0
    for k in range(1, _SLICES):
        stop = data.find(b"\n", max(start, k * len(data) // _SLICES))
        while stop != -1:
            i = bisect.bisect_right(openings, stop) - 1
            if i < 0 or stop > quoted[i][1]:
                break
            stop = data.find(b"\n", quoted[i][1])  # inside a quoted cell: the first after it
        if stop == -1:
            break
        if stop + 1 > start:
            yield start, stop + 1
            start = stop + 1
    if start < len(data):
        yield start, len(data)


def _contents(path: str | Path) -> bytes | None:
    """The file's bytes, gunzipped as `open_text` does; None where `open_text` would refuse the file or
    the bytes hold what the quote walk does not cover."""
    from isal import igzip  # gzip's format and members, inflated in half zlib's time

    decompress: Callable[[bytes], bytes] = igzip.decompress  # isal has no type hints
    try:
        with open(path, "rb") as handle:
            data = handle.read()
        if data[:2] == b"\x1f\x8b":
            data = decompress(data)
        elif str(path).endswith(".gz"):
            return None
    except Exception:  # truncated, corrupt (OSError, EOFError or isal's own error): open_text names it
        return None
    # polars drops one leading byte-order mark, as utf-8-sig does; a second is a cell's text to the csv
    # module, and a quote right after the mark opens a quoted cell there, not here (the walk's rule)
    if data.startswith(_BOM) and (data.startswith(_BOM, 3) or data.startswith(b'"', 3)):
        return None
    if b"\r" in data or b"\0" in data:
        return None
    return data


def _quotes(data: bytes) -> list[tuple[int, int]] | None:
    """The quoted cells (the offsets of their opening and closing quotes), or None unless every quote
    opens a cell ("... at a cell's start), closes it (followed by a comma, a newline or the end) or is
    doubled inside one."""
    spans: list[tuple[int, int]] = []
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
        spans.append((opening, closing))
        opening = find(b'"', closing + 1)
    return spans


@dataclass
class _Column:
    values: list[str]  # distinct, in order of first appearance
    codes: Codes  # each row's index in `values`


class _Encoder:
    """A column's distinct values and codes, a slice of rows at a time."""

    def __init__(self) -> None:
        self.index: dict[str, int] = {}
        self.codes: list[Codes] = []

    def add(self, cells: pl.Series) -> None:
        import numpy as np
        import polars as pl

        values = cells.unique(maintain_order=True)
        index = self.index
        # the slice's codes -> the file's (its distinct values: a few thousand, not a row each)
        known = np.array([index.setdefault(value, len(index)) for value in values.to_list()], dtype=np.int32)
        self.codes.append(known[cells.cast(pl.Enum(values)).to_physical().to_numpy()])

    def column(self) -> _Column:
        import numpy as np

        codes = np.concatenate(self.codes) if self.codes else np.zeros(0, dtype=np.int32)
        self.codes.clear()
        return _Column(list(self.index), codes)


def _checked(path: str | Path, columns: list[_Column]) -> Checked | None:
    """The reference's read, by columns (its names, its order). ValueError or None: the reference reads.
    Arrays are of 32-bit rows and codes, and dropped once used: the reader's memory is the import's."""
    import numpy as np

    number, stock_code, description, quantity, when, price, raw_customer, country = columns
    rows = len(number.codes)
    if rows >= 2**31:
        return None

    # customers: the normalised id of each distinct spelling (ValueError for one the reference refuses)
    ids: dict[str, int] = {}
    spelling = np.array(
        [
            -1 if customer is None else ids.setdefault(customer, len(ids))
            for customer in map(normalise_customer_id, raw_customer.values)
        ],
        dtype=np.int32,
    )
    names = list(ids)
    customer_of = spelling[raw_customer.codes]
    numbered = np.array(
        [n.isdigit() or (n[:1] == "C" and n[1:].isdigit()) for n in number.values], dtype=np.bool_
    )[number.codes]
    without_customer = np.flatnonzero(customer_of < 0).astype(np.int32)  # skipped rows, counted
    not_invoice = np.flatnonzero((customer_of >= 0) & ~numbered).astype(np.int32)
    lines_at = np.flatnonzero((customer_of >= 0) & numbered).astype(np.int32)  # an invoice's lines
    del numbered
    customer_at = customer_of[lines_at]
    del customer_of

    # every distinct date in the file's form (ValueError: the reference names the first row that is not)
    for value in when.values:
        check_date(value)
    # sheets: a row earlier (as text) than the one before, and more than a day earlier as a date
    order = sorted(range(len(when.values)), key=when.values.__getitem__)
    rank = np.empty(len(order), dtype=np.int32)
    rank[order] = np.arange(len(order), dtype=np.int32)
    when_rank = rank[when.codes]
    earlier = (np.flatnonzero(when_rank[1:] < when_rank[:-1]) + 1).tolist()
    dates = when.values
    breaks = np.array(
        [i for i in earlier if is_sheet_break(dates[when.codes[i - 1]], dates[when.codes[i]])], dtype=np.int32
    )
    dated = [dates[i] for i in order]  # the dates by rank
    when_at = when_rank[lines_at]
    del when_rank
    sheet_at = np.searchsorted(breaks, lines_at, side="right").astype(np.int32)  # each line's sheet

    invoice_of = number.codes[lines_at]
    first = _first_rows(invoice_of, len(number.values))  # each invoice's first line, in file order
    invoice_rank = np.full(len(number.values), -1, dtype=np.int32)
    invoice_rank[invoice_of[first]] = np.arange(len(first), dtype=np.int32)
    rank_at = invoice_rank[invoice_of]
    del invoice_of, invoice_rank
    if np.any(customer_at != customer_at[first][rank_at]):
        return None  # an invoice on two customers' lines
    invoice_sheet = sheet_at[first]

    # the distinct lines: one key per (stock code, description, quantity, price), one `Line` each; the
    # reference's checks of a line are of its quantity alone and its price alone: made once per value
    sizes = [len(c.values) for c in (stock_code, description, quantity, price)]
    if sizes[0] * sizes[1] * sizes[2] * sizes[3] >= 2**63:
        return None  # too many distinct cells for one 64-bit key
    key = stock_code.codes[lines_at].astype(np.int64)
    for column, size in zip((description, quantity, price), sizes[1:], strict=True):
        key *= size
        key += column.codes[lines_at]
    distinct_row, distinct_of = _distinct(key)
    del key
    at = lines_at[distinct_row]
    stock_codes, descriptions = stock_code.values, description.values
    counts: dict[int, tuple[int, bytes]] = {}
    amounts: dict[int, tuple[Decimal, bytes]] = {}
    # each distinct cell's canonical bytes, for the lines' (`Line.encoded`): encoded once each, not once
    # per line (73k lines, 12k such cells in the file)
    stock_json = [canonical_str(value) for value in stock_codes]
    description_json = [canonical_str(value) for value in descriptions]
    made = []
    for s, d, q, p in zip(
        stock_code.codes[at].tolist(),
        description.codes[at].tolist(),
        quantity.codes[at].tolist(),
        price.codes[at].tolist(),
        strict=True,
    ):
        count = counts.get(q)
        if count is None:
            parsed = parse_line(("", "", quantity.values[q], "0"), "").quantity
            count = counts[q] = parsed, canonical_number(parsed)
        amount = amounts.get(p)
        if amount is None:
            unit_price = parse_line(("", "", "0", price.values[p]), "").price
            amount = amounts[p] = unit_price, canonical_number(float(unit_price))
        made.append(
            Line(stock_codes[s], descriptions[d], count[0], amount[0]).encoded(
                line_json(
                    description=description_json[d],
                    price=amount[1],
                    quantity=count[1],
                    stock_code=stock_json[s],
                )
            )
        )
    shared = np.empty(len(made), dtype=object)
    shared[:] = made
    del made

    # each invoice's lines together, in file order
    grouped = np.argsort(rank_at, kind="stable")
    bounds = np.concatenate(([0], np.cumsum(np.bincount(rank_at, minlength=len(first)))))
    line_of = distinct_of.reshape(-1)[grouped]  # each line's distinct line, invoice by invoice
    lines: list[Line] = shared[line_of].tolist()
    del shared, distinct_of
    opening_sheet = sheet_at[grouped] == invoice_sheet[rank_at[grouped]]
    # the earliest time of the lines on the invoice's first sheet
    earliest_at = np.where(opening_sheet, when_at[grouped], len(order))
    starts = bounds[:-1]
    earliest = np.minimum.reduceat(earliest_at, starts) if len(first) else earliest_at
    spread = np.flatnonzero(np.minimum.reduceat(opening_sheet, starts) == 0).tolist() if len(first) else []
    sheets_of: dict[int, list[int]] = {}  # invoices read again from a later sheet: their rows' sheets
    for r in spread:
        sheets_of[r] = sheet_at[grouped[bounds[r] : bounds[r + 1]]].tolist()
    del grouped, opening_sheet, earliest_at
    # every invoice's total (as the reference sums it: exactly, to the smallest exponent of its lines)
    # with array sums where the amounts allow it; otherwise, and for those read again from a later sheet,
    # by `settle_invoice` (an invoice's own loop over its lines was ~0.15 CPU s of 45k invoices)
    totals = _totals(
        {q: count[0] for q, count in counts.items()},
        quantity.codes[at],
        {p: amount[0] for p, amount in amounts.items()},
        price.codes[at],
        line_of,
        starts,
    )
    del line_of

    invoices: dict[str, OpenInvoice] = {}
    numbers, countries = number.values, country.values
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
        invoice = OpenInvoice(names[who], countries[where], dated[date], on)
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
    for r, (n, invoice) in enumerate(invoices.items()):
        invoice.occurred_at = invoice_date(invoice.earliest)
        if totals is None or r in sheets_of:
            settle_invoice(path, n, invoice, counted)
        else:
            invoice.total = totals[r]
            check_total(path, n, invoice.total)

    # the customers, each at their first line (which opens their first invoice), with the counts then
    customer_first = _first_rows(customer_at, len(names))
    at_rows = lines_at[customer_first]
    customers = [
        (CustomerRecord(names[who], countries[where]), _Seen(row + 1, line, without, skipped, on))
        for who, where, row, line, without, skipped, on in zip(
            customer_at[customer_first].tolist(),
            country.codes[at_rows].tolist(),
            at_rows.tolist(),
            customer_first.tolist(),
            np.searchsorted(without_customer, at_rows).tolist(),  # such rows before it
            np.searchsorted(not_invoice, at_rows).tolist(),
            np.searchsorted(breaks, at_rows, side="right").tolist(),
            strict=True,
        )
    ]
    end = _Seen(rows, len(lines_at), len(without_customer), len(not_invoice), len(breaks))
    return Checked(customers, invoices, end, counted.repeated_rows)


# `np.unique(..., return_index=True)` sorts its input stably (a merge sort of the 824k lines, ~75 ms each
# time); codes below a known bound need no sort to find where each first appears, and distinct keys no
# stable one (any of a key's rows will do: equal keys are equal cells).


def _first_rows(codes: Codes, size: int) -> npt.NDArray[np.int32]:
    """The row where each code in `codes` (each in range(size)) first appears, in ascending order."""
    import numpy as np

    rows = len(codes)
    first = np.full(size, rows, dtype=np.int32)  # rows < 2**31 (`_checked`)
    np.minimum.at(first, codes, np.arange(rows, dtype=np.int32))
    return np.sort(first[first < rows])


def _distinct(key: npt.NDArray[np.int64]) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.intp]]:
    """A row of each distinct value of `key`, by ascending value, and each row's index among them."""
    import numpy as np

    order = np.argsort(key)
    ordered = key[order]
    starts = np.empty(len(key), dtype=np.bool_)
    starts[:1] = True
    np.not_equal(ordered[1:], ordered[:-1], out=starts[1:])
    index = np.empty(len(key), dtype=np.intp)
    index[order] = np.cumsum(starts) - 1
    return order[starts], index


def _totals(
    quantities: dict[int, int],
    quantity_of: Codes,
    prices: dict[int, Decimal],
    price_of: Codes,
    line_of: npt.NDArray[np.intp],
    starts: npt.NDArray[np.intp],
) -> list[Decimal] | None:
    """Each invoice's `sum(line.amount for line in its lines, Decimal(0))`, the same value with the same
    exponent, or None where 64-bit sums could not be exact. A distinct line's amount is its quantity (an
    int, by code in `quantities`, each line's code in `quantity_of`) times its price (by code in `prices`);
    the invoices' lines are `line_of` (distinct lines), each invoice's from its offset in `starts`."""
    import numpy as np

    if not len(starts):
        return []
    # every price in units of 10**-shift, exactly (Python ints), and its exponent, which is its amounts'
    # (Decimal's product of an int and a price has the price's exponent while it is exact: < 28 digits)
    shift = max(0, *(-price.as_tuple().exponent for price in prices.values()))  # type: ignore[operator]
    bound = (1 << 62) // len(line_of)  # any sum of as many amounts as there are lines, below this, fits
    units_of, exponent_of = np.zeros(max(prices) + 1, np.int64), np.zeros(max(prices) + 1, np.int64)
    for code, price in prices.items():
        sign, digits, exponent = price.as_tuple()
        units = int("".join(map(str, digits))) * 10 ** (exponent + shift)  # type: ignore[operator]
        if units >= bound:
            return None
        units_of[code], exponent_of[code] = -units if sign else units, exponent
    count_of = np.zeros(max(quantities) + 1, np.int64)
    for code, count in quantities.items():
        if abs(count) >= bound:
            return None
        count_of[code] = count
    counts, units_at = count_of[quantity_of], units_of[price_of]
    # each amount's size, checked in floating point (with room for its rounding) before the exact product
    if not np.all(np.abs(counts.astype(np.float64) * units_at.astype(np.float64)) < bound / 2):
        return None
    amount_of = counts * units_at
    sums = np.add.reduceat(amount_of[line_of], starts).tolist()
    # the sum's exponent: the smallest of its terms', Decimal(0)'s included
    exponents = np.minimum(np.minimum.reduceat(exponent_of[price_of][line_of], starts), 0).tolist()
    scale = [10**k for k in range(shift + 1)]
    return [Decimal(total // scale[shift + e]).scaleb(e) for total, e in zip(sums, exponents, strict=True)]
