import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.merkle import (
    EMPTY_ROOT,
    MalformedProof,
    MerkleTree,
    RootMismatch,
    Verified,
    inclusion_ranges,
    leaf_hash,
    merkle_root,
    subtree_hashes,
    verify_inclusion,
)

VECTORS = json.loads((Path(__file__).parent / "vectors" / "rfc6962.json").read_text())
LEAVES = [bytes.fromhex(x) for x in VECTORS["leaves"]]


def test_roots_match_rfc6962_for_every_size():
    assert merkle_root([]) == EMPTY_ROOT
    for size, root in enumerate(VECTORS["roots"]):
        assert MerkleTree.from_data(LEAVES[:size]).root.hex() == root, f"size {size}"


@pytest.mark.parametrize("case", VECTORS["inclusion"], ids=lambda c: c["name"])
def test_inclusion_vectors(case):
    result = verify_inclusion(
        bytes.fromhex(case["leafHash"]),
        case["leafIndex"],
        case["treeSize"],
        [bytes.fromhex(p) for p in case["proof"]],
        bytes.fromhex(case["root"]),
    )
    assert result.ok is case["valid"]


def test_published_proofs_are_the_ones_we_generate():
    tree = MerkleTree.from_data(LEAVES)
    for case in VECTORS["inclusion"]:
        if case["valid"] and case["treeSize"] > 1 and case["name"].startswith("published"):
            sub = MerkleTree.from_data(LEAVES[: case["treeSize"]])
            assert [p.hex() for p in sub.proof(case["leafIndex"])] == case["proof"]
    assert tree.proof(0)[0] == leaf_hash(LEAVES[1])


def test_failures_say_what_failed():
    tree = MerkleTree.from_data(LEAVES[:5])
    proof = tree.proof(1)
    ok = verify_inclusion(tree.leaf(1), 1, 5, proof, tree.root)
    assert ok == Verified(root=tree.root)

    wrong_leaf = verify_inclusion(tree.leaf(2), 1, 5, proof, tree.root)
    assert isinstance(wrong_leaf, RootMismatch)
    assert wrong_leaf.expected == tree.root and wrong_leaf.calculated != tree.root

    assert isinstance(verify_inclusion(tree.leaf(1), 1, 5, proof[:-1], tree.root), MalformedProof)
    assert isinstance(verify_inclusion(tree.leaf(1), 5, 5, proof, tree.root), MalformedProof)
    assert isinstance(verify_inclusion(tree.leaf(1), -1, 5, proof, tree.root), MalformedProof)


def test_each_hash_of_a_proof_is_the_subtree_its_range_names():
    """RFC 9162's PATH recursion says which subtree each proof hash is (what lets a bundle share path
    nodes and name a wrong one): for every leaf of trees of 1 to 37 leaves, the proof's hashes and the
    nodes computed on the way up are MTH(D[start:end]) of their ranges, the last one the root."""
    hashes = [leaf_hash(i.to_bytes(4, "big")) for i in range(37)]
    for size in range(1, 38):
        tree = MerkleTree(hashes[:size])
        for index in range(size):
            ranges = inclusion_ranges(index, size)
            assert len(ranges) == len(tree.proof(index))
            found = subtree_hashes(index, tree.leaf(index), tree.proof(index), ranges)
            assert found[(0, size)] == tree.root
            assert all(merkle_root(hashes[a:b]) == h for (a, b), h in found.items()), (size, index)
    with pytest.raises(IndexError):
        inclusion_ranges(5, 5)


def test_proof_index_must_be_in_range():
    tree = MerkleTree.from_data(LEAVES[:3])
    with pytest.raises(IndexError):
        tree.proof(3)


@settings(max_examples=60, deadline=None)
@given(size=st.integers(min_value=1, max_value=1000), data=st.data())
def test_every_proof_round_trips_and_tampering_fails(size, data):
    tree = MerkleTree([leaf_hash(i.to_bytes(4, "big")) for i in range(size)])
    index = data.draw(st.integers(min_value=0, max_value=size - 1))
    proof = tree.proof(index)
    assert verify_inclusion(tree.leaf(index), index, size, proof, tree.root).ok
    # Another leaf at this index, or this leaf claimed at another index, never verifies.
    other = data.draw(
        st.integers(min_value=0, max_value=size - 1).filter(lambda i: i != index) if size > 1 else st.none()
    )
    if other is not None:
        assert not verify_inclusion(tree.leaf(other), index, size, proof, tree.root).ok
        assert not verify_inclusion(tree.leaf(index), other, size, proof, tree.root).ok
    if proof:
        position = data.draw(st.integers(min_value=0, max_value=len(proof) - 1))
        bit = data.draw(st.integers(min_value=0, max_value=255))
        tampered = bytearray(proof[position])
        tampered[bit // 8] ^= 1 << (bit % 8)
        bad = [*proof[:position], bytes(tampered), *proof[position + 1 :]]
        assert not verify_inclusion(tree.leaf(index), index, size, bad, tree.root).ok
