"""`from_document` with a run's `Shared` values: the same events, equal lines' values one object."""

from __future__ import annotations

import math
from typing import Any

from ml.events import Shared, from_document


def _document(member: str, day: int, lines: list[tuple[str, int, float]]) -> dict[str, Any]:
    """An invoice as a committed document reads (`api/evidence/documents.py`)."""
    return {
        "member": member,
        "kind": "purchase",
        "occurredAt": f"2011-03-{day:02d}T10:00:00+00:00",
        "data": {
            "total": round(sum(q * p for _, q, p in lines), 2),
            "country": "United Kingdom",
            "lines": [
                {"stockCode": c, "quantity": q, "price": p, "description": f"ITEM {c}"} for c, q, p in lines
            ],
        },
    }


def test_shared_values_give_the_same_events_in_fewer_objects():
    docs: list[dict[str, Any]] = [
        _document("0x" + "aa" * 32, 1, [("85123A", 6, 2.55), ("71053", 6, 3.39), ("X", 1, 0.0)]),
        _document("0x" + "aa" * 32, 2, [("85123A", 6, 2.55), ("71053", 12, 3.39)]),
        _document("0x" + "bb" * 32, 3, [("85123A", 6, 2.95), ("22752", -2, 7.65), ("X", 1, -0.0)]),
        {"member": "0x" + "bb" * 32, "kind": "support_ticket", "occurredAt": "2011-03-04T10:00:00+00:00",
         "data": {"text": "late"}},
    ]  # fmt: skip
    shared = Shared()
    plain = [from_document(d) for d in docs]
    lean = [from_document(d, shared) for d in docs]
    assert lean == plain
    # every equal (code, quantity) pair and price is one object across the events
    pairs = [p for e in lean for p in e.items]
    prices = [p for e in lean for p in e.prices if p != 0.0]
    assert len(pairs) == 8 and len(shared.pairs) == 5
    assert len({id(p) for p in pairs}) == len(set(pairs))
    assert len({id(p) for p in prices}) == len(set(prices)) == 4


def test_shared_lines_of_other_types_are_converted_as_without_sharing():
    # JSON gives codes as strings and quantities as ints; a document may hold other values (a number for
    # a code, a float quantity, a list), and a line with them is read as `from_document` reads it alone
    lines = [
        {"stockCode": 85123, "quantity": 6.0, "price": 1, "description": None},
        {"stockCode": "85123", "quantity": 6, "price": 1.0, "description": "MUG"},
        {"stockCode": ["85123"], "quantity": True, "price": "2.5", "description": 7},
        {"stockCode": "85123", "quantity": 6, "price": math.nan, "description": "MUG"},
    ]
    doc = {"member": "0x" + "aa" * 32, "kind": "purchase", "occurredAt": "2011-03-01T10:00:00+00:00",
           "data": {"total": 1.0, "lines": lines}}  # fmt: skip
    shared = Shared()
    lean, plain = from_document(doc, shared), from_document(doc)
    assert lean.items == plain.items == (("85123", 6), ("85123", 6), ("['85123']", 1), ("85123", 6))
    assert lean.descriptions == plain.descriptions == ("", "MUG", "7", "MUG")
    assert lean.prices[:3] == plain.prices[:3] == (1.0, 1.0, 2.5) and math.isnan(lean.prices[3])
    assert all(type(q) is int for _, q in lean.items) and all(type(p) is float for p in lean.prices)
    assert lean.items[0] is lean.items[1] is lean.items[3]


def test_shared_prices_keep_a_zeros_sign_and_a_nan():
    shared = Shared()
    assert shared.price(0.0) == 0.0
    assert math.copysign(1.0, shared.price(-0.0)) == -1.0  # not the 0.0 seen first
    assert math.copysign(1.0, shared.price(0.0)) == 1.0
    assert math.isnan(shared.price(math.nan))
    assert shared.price(2.5) is shared.price(float("2.5"))
    assert shared.pair("A", 1) is shared.pair("A", int("1"))
    assert shared.pair("A", 1) != shared.pair("A", 2)


def test_kinds_of_a_memos_table_of_strings_are_those_of_its_texts():
    import struct

    from api.evidence.inputs import _JoinedStrings, _Strings
    from ml.features import _KIND_INDEX, category
    from ml.table import kinds_of

    def table(texts: list[str]) -> _Strings:
        encoded = [t.encode() for t in texts]
        ends, at = [], 0
        for e in encoded:
            at += len(e)
            ends.append(at)
        return _Strings(struct.pack(f"<I{len(ends)}I", len(ends), *ends) + b"".join(encoded))

    first = ["CHRISTMAS TREE", "MUG", "Crème brûlée TIN", "CHRISTMAS TREE"]
    second = ["MUG", "PAPER CHRISTMAS LANTERN", ""]
    joined = _JoinedStrings([table(first), table(second)])
    plain = [*first, *second]
    indices = [-1, 0, 3, 2, 4, 5, 6, 1, -1, 5]
    expected = [_KIND_INDEX[category(plain[i]) if i >= 0 else "other"] for i in indices]
    assert kinds_of(joined, indices) == kinds_of(plain, indices) == expected
    assert len(set(expected)) > 1
