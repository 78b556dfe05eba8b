"""RFC 6962 / RFC 9162 Merkle trees with SHA-256, byte-for-byte what `InteractionAnchor` verifies.

leaf hash = SHA-256(0x00 || data), node hash = SHA-256(0x01 || left || right). A tree of n leaves is
built level by level, pairing neighbours and carrying an unpaired last node up unchanged; that is the
same tree as RFC 6962's "split at the largest power of two below n". SHA-256 rather than Keccak:
hashlib's SHA-256 is ~15x faster in Python and the EVM has it as a precompile.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

EMPTY_ROOT = hashlib.sha256(b"").digest()
MAX_PROOF_LENGTH = 64  # a tree of 2**64 leaves, the contract's uint64 size limit


def leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


class MerkleTree:
    """An immutable tree over leaf *hashes* (use `from_data` to hash raw leaves first).

    Keeps every level, so a proof is O(log n) lookups after an O(n) build; memory is about 2n hashes.
    """

    def __init__(self, leaf_hashes: Sequence[bytes]) -> None:
        levels: list[list[bytes]] = [list(leaf_hashes)]
        sha256 = hashlib.sha256
        while len(levels[-1]) > 1:
            below = levels[-1]
            above = [sha256(b"\x01" + below[i] + below[i + 1]).digest() for i in range(0, len(below) - 1, 2)]
            if len(below) % 2:
                above.append(below[-1])
            levels.append(above)
        self._levels = levels

    @classmethod
    def from_data(cls, leaves: Sequence[bytes]) -> MerkleTree:
        return cls([leaf_hash(d) for d in leaves])

    @property
    def size(self) -> int:
        return len(self._levels[0])

    @property
    def root(self) -> bytes:
        return self._levels[-1][0] if self.size else EMPTY_ROOT

    def leaf(self, index: int) -> bytes:
        return self._levels[0][index]

    def proof(self, index: int) -> list[bytes]:
        """The audit path of leaf `index`, sibling hashes from the leaf upwards (RFC 9162 2.1.3.1).

        Requires 0 <= index < size."""
        if not 0 <= index < self.size:
            raise IndexError(f"leaf index {index} outside a tree of {self.size} leaves")
        path: list[bytes] = []
        for level in self._levels[:-1]:
            sibling = index ^ 1
            if sibling < len(level):
                path.append(level[sibling])
            index >>= 1
        return path


def merkle_root(leaf_hashes: Sequence[bytes]) -> bytes:
    return MerkleTree(leaf_hashes).root


@dataclass(frozen=True)
class Verified:
    root: bytes

    @property
    def ok(self) -> bool:
        return True


@dataclass(frozen=True)
class RootMismatch:
    """The proof is well formed but leads to `calculated`, not to the expected root."""

    expected: bytes
    calculated: bytes

    @property
    def ok(self) -> bool:
        return False

    def __str__(self) -> str:
        return f"the proof leads to root 0x{self.calculated.hex()}, not to 0x{self.expected.hex()}"


@dataclass(frozen=True)
class MalformedProof:
    """The proof cannot belong to a tree of that size (wrong length, index out of range)."""

    reason: str

    @property
    def ok(self) -> bool:
        return False

    def __str__(self) -> str:
        return f"the proof is malformed: {self.reason}"


InclusionResult = Verified | RootMismatch | MalformedProof


def root_from_inclusion_proof(
    index: int, size: int, leaf: bytes, proof: Sequence[bytes]
) -> bytes | MalformedProof:
    """RFC 9162 section 2.1.3.2, steps 1-6: the root that `proof` implies for leaf `index` of `size`."""
    if not 0 <= index < size:
        return MalformedProof(f"leaf index {index} outside a tree of {size} leaves")
    if len(proof) > MAX_PROOF_LENGTH:
        return MalformedProof(f"proof of {len(proof)} hashes is longer than any tree allows")
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            return MalformedProof(f"proof of {len(proof)} hashes is too long for leaf {index} of {size}")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        return MalformedProof(f"proof of {len(proof)} hashes is too short for leaf {index} of {size}")
    return r


def verify_inclusion(
    leaf: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes
) -> InclusionResult:
    """Check that `leaf` (a leaf hash) is leaf `index` of the tree of `size` leaves with `root`."""
    calculated = root_from_inclusion_proof(index, size, leaf, proof)
    if isinstance(calculated, MalformedProof):
        return calculated
    if calculated != root:
        return RootMismatch(expected=root, calculated=calculated)
    return Verified(root=root)
