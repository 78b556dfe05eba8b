"""The fast path of `canonical_json` is exact: the same bytes as the reference (`rfc8785.dumps`), or the
same refusal, on generated JSON-like values with hostile strings, keys and numbers."""

import json
import math
import sys
from typing import Any

import pytest
import rfc8785
from hypothesis import example, given, settings
from hypothesis import strategies as st

from offchain.canonical import (
    Canonical,
    CanonicalizationError,
    canonical_json,
    canonical_number,
    canonical_object,
    canonical_str,
    fast_canonical_json,
    reference_canonical_json,
)

SAFE = 2**53 - 1

# Characters where the two encoders could plausibly disagree: controls (short and \u00xx escapes), the
# quote and backslash, DEL, the line/paragraph separators JavaScript cares about, the last BMP character
# below the surrogates, lone surrogates (JCS refuses them), private-use and specials above them (which
# sort after a surrogate pair in UTF-16 but before it by code point), and characters above U+FFFF.
TRICKY_CHARS = st.sampled_from(
    [chr(c) for c in range(0x20)]
    + ['"', "\\", "/", "\x7f", "\x80", "\xa0", "\u2028", "\u2029", "\ud7ff", "\ud800", "\udbff", "\udc00"]
    + ["\udfff", "\ue000", "\uf8ff", "\ufb00", "\ufeff", "\ufffd", "\uffff", "\U00010000", "\U0001f600"]
    + ["\U0010ffff", "a", "A", "z", "0", "é", "€"]
)
TEXT = st.text(st.one_of(TRICKY_CHARS, st.characters(codec=None)), max_size=12)

# around both formats' switches to exponents (1e-4 / 1e16 in Python, 1e-6 / 1e21 in ECMAScript), 2**53,
# the extremes, non-finite values, and money-like amounts
TRICKY_FLOATS = st.sampled_from(
    [
        *(0.0, -0.0, 1.0, -1.0, 0.1, 0.5, 1 / 3, 2 / 3, 83.4, -83.4, 4.5, 0.002, 100.0, 1234.5678, 4.35),
        *(1e-4, 0.000123, 9.99e-5, 1e-5, 1e-6, 1.5e-6, 1e-7, 1e-27),
        *(1e15, 1e16 - 2, 1e16, 1e17, 1e20, 1e21, 1e22, 1e30, 9.999999999999999e20, 123456789012345.67),
        *(2.0**53, -(2.0**53), 2.0**53 - 1, 2.0**53 + 2, 333333333.33333329),
        *(5e-324, sys.float_info.min, sys.float_info.max, math.nan, math.inf, -math.inf),
    ]
)
TRICKY_INTS = st.sampled_from([0, -1, SAFE, -SAFE, SAFE + 1, -SAFE - 1, 2**63, -(2**63), 2**100])

SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    TRICKY_INTS,
    st.floats(),
    TRICKY_FLOATS,
    TEXT,
)
KEYS = st.one_of(TEXT, st.sampled_from(["", "a", "b", "aa", "\ue000", "\U00010000", "\ud800", "1"]))


def json_like(max_leaves: int = 25) -> st.SearchStrategy[object]:
    return st.recursive(
        SCALARS,
        lambda children: st.one_of(
            st.lists(children, max_size=5),
            st.tuples(children, children),
            st.dictionaries(KEYS, children, max_size=5),
            # non-string keys: json would stringify them, JCS refuses them
            st.dictionaries(
                st.one_of(st.integers(), st.booleans(), st.none()), children, min_size=1, max_size=2
            ),
        ),
        max_leaves=max_leaves,
    )


def reference(value):
    """The reference's bytes, or the CanonicalizationError it leads to."""
    try:
        return rfc8785.dumps(value)
    except (rfc8785.CanonicalizationError, TypeError, ValueError) as exc:
        return CanonicalizationError(str(exc))


@settings(max_examples=1500, deadline=None)
@given(json_like())
@example({"\U00010000": 1, "\ue000": 2, "a": 3})  # UTF-16 and code-point order disagree here
@example({"n": [1.0, -0.0, 1e-7, 1e21, 2.0**53, 0.1, 5e-324]})
@example({"s": "\ud800"})
@example({"\ud800": 1})
@example({1: "x"})
@example([2**53, -(2**53)])
def test_the_fast_path_gives_the_reference_bytes_or_falls_back(value):
    expected = reference(value)
    fast = fast_canonical_json(value)
    if fast is not None:
        # whatever the fast path accepts, the reference accepts, byte for byte
        assert not isinstance(expected, Exception), (value, fast)
        assert fast == expected
    # and the public function always answers as the reference does
    if isinstance(expected, Exception):
        with pytest.raises(CanonicalizationError):
            canonical_json(value)
    else:
        assert canonical_json(value) == expected


@settings(max_examples=300, deadline=None)
@given(
    st.dictionaries(
        st.text(st.characters(max_codepoint=0xD7FF)),
        st.one_of(
            st.integers(-SAFE, SAFE),
            st.text(st.characters(codec="utf-8")),
            st.floats(min_value=1e-4, max_value=1e15, allow_nan=False),
        ),
        max_size=8,
    )
)
def test_records_of_ordinary_values_take_the_fast_path(value):
    # keys below the surrogates, safe ints, UTF-8-encodable text and plain-range floats: never a fallback
    # (a float in this range may still print with an exponent, e.g. 1e-4 as 0.0001 both ways: checked)
    fast = fast_canonical_json(value)
    if all("e" not in repr(v) for v in value.values() if isinstance(v, float)):
        assert fast is not None
    assert canonical_json(value) == rfc8785.dumps(value)


def test_an_invoice_takes_the_fast_path_and_matches():
    invoice = realistic_invoice()
    assert fast_canonical_json(invoice) == rfc8785.dumps(invoice)
    assert reference_canonical_json(invoice) == canonical_json(invoice)


def test_the_rfc_example_through_the_fast_path_where_it_can():
    value = json.loads('{"numbers":[333333333.33333329,4.50,2e-3],"string":"\\u20ac$\\u000F\\u000aA"}')
    assert (
        fast_canonical_json(value)
        == b'{"numbers":[333333333.3333333,4.5,0.002],"string":"\xe2\x82\xac$\\u000f\\nA"}'
    )


def realistic_invoice():
    """An interaction document as recording one Online Retail II invoice builds it (20 lines)."""
    lines: list[dict[str, Any]] = [
        {
            "stockCode": f"8{5000 + i}A",
            "description": f"WHITE HANGING HEART T-LIGHT HOLDER {i}",
            "quantity": 6 + i,
            "price": round(0.85 + i * 0.4, 2),
        }
        for i in range(20)
    ]
    total = round(sum(line["quantity"] * line["price"] for line in lines), 2)
    return {
        "v": 1,
        "partner": "acme",
        "member": "0x" + "ab" * 32,
        "kind": "purchase",
        "occurredAt": "2010-12-01T08:26:00.000000+00:00",
        "externalKey": "536365",
        "data": {"invoice": "536365", "country": "United Kingdom", "lines": lines, "total": total},
    }


# --- objects with members serialized ahead (`Canonical`, `canonical_object`) -------------------------


@settings(max_examples=500, deadline=None)
@given(st.dictionaries(KEYS, st.tuples(json_like(8), st.booleans()), max_size=6))
@example({"\U00010000": (1, True), "\ue000": (2, False), "a": ([1.0], True)})  # UTF-16 order matters
def test_an_object_with_members_serialized_ahead_is_the_object_serialized_at_once(members):
    whole = {name: value for name, (value, _) in members.items()}
    expected = reference(whole)
    try:
        ahead = {name: Canonical.of(value) if early else value for name, (value, early) in members.items()}
        composed = canonical_object(ahead)
    except CanonicalizationError:
        assert isinstance(expected, Exception)  # refused either way
        return
    assert composed == expected


def test_an_interaction_document_embeds_its_data_exactly():
    invoice: dict[str, Any] = {
        "invoice": "536365",
        "lines": [{"price": 2.55, "quantity": 6, "stockCode": "85123A"}],
    }
    members: dict[str, Any] = {
        "v": 1,
        "partner": "acme",
        "member": "0x00",
        "externalKey": "536365",
        "kind": "purchase",
    }
    assert canonical_object({**members, "data": Canonical.of(invoice)}) == rfc8785.dumps(
        {**members, "data": invoice}
    )


def _same_or_same_refusal(fast: Any, value: Any) -> None:
    """`fast()` gives the reference's bytes for `value`, or refuses as the reference does."""
    try:
        expected = rfc8785.dumps(value)
    except Exception:
        with pytest.raises(CanonicalizationError):
            fast()
        return
    assert fast() == expected


@settings(max_examples=400, deadline=None)
@given(st.one_of(TEXT, st.integers(), TRICKY_INTS, st.floats(), TRICKY_FLOATS))
@example("\ud800")
@example(-0.0)
@example(1e-7)
@example(2**53)
def test_the_value_writers_for_fixed_shapes_are_exact(value):
    """canonical_str and canonical_number (what a writer of records of a fixed shape uses for the values)
    give the reference's bytes, or its refusal."""
    _same_or_same_refusal(
        lambda: canonical_str(value) if type(value) is str else canonical_number(value), value
    )


# A line's price is finite: the reader refuses any other at its row (`_line`, test_retail_entries.py), and
# a Line of price Infinity and quantity 0 has no amount (Decimal's InvalidOperation, as its line is made).
# The invoice's total may be anything: the payload's writer must refuse what canonical JSON refuses.
FINITE_PRICES = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False), TRICKY_FLOATS.filter(math.isfinite)
)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(TEXT, TEXT, st.one_of(st.integers(), TRICKY_INTS), FINITE_PRICES),
        max_size=4,
    ),
    TEXT,
    TEXT,
    st.one_of(st.floats(), TRICKY_FLOATS),
)
def test_an_invoices_canonical_payload_is_canonical_json_of_its_payload(lines, country, number, total):
    from datetime import UTC, datetime
    from decimal import Decimal

    from api.importers.records import InvoiceRecord, Line
    from offchain.models import InteractionKind

    def money(x: float) -> Decimal:
        return Decimal(repr(x)) if math.isfinite(x) else Decimal(x)

    record = InvoiceRecord(
        invoice=number,
        customer_id="1",
        country=country,
        occurred_at=datetime(2010, 1, 4, tzinfo=UTC),
        kind=InteractionKind.PURCHASE,
        lines=tuple(Line(code, text, quantity, money(price)) for code, text, quantity, price in lines),
        total=money(total),
    )
    _same_or_same_refusal(record.canonical_payload, record.payload())
