"""One decision's pure parts: reason codes round-trip, and the explanation's bytes are RFC 8785's."""

from __future__ import annotations

import math
import random
import struct
from typing import Any

import pytest
import rfc8785

from ml.decision import action_word, explanation_bytes, read_action_word, read_reason_codes, reason_codes


def _float(rng: random.Random) -> float:
    kind = rng.randrange(6)
    if kind == 0:
        return float(rng.randint(-(10**6), 10**6))
    if kind == 1:
        return rng.uniform(-1, 1) * 10.0 ** rng.randint(-9, 22)
    if kind == 2:
        return round(rng.uniform(0, 5000), 2)
    if kind == 3:  # any bit pattern that is finite
        while True:
            value: float = struct.unpack("<d", rng.getrandbits(64).to_bytes(8, "little"))[0]
            if math.isfinite(value):
                return value
    if kind == 4:
        special: float = rng.choice(
            [0.0, -0.0, 1e-7, 1e-6, 1e-5, 1e15, 1e16, 1e21, 123456789012345.67, 2.0**53]
        )
        return special
    return 1 / (1 + math.exp(-rng.uniform(-30, 30)))


def _value(rng: random.Random, depth: int = 0) -> object:
    kind = rng.randrange(7 if depth < 3 else 4)
    if kind == 0:
        return _float(rng)
    if kind == 1:
        return rng.choice(["retention_offer", "none", "towards churn", 'Zięcik \u2028 \x01 "q" \\ é', ""])
    if kind == 2:
        return rng.choice([None, True, False, rng.randint(-(10**12), 10**12)])
    if kind == 3:
        return rng.randint(0, 10_000)
    if kind == 4:
        return [_value(rng, depth + 1) for _ in range(rng.randint(0, 4))]
    keys = ["features", "score", "a", "B", "_x", "ä", "z1", "recency_days", "\u00e9t\u00e9"]
    return {rng.choice(keys): _value(rng, depth + 1) for _ in range(rng.randint(0, 5))}


def test_the_fast_encoder_writes_exactly_what_rfc8785_writes():
    rng = random.Random(8785)
    for _ in range(5000):
        document: Any = {"format": "x", "body": _value(rng), "score": _float(rng)}
        assert explanation_bytes(document) == rfc8785.dumps(document), document


class _Model:
    features = ("recency_days", "frequency", "monetary")


def test_reason_codes_round_trip_and_refuse_what_names_no_feature():
    from ml.decision import Reason

    codes = reason_codes(_Model(), [Reason("monetary", True, 0.3), Reason("recency_days", False, -0.1)])  # type: ignore[arg-type]
    assert codes[:3] == bytes([0x83, 0x01, 0]) and len(codes) == 32
    assert read_reason_codes(_Model(), codes) == [("monetary", True), ("recency_days", False)]  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="names no feature"):
        read_reason_codes(_Model(), bytes([0x09]).ljust(32, b"\0"))  # type: ignore[arg-type]
    assert read_action_word(action_word("retention_offer")) == "retention_offer"
    with pytest.raises(ValueError):
        action_word("x" * 33)
