"""Python and the contract give the same answer for random trees, proofs and tampering."""

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledger.coalition import Coalition
from ledger.merkle import MerkleTree, leaf_hash, verify_inclusion


@pytest.fixture(scope="module")
def chain_coalition() -> Coalition:
    from ledger.backends import EthTesterBackend

    backend = EthTesterBackend()
    return Coalition.deploy(backend, founders=backend.accounts[:1])


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(size=st.integers(min_value=1, max_value=1000), data=st.data())
def test_python_and_contract_agree(chain_coalition, size, data):
    tree = MerkleTree([leaf_hash(i.to_bytes(4, "big") + b"x") for i in range(size)])
    index = data.draw(st.integers(min_value=0, max_value=size - 1))
    proof = tree.proof(index)
    # A mutation that may or may not break the proof: both sides must agree either way.
    mutation = data.draw(st.sampled_from(["none", "drop-last", "claim-size", "claim-index", "flip-leaf"]))
    leaf, claimed_index, claimed_size = tree.leaf(index), index, size
    if mutation == "drop-last":
        proof = proof[:-1]
    elif mutation == "claim-size":
        claimed_size = data.draw(st.integers(min_value=1, max_value=2000))
    elif mutation == "claim-index":
        claimed_index = data.draw(st.integers(min_value=0, max_value=2000))
    elif mutation == "flip-leaf":
        leaf = bytes([leaf[0] ^ 1]) + leaf[1:]
    in_python = verify_inclusion(leaf, claimed_index, claimed_size, proof, tree.root).ok
    on_chain = chain_coalition.anchor.verify_against(tree.root, claimed_size, claimed_index, leaf, proof)
    assert in_python is on_chain
    if mutation == "none":
        assert on_chain


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    old=st.integers(min_value=1, max_value=600), grow=st.integers(min_value=1, max_value=600), data=st.data()
)
def test_python_and_contract_agree_on_consistency(chain_coalition, old, grow, data):
    from ledger.merkle import Frontier, LogAppend, verify_consistency

    leaves = [leaf_hash(i.to_bytes(4, "big") + b"c") for i in range(old + grow)]
    base = LogAppend(Frontier.empty(), leaves[:old])
    step = LogAppend(base.frontier, leaves[old:])
    proof = step.consistency_proof()
    mutation = data.draw(st.sampled_from(["none", "drop-last", "claim-old", "claim-new", "flip"]))
    old_size, new_size = old, old + grow
    if mutation == "drop-last":
        proof = proof[:-1]
    elif mutation == "claim-old":
        old_size = data.draw(st.integers(min_value=1, max_value=1200))
    elif mutation == "claim-new":
        new_size = data.draw(st.integers(min_value=1, max_value=1200))
    elif mutation == "flip" and proof:
        proof = [bytes([proof[0][0] ^ 1]) + proof[0][1:], *proof[1:]]
    in_python = verify_consistency(old_size, new_size, base.root, step.root, proof).ok
    on_chain = chain_coalition.anchor.verify_consistency(old_size, new_size, base.root, step.root, proof)
    assert in_python is on_chain
    if mutation == "none":
        assert on_chain
