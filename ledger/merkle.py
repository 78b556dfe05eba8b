"""RFC 6962 / RFC 9162 Merkle trees with SHA-256, byte-for-byte what `InteractionAnchor` verifies.

leaf hash = SHA-256(0x00 || data), node hash = SHA-256(0x01 || left || right). A tree of n leaves is
built level by level, pairing neighbours and carrying an unpaired last node up unchanged; that is the
same tree as RFC 6962's "split at the largest power of two below n". SHA-256 rather than Keccak:
hashlib's SHA-256 is ~15x faster in Python and the EVM has it as a precompile.
"""

from __future__ import annotations

import hashlib
import itertools
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


def inclusion_ranges(index: int, size: int) -> list[tuple[int, int]]:
    """Which subtree each hash of leaf `index`'s audit path in the tree of `size` leaves is the root of:
    `(start, end)` for MTH(D[start:end]), in proof order (leaf upwards), per RFC 9162 2.1.3.1's
    PATH(m, D[n]) = PATH(m, D[0:k]) : MTH(D[k:n]) for m < k, else PATH(m - k, D[k:n]) : MTH(D[0:k]).

    Requires 0 <= index < size."""
    if not 0 <= index < size:
        raise IndexError(f"leaf index {index} outside a tree of {size} leaves")
    ranges: list[tuple[int, int]] = []
    lo, hi = 0, size
    while hi - lo > 1:
        k = 1 << ((hi - lo - 1).bit_length() - 1)  # the largest power of two below hi - lo
        if index < lo + k:
            ranges.append((lo + k, hi))
            hi = lo + k
        else:
            ranges.append((lo, lo + k))
            lo += k
    ranges.reverse()  # found from the root down; a proof lists them from the leaf up
    return ranges


def subtree_hashes(
    index: int, leaf: bytes, proof: Sequence[bytes], ranges: Sequence[tuple[int, int]]
) -> dict[tuple[int, int], bytes]:
    """Every subtree hash an inclusion proof commits to: the leaf, each hash of the proof (at the range
    `inclusion_ranges` gives it) and each node computed on the way up. When the proof leads to the
    head's root, each of them is that tree's, so they name which hash of a failing proof is wrong."""
    found = {(index, index + 1): leaf}
    lo, hi, current = index, index + 1, leaf
    for (start, end), sibling in zip(ranges, proof, strict=False):
        found[(start, end)] = sibling
        if start < lo:
            current, lo = node_hash(sibling, current), start
        else:
            current, hi = node_hash(current, sibling), end
        found[(lo, hi)] = current
    return found


# --- an append-only log: compact ranges, appends, consistency proofs (RFC 9162 section 2.1.4) ---------
#
# A partner's interactions form one log. What the store keeps of it between appends is its compact range
# (`Frontier`): the roots of the perfect subtrees the size decomposes into, one per set bit of the size,
# largest first. That is all an append needs: the new root, the new leaves' inclusion proofs against it,
# and the consistency proof from the old head are built from the old frontier and the new leaves alone,
# O(new leaves + log n) hashes, never from the whole tree.


def _levels_of(size: int) -> list[int]:
    """The levels of a frontier of `size`, largest subtree first (one per set bit)."""
    return [level for level in range(size.bit_length() - 1, -1, -1) if size >> level & 1]


@dataclass(frozen=True)
class Frontier:
    """The compact range [0, size): `hashes[i]` is the root of the perfect subtree at `levels_of(size)[i]`."""

    size: int
    hashes: tuple[bytes, ...]

    def __post_init__(self) -> None:
        if len(self.hashes) != self.size.bit_count():
            raise ValueError(f"a frontier of {self.size} leaves has {self.size.bit_count()} hashes")

    @classmethod
    def empty(cls) -> Frontier:
        return cls(0, ())

    @classmethod
    def decode(cls, size: int, packed: bytes | None) -> Frontier:
        """From the concatenated hashes the store keeps (None or empty for the empty log)."""
        packed = packed or b""
        return cls(size, tuple(packed[i : i + 32] for i in range(0, len(packed), 32)))

    def encode(self) -> bytes:
        return b"".join(self.hashes)

    @property
    def root(self) -> bytes:
        """The tree head's root: the subtrees folded from the right (RFC 6962's unbalanced right edge)."""
        if not self.hashes:
            return EMPTY_ROOT
        root = self.hashes[-1]
        for left in reversed(self.hashes[:-1]):
            root = node_hash(left, root)
        return root

    def node(self, level: int) -> bytes | None:
        """The frontier's subtree at `level`, if the size has that bit."""
        if not self.size >> level & 1:
            return None
        return self.hashes[_levels_of(self.size).index(level)]


class LogAppend:
    """Leaves [old.size, old.size + len(leaves)) appended to a log whose compact range is `old`.

    Keeps the new nodes level by level: at level j, the nodes with index from old.size >> j on (the
    one left of them, when needed, is the old frontier's). That is enough for every new leaf's audit
    path and for the consistency proof from the old head."""

    def __init__(self, old: Frontier, leaves: Sequence[bytes]) -> None:
        if not leaves:
            raise ValueError("an append needs at least one leaf")
        self.old = old
        self.size = old.size + len(leaves)
        sha256 = hashlib.sha256
        starts = [old.size]
        levels: list[list[bytes]] = [list(leaves)]
        width = self.size  # ceil(size / 2**level): nodes at this level, an unpaired last one included
        level = 0
        while width > 1:
            below, start = levels[-1], starts[-1]
            up_start, up_width = start >> 1, (width + 1) >> 1
            above: list[bytes] = []
            for q in range(up_start, up_width):
                left_index, right_index = 2 * q, 2 * q + 1
                if left_index < start:
                    left = old.node(level)
                    assert left is not None  # the old frontier has every node left of the new ones
                else:
                    left = below[left_index - start]
                if right_index < width:
                    above.append(sha256(b"\x01" + left + below[right_index - start]).digest())
                else:
                    above.append(left)  # carried up unchanged
            levels.append(above)
            starts.append(up_start)
            width = up_width
            level += 1
        self._levels = levels
        self._starts = starts

    @property
    def root(self) -> bytes:
        return self._levels[-1][0]

    def _node(self, level: int, index: int) -> bytes:
        """The complete subtree [index * 2**level, (index + 1) * 2**level) of the new tree."""
        start = self._starts[level] if level < len(self._starts) else 0
        if index >= start and level < len(self._levels):
            return self._levels[level][index - start]
        if index == (self.old.size >> level) - 1:
            found = self.old.node(level)
            if found is not None:
                return found
        raise LookupError(f"node {index} at level {level} is neither new nor in the old frontier")

    def proof(self, index: int) -> list[bytes]:
        """The audit path of leaf `index` (one of the new ones) in the new tree (RFC 9162 2.1.3.1).

        Requires old.size <= index < size."""
        if not self.old.size <= index < self.size:
            raise IndexError(f"leaf {index} is not one of the leaves {self.old.size}..{self.size - 1}")
        path: list[bytes] = []
        width = self.size
        for level in range(len(self._levels) - 1):
            sibling = index ^ 1
            if sibling < width:
                path.append(self._node(level, sibling))
            index >>= 1
            width = (width + 1) >> 1
        return path

    def proofs(self) -> list[bytes]:
        """Every new leaf's audit path, concatenated, in leaf order: `proof(i)` joined, for each i.

        Built a level at a time: at each level the 2**level leaves under one node share its sibling,
        so each sibling is looked up once per level rather than once per leaf (a 1,000-leaf batch's
        proofs took ~20k node lookups one by one, ~2k this way)."""
        first, size = self.old.size, self.size
        columns: list[list[bytes]] = []
        width = size
        for level in range(len(self._levels) - 1):
            column: list[bytes] = []
            for q in range(first >> level, ((size - 1) >> level) + 1):
                sibling = q ^ 1
                node = self._node(level, sibling) if sibling < width else b""
                leaves = min(size, (q + 1) << level) - max(first, q << level)
                column.extend(itertools.repeat(node, leaves))
            columns.append(column)
            width = (width + 1) >> 1
        if not columns:  # a one-leaf tree: every path is empty
            return [b""] * (size - first)
        return [b"".join(path) for path in zip(*columns, strict=True)]

    @property
    def frontier(self) -> Frontier:
        return Frontier(
            self.size, tuple(self._node(lv, (self.size >> lv) - 1) for lv in _levels_of(self.size))
        )

    def consistency_proof(self) -> list[bytes]:
        """RFC 9162 2.1.4.1 PROOF(m, D[n]) from the old head (m = old.size) to this one; empty from an
        empty log (any tree extends it)."""
        m = self.old.size
        if m == 0:
            return []
        return self._subproof(m, 0, self.size, True)

    def _subproof(self, m: int, lo: int, hi: int, whole: bool) -> list[bytes]:
        n = hi - lo
        if m == n:
            return [] if whole else [self._mth(lo, hi)]
        k = 1 << ((n - 1).bit_length() - 1)  # the largest power of two below n
        if m <= k:
            return [*self._subproof(m, lo, lo + k, whole), self._mth(lo + k, hi)]
        return [*self._subproof(m - k, lo + k, hi, False), self._mth(lo, lo + k)]

    def _mth(self, lo: int, hi: int) -> bytes:
        n = hi - lo
        if n & (n - 1) == 0 and lo % n == 0:
            return self._node(n.bit_length() - 1, lo // n)
        k = 1 << ((n - 1).bit_length() - 1)
        return node_hash(self._mth(lo, lo + k), self._mth(lo + k, hi))


@dataclass(frozen=True)
class Consistent:
    @property
    def ok(self) -> bool:
        return True


@dataclass(frozen=True)
class Inconsistent:
    """The consistency proof does not tie the old head to the new one; `reason` says where it broke."""

    reason: str

    @property
    def ok(self) -> bool:
        return False

    def __str__(self) -> str:
        return f"the heads are not consistent: {self.reason}"


ConsistencyResult = Consistent | Inconsistent
MAX_CONSISTENCY_LENGTH = 2 * MAX_PROOF_LENGTH


def verify_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> ConsistencyResult:
    """RFC 9162 section 2.1.4.2: whether the tree of `new_size` leaves with `new_root` extends the tree
    of `old_size` leaves with `old_root` (what `InteractionAnchor.verifyConsistency` checks on chain)."""
    if not 0 < old_size <= new_size:
        return Inconsistent(f"sizes {old_size} -> {new_size} do not grow from a non-empty tree")
    if old_size == new_size:
        if proof:
            return Inconsistent("a proof between equal sizes must be empty")
        return Consistent() if old_root == new_root else Inconsistent("equal sizes with different roots")
    if not proof or len(proof) > MAX_CONSISTENCY_LENGTH:
        return Inconsistent(f"a proof of {len(proof)} hashes cannot be one")
    path = list(proof)
    if old_size & (old_size - 1) == 0:
        path.insert(0, old_root)
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return Inconsistent("the proof is too long")
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        return Inconsistent("the proof is too short")
    if fr != old_root:
        return Inconsistent(f"it leads to old root 0x{fr.hex()}, not 0x{old_root.hex()}")
    if sr != new_root:
        return Inconsistent(f"it leads to new root 0x{sr.hex()}, not 0x{new_root.hex()}")
    return Consistent()
