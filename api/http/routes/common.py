"""What several routers share: path parameters in the API's spelling, and conversions."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path

from api.errors import InvalidInput

MEMBER_PATTERN = r"^0x[0-9a-fA-F]{64}$"
MemberPath = Annotated[
    str,
    Path(pattern=MEMBER_PATTERN, description="member id: 0x and 64 hex digits", examples=["0x" + "ab" * 32]),
]


def member_bytes(value: str) -> bytes:
    text = value.removeprefix("0x")
    if len(text) != 64:
        raise InvalidInput(f"a member id is 0x followed by 64 hex digits, not {value!r}")
    try:
        return bytes.fromhex(text)
    except ValueError:
        raise InvalidInput(f"a member id is 0x followed by 64 hex digits, not {value!r}") from None


def hexid(value: bytes) -> str:
    return "0x" + value.hex()
