"""Attacks on the columnar Online Retail II reader (api/importers/columnar.py) as a hostile or careless data
source would make them: each file is read by the row loop alone (`read_rows`, the reference) and by
`read_records` with the fast path on every file, and what a consumer sees must be the same, item for item
(compared by repr, so that Decimal("2.55") and Decimal("2.550") differ), with the stats at each item, the
progress calls and the error. Where the fast path must take a file (so that declining everything cannot
pass), the test says so."""

from __future__ import annotations

import csv
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytest

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
    dates: with one naive and one with an offset, the reference raises TypeError there, after the customers
    of the rows before it. The fast path raised the same TypeError before yielding anything (it declined on
    ValueError only): a consumer saw a different stream."""
    text = (
        f"{HEAD}\n{row(when='2010-12-01T08:26')}\n"
        f"{row('500002', customer='13086', when='2010-12-01 08:27:00+00:00')}\n"
    )
    expected = alike(tmp_path, text)
    assert "CustomerRecord" in expected[0]
    assert "TypeError" in expected[-2]
