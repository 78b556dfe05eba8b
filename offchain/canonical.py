"""RFC 8785 (JSON Canonicalization Scheme): one byte string per JSON value, so hashes and HMACs of
records are reproducible by anyone, in any language, from the same data.

`rfc8785.dumps` is the reference, but it is pure Python and dominates the cost of recording an
interaction (an invoice with twenty lines is a few hundred values). For the values records are made of,
the C encoder behind `json.dumps` (sorted keys, no spaces, UTF-8 as is) writes exactly the same bytes,
once a few differences are ruled out by a walk over the value (`_prepare`):

- key order: JCS sorts keys by UTF-16 code units, Python by code points. The two orders differ only
  when a character above U+FFFF (two UTF-16 surrogates, D800-DBFF first) meets one in U+E000..U+FFFF,
  so any key with a character above U+D7FF goes to the reference (also lone surrogates, which JCS
  refuses). Keys must be exactly `str` (json would turn ints into strings, JCS refuses them).
- strings: both escape only ``"``, ``\\`` and U+0000..U+001F, with the short forms \\b \\f \\n \\r \\t
  and lowercase \\u00xx for the rest, and leave everything else (DEL, U+2028, ...) as UTF-8. A lone
  surrogate cannot be encoded as UTF-8: the fast path's `.encode()` fails and the reference reports it.
- integers: the reference refuses magnitudes above 2**53 - 1; those go to the reference so it does.
- floats: JCS writes the ECMAScript form: shortest round-trip digits, in fixed notation from 1e-6 up to
  1e21. Python's `repr` has the same digits, in fixed notation from 1e-4 up to 1e16, so where `repr`
  has no exponent the two agree, except that an integral value drops its ".0" (and -0.0 is "0"):
  `_prepare` turns integral floats below 2**53 into ints, which `json` writes without the ".0". Anything
  else (exponents, NaN, infinities) goes to the reference.
- anything that is not exactly dict, list, tuple, str, int, float, bool or None (subclasses included,
  e.g. enums) goes to the reference, which decides what it means.

So `canonical_json` gives the reference's bytes, or its error, for every input; the fast path only
changes how long it takes (tests/offchain/test_canonical_fast.py compares the two on generated values).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import rfc8785

# the reference's integer domain: the integers a double holds exactly
_INT_MAX = 2**53 - 1
# the largest code point whose UTF-16 form is one code unit below the surrogate range (see above)
_KEY_CHAR_MAX = "\ud7ff"
# No circularity check: it encodes `_prepare`'s output, a fresh tree (a cycle in the input already ends
# `_prepare` with RecursionError, as it ends the reference).
_ENCODER = json.JSONEncoder(
    ensure_ascii=False, allow_nan=False, sort_keys=True, separators=(",", ":"), check_circular=False
)


# the C encoder's string form with ensure_ascii=False: what `_ENCODER` writes for a str
_encode_str = json.encoder.encode_basestring


class CanonicalizationError(ValueError):
    """The value is not representable in I-JSON (e.g. NaN, an integer beyond 2**53, a non-string key)."""


@dataclass(frozen=True, slots=True)
class Canonical:
    """A JSON value already in RFC 8785 form, made by `Canonical.of`: the bytes can be computed once
    (in another process, say) and embedded as they are by `canonical_object`."""

    json: bytes

    @classmethod
    def of(cls, value: Any) -> Canonical:
        return cls(canonical_json(value))


def canonical_object(members: Mapping[str, Any]) -> bytes:
    """`canonical_json` of the object `members`, where a member's value may be a `Canonical` (embedded
    as is) instead of a value to serialize. RFC 8785 is compositional: an object is its members in
    UTF-16 code-unit order of their names, each as name:value, so this gives the bytes `canonical_json`
    would give for the same object with each `Canonical` replaced by the value it was made from."""
    return (
        b"{" + b",".join([prefix + _member(members[name]) for name, prefix in _layout(tuple(members))]) + b"}"
    )


def _member(value: Any) -> bytes:
    return value.json if type(value) is Canonical else canonical_json(value)


@functools.lru_cache(maxsize=1024)
def _layout(names: tuple[str, ...]) -> tuple[tuple[str, bytes], ...]:
    """Each member name in RFC 8785 order with its `"name":` bytes: records of one kind share their
    names, so this is worked out once per kind rather than once per record."""
    return tuple((name, canonical_json(name) + b":") for name in sorted(names, key=_utf16_order))


def _utf16_order(name: str) -> bytes:
    if type(name) is not str:
        raise CanonicalizationError(f"object member names are strings, not {type(name).__name__}")
    # big-endian UTF-16 bytes compare as the sequence of code units (RFC 8785 section 3.2.3)
    return name.encode("utf-16-be", "surrogatepass")


class _Fallback(Exception):
    """The fast path cannot vouch for this value: use the reference implementation."""


def canonical_json(value: Any) -> bytes:
    """The RFC 8785 bytes of `value`; CanonicalizationError if it is not representable."""
    if type(value) is str:  # the most common value by far: no walk needed, only the encoder
        try:
            return _ENCODER.encode(value).encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate: the reference reports it
            return reference_canonical_json(value)
    fast = fast_canonical_json(value)
    if fast is not None:
        return fast
    return reference_canonical_json(value)


def canonical_str(value: str) -> bytes:
    """`canonical_json` of a string (exactly a `str`): for writers that lay out records of a fixed shape
    themselves (keys known, in RFC 8785 order) and need only their values' bytes."""
    try:
        return _encode_str(value).encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate: the reference reports it
        return reference_canonical_json(value)


def canonical_number(value: int | float) -> bytes:
    """`canonical_json` of an int or a float (exactly those types), as `_prepare` judges them."""
    if type(value) is float:
        text = repr(value)
        if "e" not in text and "n" not in text:
            if text[-2:] != ".0":
                return text.encode()
            if -_INT_MAX <= value <= _INT_MAX:
                return str(int(value)).encode()
    elif type(value) is int and -_INT_MAX <= value <= _INT_MAX:
        return str(value).encode()
    return reference_canonical_json(value)  # exponents, NaN, infinities, big integers: its answer


def reference_canonical_json(value: Any) -> bytes:
    """RFC 8785 through the `rfc8785` package only (the reference the fast path is checked against)."""
    try:
        return rfc8785.dumps(value)
    except (rfc8785.CanonicalizationError, TypeError, ValueError) as exc:
        raise CanonicalizationError(str(exc)) from exc


def fast_canonical_json(value: Any) -> bytes | None:
    """The RFC 8785 bytes of `value` through `json`'s C encoder, or None when the value holds anything
    the fast path cannot vouch for (then only the reference may answer, including with an error)."""
    try:
        return _ENCODER.encode(_prepare(value)).encode("utf-8")
    except (_Fallback, ValueError, TypeError):
        # _Fallback: see `_prepare`; UnicodeEncodeError (a ValueError): a lone surrogate in a string.
        # Anything else the encoder might object to is left to the reference too, to answer as it does.
        return None


def _prepare(value: Any) -> Any:
    """`value` with integral floats as ints; _Fallback if any part of it needs the reference.

    This walk is most of the fast path's cost, so the common types are tested first and each float is
    judged from one `repr`."""
    kind = type(value)
    if kind is str:
        return value
    if kind is int:
        if -_INT_MAX <= value <= _INT_MAX:
            return value
        raise _Fallback
    if kind is float:
        text = repr(value)
        if "e" in text or "n" in text:
            # an exponent form (they differ between the two: "1e-05" and "0.00001", "1e+16" and
            # "10000000000000000"), or "nan" / "inf", which the reference refuses
            raise _Fallback
        if text[-2:] == ".0":  # integral: "1.0" -> 1, "-0.0" -> 0, as ECMAScript prints them
            if -_INT_MAX <= value <= _INT_MAX:
                return int(value)
            raise _Fallback
        return value  # the shortest round-trip digits in fixed notation: what ECMAScript prints too
    if kind is dict:
        prepared = {}
        for key, item in value.items():
            if type(key) is not str or (key not in _GOOD_KEYS and not _good_key(key)):
                raise _Fallback
            prepared[key] = _prepare(item)
        return prepared
    if kind is list or kind is tuple:
        return [_prepare(item) for item in value]
    if kind is bool or value is None:
        return value
    raise _Fallback


# Keys already found sortable the same way by both orders. Records repeat a handful of keys ("stockCode",
# "quantity", ...), so most checks are a set lookup; bounded so arbitrary input cannot grow it forever.
_GOOD_KEYS: set[str] = set()
_GOOD_KEYS_MAX = 4096
_GOOD_KEY_LENGTH_MAX = 64


def _good_key(key: str) -> bool:
    if key and max(key) > _KEY_CHAR_MAX:
        return False
    if len(key) <= _GOOD_KEY_LENGTH_MAX and len(_GOOD_KEYS) < _GOOD_KEYS_MAX:
        _GOOD_KEYS.add(key)
    return True
