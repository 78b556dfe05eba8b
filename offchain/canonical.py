"""RFC 8785 (JSON Canonicalization Scheme): one byte string per JSON value, so hashes and HMACs of
records are reproducible by anyone, in any language, from the same data."""

from __future__ import annotations

from typing import Any

import rfc8785


class CanonicalizationError(ValueError):
    """The value is not representable in I-JSON (e.g. NaN, an integer beyond 2**53, a non-string key)."""


def canonical_json(value: Any) -> bytes:
    try:
        return rfc8785.dumps(value)
    except (rfc8785.CanonicalizationError, TypeError, ValueError) as exc:
        raise CanonicalizationError(str(exc)) from exc
