"""ABI words by hand: the calldata of calls whose arguments are all uintN, bytes32, address or arrays
of these, and the one-word answers of views, as eth_abi's strict codec would give and read them, without
eth_abi, eth_utils or web3 (`ledger.chain` and the batch clients encode their batches with it; the lean
decision sender, `ledger.sender`, its recordDecisions)."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

from ledger.reader import checksum_address

_HEX40 = re.compile(r"0x[0-9a-fA-F]{40}")
_UINT = re.compile(r"uint(\d+)")


def _one_word(outputs: Sequence[str]) -> Callable[[bytes], Any] | None:
    """For a view returning one bool or uintN: what reads its 32-byte answer as eth_abi's strict decoder
    would (None where the answer is not exactly such a word: a bool other than 0 or 1, a uintN past N
    bits, padding or a short answer; the codec then decodes it, or raises as it does)."""
    if len(outputs) != 1:
        return None
    if outputs[0] == "bool":

        def read_bool(raw: bytes) -> bool | None:
            if len(raw) != 32 or raw[:31] != bytes(31) or raw[31] > 1:
                return None
            return raw[31] == 1

        return read_bool
    uint = _UINT.fullmatch(outputs[0])
    if uint is None or not 8 <= int(uint[1]) <= 256 or int(uint[1]) % 8:
        return None
    limit = 1 << int(uint[1])

    def read_uint(raw: bytes) -> int | None:
        value = int.from_bytes(raw, "big") if len(raw) == 32 else limit
        return value if value < limit else None

    return read_uint


def _encode_words(types: Sequence[str], values: Sequence[Any]) -> bytes | None:
    """The ABI encoding of arguments that are all uintN, bytes32, address or dynamic arrays of these
    (every batch call's shape), or None for any other type or any value the strict codec would not take
    as it is.

    eth_abi validates and encodes value by value, ~1 µs each: ~3 ms for the 2,400 words of an 800-item
    earnBatch. These types need no more than a type check, a range check and a join."""
    if len(types) != len(values):
        return None
    heads: list[bytes] = []
    tails: list[bytes] = []
    offset = 32 * len(types)  # where the first array's tail starts
    for abi_type, value in zip(types, values, strict=True):
        if abi_type.endswith("[]"):
            if not isinstance(value, list | tuple):
                return None
            # an empty array is its length alone, whatever its elements' type (enrolBatch's signatures
            # of members without a key of their own: bytes[], which has no fixed-size words)
            words = _words(abi_type[:-2], value) if value else b""
            if words is None:
                return None
            heads.append(offset.to_bytes(32, "big"))
            tails.append(len(value).to_bytes(32, "big") + words)
            offset += 32 + len(words)
        else:
            if abi_type.startswith("("):
                return None  # a tuple's head is more than one word: eth_abi's
            word = _words(abi_type, (value,))
            if word is None:
                return None
            heads.append(word)
    return b"".join(heads + tails)


def _words(abi_type: str, values: Sequence[Any]) -> bytes | None:
    """`values` as consecutive 32-byte words of `abi_type` (bytes32, address, uintN, or a tuple of these:
    a static tuple is its components' words, in order, inline in an array), or None."""
    if abi_type.startswith("(") and abi_type.endswith(")"):
        parts = abi_type[1:-1].split(",")
        if not parts or any(not p or "(" in p or ")" in p or p.endswith("]") for p in parts):
            return None  # nested or dynamic components: eth_abi's
        if not all(isinstance(v, list | tuple) and len(v) == len(parts) for v in values):
            return None
        columns = [_words(part, [v[i] for v in values]) for i, part in enumerate(parts)]
        if any(c is None for c in columns):
            return None
        # element by element: the words of each component's column, interleaved
        words = [c[j : j + 32] for j in range(0, 32 * len(values), 32) for c in columns]  # type: ignore[index]
        return b"".join(words)
    if abi_type == "bytes32":
        if all(isinstance(v, bytes) and len(v) == 32 for v in values):
            return b"".join(values)
        return None
    if abi_type == "address":
        # what web3 takes: checksummed text (a lowercase or mixed-up one is its error to report)
        if all(isinstance(v, str) and len(v) == 42 and _checksummed(v) for v in values):
            return b"".join(bytes(12) + bytes.fromhex(v[2:]) for v in values)
        return None
    uint = _UINT.fullmatch(abi_type)
    if uint is None:
        return None
    bits = int(uint.group(1))
    if bits % 8 or not 8 <= bits <= 256:
        return None  # not an ABI type: eth_abi's error
    bound = 1 << bits
    if all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v < bound for v in values):
        return b"".join(v.to_bytes(32, "big") for v in values)
    return None


# Addresses already found checksummed. A batch repeats a few (an enrolBatch gives the zero address for
# every member without a key of their own: 5,942 checks, each a Keccak in Python, ~0.18 CPU s of an
# Online Retail II import); bounded, so that arbitrary input cannot grow it forever.
_CHECKSUMMED: set[str] = set()
_CHECKSUMMED_MAX = 4096


def _checksummed(address: str) -> bool:
    if address in _CHECKSUMMED:
        return True
    # eth_utils' is_checksum_address: 0x and 40 hex digits, cased as EIP-55 says (without its import)
    if not _HEX40.fullmatch(address) or checksum_address(address) != address:
        return False
    if len(_CHECKSUMMED) < _CHECKSUMMED_MAX:
        _CHECKSUMMED.add(address)
    return True
