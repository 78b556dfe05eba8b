"""The Online Retail II reader by columns (api/importers/columnar.py) against the row loop it must match
(`read_rows`, the reference): the same items, stats at each item and progress calls, or the same error,
on generated files that mix what the reader has rules for; the fast path really taken on files it can
take, and the real file read alike both ways."""

from __future__ import annotations

import csv
import gzip
import io
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from api.importers import columnar, online_retail
from api.importers.online_retail import HEADER, ReadStats, read_records, read_rows
from api.importers.records import InvoiceRecord
from tests.api.test_retail_entries import reader_process

REAL_FILE = Path(
    os.environ.get(
        "LEDGERCRM_ONLINE_RETAIL", Path(__file__).parents[3] / "shared/data/online_retail_II.csv.gz"
    )
)

Reader = Callable[..., Iterator[Any]]


def outcome(read: Reader, path: Path) -> list[Any]:
    """Everything a consumer of `read` sees: each item with the stats as they are when it is yielded, the
    progress calls in between, and the error's type and text if it ends in one."""
    events: list[Any] = []
    stats = ReadStats()
    try:
        for item in read(path, stats=stats, progress=lambda *call: events.append(("progress", *call))):
            events.append(("item", item, asdict(stats)))
            if isinstance(item, InvoiceRecord):
                # what equality leaves out: the total's exponent (Decimal("1.50") == Decimal("1.5")) and
                # the bytes the import commits to, which the columnar reader makes from its own parts
                events.append(("invoice", item.total.as_tuple(), item.canonical_payload()))
    except Exception as exc:  # the reference's refusals: ValueError, csv.Error, UnicodeDecodeError...
        events.append(("error", type(exc).__name__, str(exc)))
    events.append(("end", asdict(stats)))
    return events


def fast_first(path: Path, **kwargs: Any) -> Iterator[Any]:
    """`read_records` with every file big enough for the columnar reader."""
    saved = online_retail.COLUMNAR_FROM
    online_retail.COLUMNAR_FROM = 0
    try:
        yield from read_records(path, **kwargs)
    finally:
        online_retail.COLUMNAR_FROM = saved


# What the generated files are made of: customer ids as spreadsheets write them, cancellations and
# adjustments, cells the csv module must quote, and cells or dates the reader refuses.
CUSTOMERS = {"12345": ["12345", "12345.0", "012345"], "12346": ["12346", " 12346 "], "12347": ["12347"]}
STOCK_CODES = ["85048", "22041", "POST"]
DESCRIPTIONS = ["GLASS BALL", 'FRAME 7" SINGLE', "A, B AND C", "TWO\nLINES", " PADDED ", "ÉCLAIR ☕", ""]
QUANTITIES = ["1", "12", "-2", "6"]
PRICES = ["2.95", "0", "1.25", "-1.0", "0.001", "3"]
COUNTRIES = ["United Kingdom", "France", "EIRE"]
FAULTS = [
    "quantity",  # not an integer
    "price",  # not a number, or out of range
    "date",  # an invoice's earliest date that is not YYYY-MM-DD HH:MM:SS
    "customer",  # not a customer id
    "conflict",  # an invoice on two customers
    "short",  # a row of 7 cells
    "wide",  # a row wider than the header (the reference ignores its extra cells)
    "blank",  # a blank line
    "crlf",  # rows ended by \r\n
    "inner quote",  # a quote inside an unquoted cell
    "after quote",  # text after a quoted cell's closing quote
    "latin-1",  # bytes that are not UTF-8
    "nul",  # a NUL character in a cell
    "two boms",  # a byte-order mark, then another in the first cell
    "header",  # not the Online Retail II header
    "total",  # a purchase that would earn more than one event's points
]


@dataclass
class RetailFile:
    content: bytes
    clean: bool  # nothing the fast path must decline: it must read it


def _when(minutes: int) -> str:
    day, minute = divmod(minutes, 24 * 60)
    return f"2010-12-{1 + day:02d} {minute // 60:02d}:{minute % 60:02d}:00"


@st.composite
def retail_files(draw: st.DrawFn) -> RetailFile:
    faults = draw(st.lists(st.sampled_from(FAULTS), max_size=2, unique=True)) if draw(st.booleans()) else []
    extra_columns = draw(st.integers(0, 2))
    numbers = ["500001", "500002", "500003", "C500004", "500005", "A563185", "500006"]
    owner = {number: draw(st.sampled_from(sorted(CUSTOMERS))) for number in numbers}
    invoices: dict[str, list[list[str]]] = {}
    rows: list[list[str]] = []
    minutes = 3 * 24 * 60  # the first sheet starts on the 4th: the second goes back to the 1st
    for _ in range(draw(st.integers(1, 14))):
        number = draw(st.sampled_from(numbers))
        minutes += draw(st.integers(-30, 90))  # a little earlier than the row before is not a new sheet
        spelling = "" if draw(st.integers(0, 5)) == 0 else draw(st.sampled_from(CUSTOMERS[owner[number]]))
        line = [
            draw(st.sampled_from(STOCK_CODES)),
            draw(st.sampled_from(DESCRIPTIONS)),
            draw(st.sampled_from(QUANTITIES)),
            draw(st.sampled_from(PRICES)),
        ]
        row = [
            number,
            line[0],
            line[1],
            line[2],
            _when(minutes),
            line[3],
            spelling,
            draw(st.sampled_from(COUNTRIES)),
        ]
        rows.append(row)
        invoices.setdefault(number, []).append(row)
    if draw(st.booleans()):  # a second sheet: some invoices again, line for line or changed, and new ones
        minutes = draw(st.integers(0, 24 * 60))
        for lines in invoices.values():
            how = draw(st.sampled_from(["skip", "same", "shuffled", "changed"]))
            if how == "skip":
                continue
            again = [list(row) for row in lines]
            if how == "shuffled":
                again = draw(st.permutations(again))
            elif how == "changed":
                again = again[:-1] if len(again) > 1 and draw(st.booleans()) else [*again, list(again[0])]
            for row in again:
                minutes += draw(st.integers(0, 30))
                row[4] = _when(minutes)
                rows.append(row)
        for _ in range(draw(st.integers(0, 3))):
            minutes += draw(st.integers(0, 30))
            rows.append(["500009", "85048", "NEW", "1", _when(minutes), "2.95", "12347", "France"])

    header = list(HEADER) + [f"Extra {i}" for i in range(extra_columns)]
    rows = [row + [draw(st.sampled_from(["", "x", "a,b"])) for _ in range(extra_columns)] for row in rows]
    for fault in faults:
        at = draw(st.integers(0, len(rows) - 1))
        if fault == "quantity":
            rows[at][3] = draw(st.sampled_from(["x", "1.5", "9" * 50]))
        elif fault == "price":
            rows[at][5] = draw(st.sampled_from(["nan", "1E+400", "abc"]))
        elif fault == "date":
            for row in rows:
                if row[0] == rows[at][0]:
                    row[4] = draw(st.sampled_from(["2010-13-45 00:00:00", "yesterday"]))
        elif fault == "customer":
            rows[at][6] = draw(st.sampled_from(["x1", "-5", "1.5"]))
        elif fault == "conflict":
            rows.append([*rows[at][:6], "99999", *rows[at][7:]])
        elif fault == "short":
            rows[at] = rows[at][:7]
        elif fault == "wide":
            rows[at] = [*rows[at], "extra"]
        elif fault == "total":
            rows.append(["500010", "BIG", "BIG", "1", rows[at][4], "1E+30", "12345", "France"])
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n" if "crlf" in faults else "\n")
    writer.writerow(["Invoice", "Stock Code", *header[2:]] if "header" in faults else header)
    writer.writerows(rows)
    text = out.getvalue()
    if "blank" in faults:
        split = text.split("\n")
        where = draw(st.integers(1, len(split) - 1))
        text = "\n".join([*split[:where], "", *split[where:]])
    if "inner quote" in faults:
        text = text.replace("GLASS BALL", 'GLASS "BALL', 1).replace("POST", 'PO"ST', 1)
    if "after quote" in faults:
        text = text.replace('"A, B AND C"', '"A, B" AND C', 1).replace('" PADDED "', '" PADDED"x', 1)
    if "nul" in faults:
        text = text.replace("GLASS", "GL\0ASS", 1)
    if draw(st.booleans()):
        text = "\ufeff" + text
    if "two boms" in faults:
        text = "\ufeff\ufeff" + text
    content = text.encode("latin-1", "replace") if "latin-1" in faults else text.encode()
    if draw(st.booleans()):
        content = gzip.compress(content)
    return RetailFile(content, clean=not faults)


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("columnar")


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(retail_files(), st.sampled_from([1, 2, 3, 100_000]))
def test_the_columnar_reader_gives_what_the_row_loop_gives(scratch, monkeypatch_module, file, every):
    """Items, stats at each item, progress calls and errors alike; and a file with nothing unusual in it is
    read by columns (declining it would pass the comparison while the fast path did nothing)."""
    path = scratch / "retail.csv"
    path.write_bytes(file.content)
    monkeypatch_module.setattr(online_retail, "PROGRESS_EVERY", every)  # progress between the customers
    expected = outcome(read_rows, path)
    assert outcome(fast_first, path) == expected
    if file.clean:
        assert columnar.read_checked(path) is not None, expected[-2:]


@pytest.fixture(scope="module")
def monkeypatch_module() -> Iterator[pytest.MonkeyPatch]:
    with pytest.MonkeyPatch.context() as patch:
        yield patch


# two sheets: 500001 repeated line for line by the second (read once), 500002 changed (both kept)
TWO_SHEETS = (
    ",".join(HEADER)
    + "\n"
    + """\
500001,85048,"GLASS BALL, 20 LIGHTS",12,2010-12-02 09:00:00,6.95,12345.0,United Kingdom
500002,22041,"RECORD FRAME 7"" SINGLE",48,2010-12-02 09:05:00,2.1,12346,France
500001,21232,TRINKET BOX,6,2010-12-02 09:07:00,1.25,12345,United Kingdom
500003,21232,TRINKET BOX,6,2010-12-02 09:08:00,1.25,,United Kingdom
500001,21232,TRINKET BOX,6,2010-11-30 09:00:00,1.25,12345,United Kingdom
500001,85048,"GLASS BALL, 20 LIGHTS",12,2010-11-30 09:00:00,6.95,12345,United Kingdom
500002,22041,"RECORD FRAME 7"" SINGLE",24,2010-11-30 09:05:00,2.1,12346,France
"""
)


def test_the_comparison_catches_a_columnar_reader_without_the_sheet_rule(tmp_path, monkeypatch):
    """The differential check is not blind: with the sheet break dropped from the fast path alone, the
    second sheet's rows join their invoices and the two readers differ."""
    path = tmp_path / "two-sheets.csv"
    path.write_text(TWO_SHEETS)
    assert outcome(fast_first, path) == outcome(read_rows, path)
    monkeypatch.setattr(columnar, "is_sheet_break", lambda previous, when: False)
    assert columnar.read_checked(path) is not None
    assert outcome(fast_first, path) != outcome(read_rows, path)


# totals whose exponents differ from their lines' values (83.400 + 3.0, 2.5E+1 x 4, a thousandth), each
# invoice on one sheet: the columnar reader sums them as arrays (`_totals`)
EXPONENTS = (
    ",".join(HEADER)
    + "\n"
    + """\
500001,85048,GLASS BALL,12,2010-12-02 09:00:00,6.950,12345,United Kingdom
500001,21232,"TRINKET BOX, SMALL",2,2010-12-02 09:01:00,1.5,12345,United Kingdom
500002,22041,CADRE PHOTO ÉTÉ,4,2010-12-02 09:05:00,2.5E+1,12346,France
C500003,22041,CADRE PHOTO ÉTÉ,-1,2010-12-02 09:06:00,0.001,12346,France
500004,22041,CADRE PHOTO ÉTÉ,0,2010-12-02 09:07:00,-1.0,12346,France
"""
)


def test_the_comparison_catches_totals_or_line_bytes_unlike_the_row_loops(tmp_path, monkeypatch):
    """The columnar reader's totals (array sums) and lines' bytes (from each cell's bytes) are held to the
    reference's exponent and bytes: a total normalised, or a line's bytes laid out otherwise, is caught."""
    path = tmp_path / "exponents.csv"
    path.write_text(EXPONENTS)
    summed: list[list[Decimal] | None] = []
    totals = columnar._totals

    def recorded(*args: Any) -> list[Decimal] | None:
        summed.append(totals(*args))
        return summed[-1]

    def normalised(*args: Any) -> list[Decimal]:
        return [total.normalize() for total in totals(*args) or []]

    monkeypatch.setattr(columnar, "_totals", recorded)
    assert outcome(fast_first, path) == outcome(read_rows, path)
    assert summed and summed[0] is not None  # the array sums were taken, not `settle_invoice`
    assert [str(total) for total in summed[0]] == ["86.400", "100", "-0.001", "0.0"]
    with monkeypatch.context() as patch:
        patch.setattr(columnar, "_totals", normalised)
        assert outcome(fast_first, path) != outcome(read_rows, path)
    with monkeypatch.context() as patch:
        patch.setattr(columnar, "line_json", lambda **parts: b"{" + b",".join(parts.values()) + b"}")
        assert outcome(fast_first, path) != outcome(read_rows, path)


def test_a_file_it_can_read_is_read_by_columns_not_by_the_row_loop(tmp_path, monkeypatch):
    """With the row loop made to fail, a well-formed file above the size limit still reads, and alike."""
    path = tmp_path / "two-sheets.csv"
    path.write_text(TWO_SHEETS)
    expected = outcome(read_rows, path)
    monkeypatch.setattr(online_retail, "COLUMNAR_FROM", 0)

    def no_loop(*args: Any, **kwargs: Any) -> Iterator[Any]:
        raise AssertionError("the row loop read a file the columnar reader can read")

    monkeypatch.setattr(online_retail, "read_rows", no_loop)
    assert outcome(read_records, path) == expected
    stats = ReadStats()
    list(read_records(path, stats=stats))
    assert (stats.repeated_rows, stats.sheets, stats.invoices, stats.rows_without_customer) == (2, 2, 2, 1)


def test_a_file_it_declines_is_read_by_the_row_loop_with_its_message(tmp_path, monkeypatch):
    """A short row: declined before anything is yielded, and the reference names the row."""
    path = tmp_path / "short.csv"
    path.write_text(
        TWO_SHEETS.replace("2010-12-02 09:05:00,2.1,12346,France", "2010-12-02 09:05:00,2.1,12346")
    )
    monkeypatch.setattr(online_retail, "COLUMNAR_FROM", 0)
    assert columnar.read_checked(path) is None
    with pytest.raises(ValueError, match=r"data row 2: 7 cells where the header has 8"):
        list(read_records(path))


def test_small_files_are_read_by_the_row_loop_without_loading_polars(tmp_path):
    """Below `COLUMNAR_FROM` loading polars (~0.2 CPU s) would cost more than the loop it saves."""
    path = tmp_path / "two-sheets.csv"
    path.write_text(TWO_SHEETS)
    code = (
        "import sys; from api.importers.online_retail import read_records\n"
        f"n = len(list(read_records({str(path)!r})))\n"
        "print(n, 'polars' in sys.modules)"
    )
    found = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert found.stdout.split() == ["4", "False"]  # two customers, two invoices


def test_the_reader_process_on_a_large_file_loads_neither_the_store_nor_pydantic(tmp_path):
    """The columnar path, as the import's reader process runs it, keeps what that process must not load
    out (tests/api/test_retail_entries.py checks the row loop's)."""
    rows = [",".join(HEADER)]
    for i in range(18_000):  # ~1.2 MB, above COLUMNAR_FROM
        number, customer = 500000 + i // 4, 12345 + i // 4 % 50  # four lines an invoice, 50 customers
        rows.append(
            f"{number},85048,GLASS BALL {i % 97},{1 + i % 5},2010-12-02 09:00:00,6.95,{customer},EIRE"
        )
    path = tmp_path / "large.csv"
    path.write_text("\n".join(rows) + "\n")
    assert path.stat().st_size >= online_retail.COLUMNAR_FROM
    assert reader_process(path) == (50 + 4_500 + 2, True, [])  # customers, invoices, two ReadStats


@pytest.mark.skipif(not REAL_FILE.exists(), reason=f"the Online Retail II file is not at {REAL_FILE}")
def test_the_real_file_is_read_by_columns():
    """Online Retail II is a file the columnar reader takes (test_imports.py's test_the_real_file holds
    its figures). That it reads it as the row loop does, record for record, is checked by
    `benchmarks/reader_parse.py --check` (~10 s here: both readers over 1.07M rows, then the comparison)."""
    assert columnar.read_checked(REAL_FILE) is not None
