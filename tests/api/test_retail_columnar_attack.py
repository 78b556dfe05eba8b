"""Attacks on the columnar Online Retail II reader (api/importers/columnar.py) as a hostile or careless data
source would make them: each file is read by the row loop alone (`read_rows`, the reference) and by
`read_records` with the fast path on every file, and what a consumer sees must be the same, item for item
(compared by repr, so that Decimal("2.55") and Decimal("2.550") differ), with the stats at each item, the
progress calls and the error. Where the fast path must take a file (so that declining everything cannot
pass), the test says so."""

from __future__ import annotations

import csv
import gzip
import io
import zlib
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from api.importers import columnar
from api.importers.online_retail import HEADER, ReadStats, read_rows
from tests.api.test_retail_columnar import Reader, fast_first

HEAD = ",".join(HEADER)


def seen(read: Reader, path: Path) -> list[str]:
    """Everything a consumer of `read` sees, as text (see `test_retail_columnar.outcome`)."""
    events: list[Any] = []
    stats = ReadStats()
    try:
        for item in read(path, stats=stats, progress=lambda *call: events.append(("progress", *call))):
            events.append(("item", item, asdict(stats)))
    except Exception as exc:
        events.append(("error", type(exc).__name__, str(exc)))
    events.append(("end", asdict(stats)))
    return [repr(event) for event in events]


def row(
    invoice: str = "500001",
    description: str = "GLASS BALL",
    quantity: str = "1",
    when: str = "2010-12-01 08:26:00",
    price: str = "2.55",
    customer: str = "13085",
    country: str = "United Kingdom",
) -> str:
    return ",".join([invoice, "85048", description, quantity, when, price, customer, country])


def alike(tmp_path: Path, content: bytes | str, name: str = "retail.csv") -> list[str]:
    """The file read both ways, asserted alike; the reference's events."""
    path = tmp_path / name
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    expected = seen(read_rows, path)
    assert seen(fast_first, path) == expected
    return expected


def taken(tmp_path: Path, content: bytes | str, name: str = "retail.csv") -> bool:
    path = tmp_path / name
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    return columnar.read_checked(path) is not None


# --- the header row ------------------------------------------------------------------------------------


@pytest.mark.parametrize("where", ["extra column", "padded name"])
def test_a_header_cell_longer_than_the_csv_field_limit_is_refused_as_the_row_loop_refuses_it(tmp_path, where):
    """The csv module refuses any cell longer than `csv.field_size_limit()`, the header's included (an
    `_csv.Error`, before any row); the fast path measured the data rows' cells only, and read the file."""
    long = "x" * (csv.field_size_limit() + 1)
    if where == "extra column":
        text = f"{HEAD},{long}\n{row()},\n{row('500002', customer='13086')},\n"
    else:
        text = f"Invoice{' ' * len(long)}{HEAD[7:]}\n{row()}\n{row('500002', customer='13086')}\n"
    expected = alike(tmp_path, text)
    assert "field larger than field limit" in expected[-2]


# --- dates ---------------------------------------------------------------------------------------------


def test_a_date_with_a_time_zone_after_one_without_fails_after_the_same_items(tmp_path):
    """A row textually earlier than the row before is checked for a sheet break by subtracting the two
    dates: with one naive and one with an offset, the reference raised TypeError there, after the customers
    of the rows before it, and the fast path raised it before yielding anything (it declined on ValueError
    only): a consumer saw a different stream. Now every date is checked at its row before it is compared,
    and both refuse the row whose date has a time zone, in words, after the same items."""
    text = (
        f"{HEAD}\n{row(when='2010-12-01 08:26:00')}\n"
        f"{row('500002', customer='13086', when='2010-12-01 08:27:00+00:00')}\n"
    )
    expected = alike(tmp_path, text)
    assert "CustomerRecord" in expected[0]
    assert "ValueError" in expected[-2] and "has a time zone" in expected[-2]


# --- hand-written files: each read alike, and the clean ones read by columns ----------------------------

TWO = row("500002", customer="13086")  # a second invoice, so that no file is one invoice only
LONG = "x" * csv.field_size_limit()  # the longest cell the csv module takes
# digits and separators other than ASCII's, which int(), Decimal() and str.isdigit() take (or not)
ARABIC_12, WIDE_12 = "\u0661\u0662", "\uff11\uff12"
ARABIC_SEPARATOR, ARABIC_1_5 = "\u066b", "\u0661.\u0665"
WIDE_13085 = "\uff11\uff13\uff10\uff18\uff15"


def short(line: str) -> str:
    return line.rsplit(",", 1)[0]


def lines(*rows: str, end: str = "\n", head: str = HEAD) -> str:
    """A file of the header and these rows."""
    return "\n".join([head, *rows]) + end


# (what, file, taken): taken is True where the fast path must read the file, False where it must decline,
# None where either is right (the comparison alone holds)
CASES: list[tuple[str, str | bytes, bool | None]] = [
    # the csv dialect
    ("a carriage return alone ends a row", lines(row(), TWO).replace("\n", "\r"), False),
    ("a carriage return inside a quoted cell", lines(row(description='"A\r\nB"'), TWO), False),
    ("a quote inside an unquoted cell", lines(row(description='7" FRAME'), TWO), False),
    ("text after a closing quote", lines(row(description='"ab"c'), TWO), False),
    ("a space before an opening quote", lines(row(description=' "ab"'), TWO), False),
    (
        "quoted cells with commas, quotes and newlines",
        lines(
            row(description='"A, 7"" FRAME\nB"'),
            row(invoice='"500002"', customer='""', country='"U\nK"'),
            TWO,
            end="",
        ),
        True,
    ),
    (
        "every cell quoted",
        "\n".join(",".join(f'"{c}"' for c in line.split(",")) for line in (HEAD, row(), TWO)),
        True,
    ),
    ("an empty line in the middle", lines(row(), "", TWO), False),
    ("an empty line at the end", lines(row(), TWO, end="\n\n"), False),
    ("a trailing comma on every row", lines(row() + ",", TWO + ",", head=HEAD + ","), True),
    ("a trailing comma on one row", lines(row() + ",", TWO), None),
    ("a trailing comma, and a short row", lines(row() + ",", short(TWO)), False),
    ("a NUL byte", lines(row(description="GL\0ASS"), TWO), False),
    ("no final newline", lines(row(), TWO, end=""), True),
    ("a last row with fewer cells, no final newline", lines(row(), short(TWO), end=""), False),
    ("a byte-order mark", "\ufeff" + lines(row(), TWO), True),
    ("a byte-order mark in a description", lines(row(description="\ufeffX"), TWO), True),
    ("a byte-order mark starting a row", lines(row(), "\ufeff" + TWO), None),
    ("two byte-order marks", "\ufeff\ufeff" + lines(row(), TWO), False),
    ("a cell as long as the csv module takes", lines(row(description=LONG), TWO), True),
    ("a cell one longer", lines(row(description=LONG + "x"), TWO), False),
    ("a quoted cell one longer", lines(row(description=f'"{LONG}x"'), TWO), False),
    ("a long cell of 3-byte characters", lines(row(description="\u2615" * (len(LONG) // 2)), TWO), None),
    ("a header with extra columns", lines(row() + ",a,", TWO + ",,", head=HEAD + ",Extra,"), True),
    ("a header with spaces around its names", lines(row(), TWO, head=", ".join(HEADER) + " "), True),
    (
        "a header with a quoted newline in an extra column",
        lines(row() + ",", TWO + ",", head=HEAD + ',"A\nB"'),
        True,
    ),
    ("a header with 7 columns", lines(short(row()), short(TWO), head=short(HEAD)), False),
    ("not utf-8", lines(row(description="GL\xc9SS"), TWO).encode("latin-1"), False),
    ("an encoded surrogate", lines(row(), TWO).encode().replace(b"GLASS", b"GL\xed\xa0\x80SS"), False),
    ("the empty file", b"", False),
    ("a header only", lines(), False),
    ("a header only, no newline", HEAD, False),
    ("one row", lines(row()), True),
    ("one row without a customer", lines(row(customer="")), True),
    # numbers as Python reads them (int(), Decimal()), which a vectorized cast would not
    (
        "quantities int() takes",
        lines(*(row(quantity=q) for q in [" 12", "+5", "1_000", ARABIC_12, WIDE_12, "-0", "012"]), TWO),
        True,
    ),
    ("quantities int() refuses", lines(row(quantity="1e3"), row(quantity="0x10"), TWO), False),
    (
        "prices Decimal() takes",
        lines(
            *(
                row(price=p)
                for p in ["2.550", " 2.55", "+2.55", "1_0.5", "1e3", "-0", ".5", "5.", "0E-7", ARABIC_1_5]
            ),
            TWO,
        ),
        True,
    ),
    ("a price Decimal() refuses", lines(row(price=ARABIC_SEPARATOR), TWO), False),
    ("a price with the Arabic decimal separator", lines(row(price=f"1{ARABIC_SEPARATOR}5"), TWO), False),
    ("a price out of range", lines(row(price="1E+400"), TWO), False),
    (
        "customer ids of one customer",
        lines(
            *(
                row(customer=c)
                for c in [
                    "13085.0",
                    "013085",
                    "1.3085e4",
                    " 13085",
                    "13085 ",
                    WIDE_13085,
                    "13085.00",
                    "1_3085",
                    "+13085",
                ]
            ),
            TWO,
        ),
        True,
    ),
    ("customer ids -0 and 0", lines(row(customer="-0"), row("500002", customer="0")), True),
    ("a customer id that is not an integer", lines(row(), row("500002", customer="13085.5")), False),
    # dates: the file's one form (YYYY-MM-DD HH:MM:SS), checked at every row; other forms fromisoformat
    # takes are refused there by the row loop, so declined
    (
        "dates fromisoformat takes",
        lines(
            row(when="2010-12-01T08:26"),
            row("500002", customer="13086", when="2010-12-01 08:27:00.5"),
            row("500003", when="2010-12-01"),
        ),
        False,
    ),
    # refused by the row loop at its invoice (a date with an offset of its own is no UTC date), so declined
    (
        "a date with a time zone",
        lines(row(when="2010-12-01T08:26"), row("500004", when="2010-12-02 08:26Z")),
        False,
    ),
    (
        "a sheet break between two forms of date",
        lines(row(when="2010-12-05T08:26"), row("500002", customer="13086", when="2010-12-01 08:26:00")),
        False,
    ),
    (
        "earlier than the date before as text, not as a date",
        lines(row(when="2010-12-02T08:26"), row("500002", customer="13086", when="2010-12-02 08:26:00")),
        False,
    ),
    (
        "a malformed date after a sheet break",
        lines(row(when="2010-12-05 08:26:00"), row("500002", customer="13086", when="2010-12-01 8:26")),
        None,
    ),
    (
        "a date fromisoformat refuses",
        lines(row(), row("500002", customer="13086", when="2010-12-01 08:26:60")),
        False,
    ),
    # invoices
    ("a number reappearing after other invoices", lines(row(), TWO, row(quantity="3")), True),
    (
        "a repeat in the next sheet differing by one line",
        lines(
            row(when="2010-12-05 08:00:00"),
            row(quantity="2", when="2010-12-05 08:00:00"),
            row(when="2010-12-01 08:00:00"),
            row(quantity="3", when="2010-12-01 08:00:00"),
        ),
        True,
    ),
    (
        "a repeat in the next sheet with its price spelt 2.550",
        lines(row(when="2010-12-05 08:00:00"), row(when="2010-12-01 08:00:00", price="2.550")),
        True,
    ),
    (
        "a plain repeat in the next sheet, and a third sheet",
        lines(
            row(when="2010-12-09 08:00:00"), row(when="2010-12-05 08:00:00"), row(when="2010-12-01 08:00:00")
        ),
        True,
    ),
    (
        "numbers that are not invoices",
        lines(*(row(invoice=n) for n in ["c123", "C", "A563185", "123A", "", " 500001", "C-1"]), TWO),
        True,
    ),
    (
        "numbers that are",
        lines(
            *(
                row(n, customer=str(13000 + i))
                for i, n in enumerate(["C500001", ARABIC_12, WIDE_12, "0500001", "C0"])
            ),
            TWO,
        ),
        True,
    ),
    ("a number int() refuses but isdigit() takes", lines(row(invoice="\u00b2"), TWO), True),
    (
        "an invoice on two spellings of one customer",
        lines(row(), row(customer="13085.0"), row(customer="013085"), TWO),
        True,
    ),
    ("an invoice on two customers", lines(row(), TWO, row(customer="13086")), False),
    ("an invoice whose lines have two countries", lines(row(country="EIRE"), row(), TWO), True),
]


@pytest.mark.parametrize(("what", "content", "take"), CASES, ids=[case[0] for case in CASES])
def test_hand_written_files_are_read_as_the_row_loop_reads_them(tmp_path, what, content, take):
    alike(tmp_path, content)
    if take is not None:
        assert taken(tmp_path, content) is take


# --- gzip ----------------------------------------------------------------------------------------------

PLAIN = f"{HEAD}\n{row()}\n{TWO}\n".encode()
PACKED = gzip.compress(PLAIN)
GZIPS: list[tuple[str, bytes, str, bool]] = [
    ("one member", PACKED, "retail.csv.gz", True),
    ("two members", gzip.compress(PLAIN[:50]) + gzip.compress(PLAIN[50:]), "retail.csv.gz", True),
    ("an empty member first", gzip.compress(b"") + PACKED, "retail.csv.gz", True),
    ("zeros after the member", PACKED + b"\0" * 8, "retail.csv.gz", True),
    ("garbage after the member", PACKED + b"garbage", "retail.csv.gz", False),
    ("zeros, then garbage", PACKED + b"\0\0xx", "retail.csv.gz", False),
    ("a second member's magic alone", PACKED + b"\x1f\x8b", "retail.csv.gz", False),
    ("truncated", PACKED[:-4], "retail.csv.gz", False),
    ("a wrong CRC", PACKED[:-8] + bytes([PACKED[-8] ^ 1]) + PACKED[-7:], "retail.csv.gz", False),
    ("a wrong length", PACKED[:-1] + bytes([PACKED[-1] ^ 1]), "retail.csv.gz", False),
    ("zlib, not gzip", zlib.compress(PLAIN), "retail.csv.gz", False),
    ("a gzip inside a gzip", gzip.compress(PACKED), "retail.csv.gz", False),
    ("a .gz name on a plain file", PLAIN, "retail.csv.gz", False),
    ("a gzip named .csv", PACKED, "retail.csv", True),
    ("the empty file gzipped", gzip.compress(b""), "retail.csv.gz", False),
]


@pytest.mark.parametrize(("what", "content", "name", "take"), GZIPS, ids=[case[0] for case in GZIPS])
def test_gzip_files_are_read_as_the_row_loop_reads_them(tmp_path, what, content, name, take):
    """The fast path inflates with ISA-L, the row loop with the gzip module: they must take and refuse the
    same streams."""
    alike(tmp_path, content, name)
    assert taken(tmp_path, content, name) is take


# --- generated files -----------------------------------------------------------------------------------

NUMBERS = [
    "500001",
    "500002",
    "C500003",
    "500004",
    "c123",
    "C",
    "A563185",
    "123A",
    "\u0661\u0662",
    "\uff15",
    "²",
    "0500001",
]
SPELLINGS = {
    "13085": [
        "13085",
        "13085.0",
        "013085",
        "1.3085e4",
        " 13085",
        "\uff11\uff13\uff10\uff18\uff15",
        "1_3085",
        "+13085",
    ],
    "13086": ["13086", "13086.0", "1.3086E+4"],
    "0": ["0", "-0", "0.0"],
}
QUANTITIES = ["1", " 12", "+5", "1_000", "\u0661\u0662", "-0", "01", "-3", "12 ", "1e3", "0x10"]
PRICES = [
    "2.55",
    "2.550",
    " 2.55",
    "+2.55",
    "1_0.5",
    "1e3",
    "-0",
    ".5",
    "0E-7",
    "\uff12.\uff15",
    "\u066b",
    "0x10",
]
DESCRIPTIONS = [
    "GLASS BALL",
    "A, B",
    'FRAME 7" X',
    "TWO\nLINES",
    " PAD ",
    "",
    "ÉCLAIR ☕",
    "\ufeffX",
    "\u2028",
]
DATES = [
    "2010-12-01 08:26:00",
    "2010-12-01T08:26",
    "2010-12-01 08:26:00.5",
    "2010-12-01",
    "2010-11-29 08:26:00",
    "2010-12-02 08:26:01",
    "2010-12-05 08:26:00",
    "2010-12-01 08:26:00+00:00",
    "2010-12-01 8:26:00",
]
# what a careless export does to a file's text: (what, change)
DAMAGE: list[tuple[str, Callable[[str], str]]] = [
    ("\\r\\n rows", lambda text: text.replace("\n", "\r\n")),
    ("\\r rows", lambda text: text.replace("\n", "\r")),
    ("an inner quote", lambda text: text.replace("GLASS BALL", 'GLASS "BALL', 1)),
    ("text after a quote", lambda text: text.replace('"A, B"', '"A, B" C', 1)),
    ("an empty line", lambda text: text.replace("\n", "\n\n", 2)[::-1].replace("\n\n", "\n", 1)[::-1]),
    ("a trailing comma", lambda text: text.replace("\n", ",\n", 2)),
    ("a NUL", lambda text: text.replace("A", "\0", 1)),
    ("a short last row", lambda text: text.rstrip("\n").rsplit(",", 1)[0]),
    ("a byte-order mark in a row", lambda text: text.replace("\n5", "\n\ufeff5", 1)),
]


@st.composite
def damaged_files(draw: st.DrawFn) -> tuple[bytes, bool]:
    """A file of the rows the reader has rules for, in the csv module's writing (some cells quoted), maybe
    damaged, maybe gzipped; and whether it is one the fast path must take (if the reference reads it)."""
    extra = draw(st.integers(0, 1))
    owners = {number: draw(st.sampled_from(sorted(SPELLINGS))) for number in NUMBERS}
    rows = []
    for _ in range(draw(st.integers(1, 10))):
        number = draw(st.sampled_from(NUMBERS))
        customer = draw(st.sampled_from(["", *SPELLINGS[owners[number]]]))
        rows.append(
            [
                number,
                draw(st.sampled_from(["85048", "POST"])),
                draw(st.sampled_from(DESCRIPTIONS)),
                draw(st.sampled_from(QUANTITIES)),
                draw(st.sampled_from(DATES)),
                draw(st.sampled_from(PRICES)),
                customer,
                draw(st.sampled_from(["United Kingdom", "EIRE"])),
                *[""] * extra,
            ]
        )
    if draw(st.booleans()):  # some rows again, as a sheet that repeats them would
        rows += [list(again) for again in draw(st.permutations(rows))[: draw(st.integers(0, len(rows)))]]
    out = io.StringIO()
    quote_all = draw(st.booleans())
    writer = csv.writer(out, lineterminator="\n", quoting=csv.QUOTE_ALL if quote_all else csv.QUOTE_MINIMAL)
    writer.writerow([*HEADER, *["Extra"] * extra])
    writer.writerows(rows)
    text = out.getvalue()
    if draw(st.booleans()):
        text = text[:-1]
    damage = draw(st.lists(st.sampled_from(DAMAGE), max_size=1)) if draw(st.booleans()) else []
    for _, change in damage:
        text = change(text)
    if draw(st.booleans()):
        text = "\ufeff" + text
        if quote_all:  # a quote right after the mark: the fast path declines (by design)
            damage.append(("a quoted cell after the mark", str))
    content = text.encode()
    if draw(st.integers(0, 4)) == 0:
        content = content.replace("É".encode(), b"\xc9")  # not UTF-8
        damage.append(("latin-1", str))
    if draw(st.integers(0, 3)) == 0:
        content = gzip.compress(content)
    return content, not damage


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(damaged_files())
def test_generated_files_are_read_as_the_row_loop_reads_them(tmp_path, file):
    """Alike, and an undamaged file the reference reads without an error is read by columns."""
    content, undamaged = file
    expected = alike(tmp_path, content)
    if undamaged and "'error'" not in expected[-2]:
        assert taken(tmp_path, content)


# --- slices --------------------------------------------------------------------------------------------


def test_sheet_breaks_and_quoted_newlines_at_the_slices_of_a_large_file(tmp_path):
    """A file large enough for rows of their own in each of the fast path's slices: a new sheet starts at
    the first row of every slice (and an invoice of each sheet is read again in the next), with multi-line
    quoted cells throughout; read by columns, and alike."""
    count = 16_000
    cells = [
        [
            *(
                str(500000 + i // 4 % 1500),
                "85048",
                "BALL" if i % 7 else '"A,\nB"',
                str(1 + i % 3),
                "",
                "2.55",
            ),
            *(str(12000 + i // 4 % 300) if i % 5 else "", "United Kingdom"),
        ]
        for i in range(count)
    ]

    def text(breaks: set[int]) -> str:
        out, last = [HEAD], 0
        for i, line in enumerate(cells):
            last = i if i in breaks else last
            line[4] = f"2010-12-{1 + (i - last) * 60 // count:02d} {i % 24:02d}:00:00"
            out.append(",".join(line))
        return "\n".join(out) + "\n"

    data = text(set()).encode()
    starts = [start for start, _ in columnar._slices(data, columnar._quotes(data) or [])][1:]
    assert len(starts) == columnar._SLICES - 1
    # the data rows that begin a slice: the records before each start, less the header
    breaks = {sum(1 for _ in csv.reader(io.StringIO(data[:start].decode()))) - 1 for start in starts}
    broken = text(breaks).encode()
    assert len(broken) == len(data)  # dates of one width: the same slices
    expected = alike(tmp_path, broken)
    assert taken(tmp_path, broken)
    assert "'sheets': 8" in expected[-1]
