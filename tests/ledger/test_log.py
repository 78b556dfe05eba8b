"""The append-only log: appends from a compact range agree with whole trees (the RFC 6962 vectors' oracle),
and consistency proofs are RFC 9162's, checked against the published vectors and broken on purpose."""

import hashlib
import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.merkle import (
    Frontier,
    LogAppend,
    MerkleTree,
    leaf_hash,
    node_hash,
    verify_consistency,
    verify_inclusion,
)

VECTORS = json.loads((Path(__file__).parent / "vectors" / "rfc6962.json").read_text())
LEAVES = [bytes.fromhex(x) for x in VECTORS["leaves"]]
ROOTS = [bytes.fromhex(x) for x in VECTORS["roots"]]


def hashes(count: int, seed: int = 0) -> list[bytes]:
    return [leaf_hash(hashlib.sha256(f"{seed}:{i}".encode()).digest()) for i in range(count)]


def reference_proof(leaves: list[bytes], m: int) -> list[bytes]:
    """RFC 9162 2.1.4.1 on whole trees, straight from the text."""

    def mth(d: list[bytes]) -> bytes:
        return MerkleTree(d).root

    def subproof(m: int, d: list[bytes], b: bool) -> list[bytes]:
        n = len(d)
        if m == n:
            return [] if b else [mth(d)]
        k = 1 << ((n - 1).bit_length() - 1)
        if m <= k:
            return [*subproof(m, d[:k], b), mth(d[k:])]
        return [*subproof(m - k, d[k:], False), mth(d[:k])]

    return subproof(m, leaves, True)


def appended(leaves: list[bytes], cuts: list[int]) -> tuple[Frontier, list[LogAppend]]:
    """The log built by appending leaves[a:b] for consecutive cuts, frontier to frontier."""
    frontier, steps, start = Frontier.empty(), [], 0
    for cut in cuts:
        step = LogAppend(frontier, leaves[start:cut])
        steps.append(step)
        frontier, start = step.frontier, cut
    return frontier, steps


def test_appends_give_the_published_roots():
    leaves = [leaf_hash(d) for d in LEAVES]
    for size in range(1, 9):
        frontier, _ = appended(leaves, list(range(1, size + 1)))  # one leaf at a time
        assert frontier.root == ROOTS[size]
        assert LogAppend(Frontier.empty(), leaves[:size]).root == ROOTS[size]


@pytest.mark.parametrize("case", VECTORS["consistency"], ids=lambda c: f"{c['oldSize']}-{c['newSize']}")
def test_consistency_vectors(case):
    leaves = [leaf_hash(d) for d in LEAVES]
    m, n = case["oldSize"], case["newSize"]
    proof = [bytes.fromhex(p) for p in case["proof"]]
    assert verify_consistency(m, n, ROOTS[m], ROOTS[n], proof).ok
    if m < n:
        old = LogAppend(Frontier.empty(), leaves[:m]).frontier
        assert LogAppend(old, leaves[m:n]).consistency_proof() == proof


@pytest.mark.parametrize("case", [c for c in VECTORS["consistency"] if c["proof"]], ids=str)
def test_broken_consistency_proofs_are_refused(case):
    m, n = case["oldSize"], case["newSize"]
    proof = [bytes.fromhex(p) for p in case["proof"]]
    flipped = [bytes([proof[0][0] ^ 1]) + proof[0][1:], *proof[1:]]
    attempts = {
        "truncated": proof[:-1],
        "extended": [*proof, proof[-1]],
        "flipped bit": flipped,
        "reversed": proof[::-1],
        "empty": [],
    }
    for name, bad in attempts.items():
        if bad != proof:
            assert not verify_consistency(m, n, ROOTS[m], ROOTS[n], bad).ok, name
    assert not verify_consistency(m, n, ROOTS[m], ROOTS[n - 1], proof).ok  # a different new head
    assert not verify_consistency(m, n, ROOTS[m - 1] if m > 1 else ROOTS[2], ROOTS[n], proof).ok  # old head
    assert "not" in str(verify_consistency(m, n, ROOTS[m], ROOTS[n - 1], proof))


def test_every_split_of_small_logs_agrees_with_whole_trees():
    leaves = hashes(40)
    for n in range(1, 41):
        tree = MerkleTree(leaves[:n])
        for m in range(0, n):
            old = LogAppend(Frontier.empty(), leaves[:m]).frontier if m else Frontier.empty()
            step = LogAppend(old, leaves[m:n])
            assert step.root == tree.root
            assert [step.proof(i) for i in range(m, n)] == [tree.proof(i) for i in range(m, n)]
            assert step.proofs() == [b"".join(tree.proof(i)) for i in range(m, n)]
            if m:
                proof = step.consistency_proof()
                assert proof == reference_proof(leaves[:n], m)
                assert verify_consistency(m, n, MerkleTree(leaves[:m]).root, tree.root, proof).ok
                # a leaf that was not there before is refused
                forged = list(leaves[:n])
                forged[m - 1] = node_hash(forged[m - 1], forged[m - 1])
                assert not verify_consistency(m, n, MerkleTree(forged[:m]).root, tree.root, proof).ok


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=70), min_size=1, max_size=6))
def test_a_log_appended_in_any_steps_is_the_whole_tree(steps):
    cuts, total = [], 0
    for step in steps:
        total += step
        cuts.append(total)
    leaves = hashes(total, seed=len(steps))
    frontier, appends = appended(leaves, cuts)
    tree = MerkleTree(leaves)
    assert frontier.root == tree.root
    start = 0
    for step, cut in zip(appends, cuts, strict=True):
        for i in range(start, cut):
            assert verify_inclusion(leaves[i], i, cut, step.proof(i), step.root).ok
        start = cut
    assert Frontier.decode(frontier.size, frontier.encode()) == frontier


def test_proof_sizes_stay_logarithmic():
    leaves = hashes(1 << 12)
    old = LogAppend(Frontier.empty(), leaves[:3000]).frontier
    step = LogAppend(old, leaves[3000:])
    assert len(old.hashes) == bin(3000).count("1")
    assert len(step.consistency_proof()) <= 2 * 12
    assert all(len(step.proof(i)) <= 12 for i in range(3000, 1 << 12))


def test_a_frontier_of_the_wrong_shape_is_refused():
    with pytest.raises(ValueError):
        Frontier(3, (bytes(32),))
    with pytest.raises(ValueError):
        LogAppend(Frontier.empty(), [])
