"""The Consortium as the one trust anchor: every other address is read from it on chain, and a manifest
that disagrees with it is refused, even where the code it names is genuine (issue 30, high 1)."""

from __future__ import annotations

import dataclasses

import pytest

from ledger import errors, trusted_deployment
from ledger.coalition import Coalition
from ledger.deployment import Deployment, verify_deployment


def _second_anchor(coalition: Coalition) -> str:
    artifact = coalition.build["InteractionAnchor"]
    sender = coalition.chain.backend.accounts[1]
    receipt = coalition.chain.deploy(
        artifact.abi, artifact.bytecode, [coalition.deployment.contracts["Consortium"]], sender
    )
    return str(receipt["contractAddress"])


def test_the_trusted_deployment_is_read_from_the_consortium_alone(coalition):
    backend = coalition.chain.backend
    found = trusted_deployment(backend, coalition.consortium_address, coalition.build)
    assert found.chain_id == coalition.chain.chain_id
    assert found.contracts == coalition.deployment.contracts
    assert found.code_hashes == coalition.deployment.code_hashes
    assert found.founders == coalition.deployment.founders
    # which chain: the block the Consortium was deployed in, read from the node (its founding record)
    assert (found.block_number, found.block_hash) == (
        coalition.deployment.block_number,
        coalition.deployment.block_hash,
    )
    assert (
        found.block_hash == "0x" + bytes(coalition.chain.w3.eth.get_block(found.block_number)["hash"]).hex()
    )
    trusted = Coalition.trusted(backend, coalition.consortium_address.lower(), coalition.build)
    assert trusted.anchor.address == coalition.anchor.address


def test_a_genuine_anchor_the_consortium_does_not_record_is_refused(coalition):
    """A partner deploys a second InteractionAnchor wired to the real Consortium (same code, same code
    hash: its one immutable is the Consortium's address) and edits the manifest to name it."""
    second = _second_anchor(coalition)
    code = coalition.chain.w3.eth.get_code
    assert code(second) == code(coalition.deployment.contracts["InteractionAnchor"])
    edited = dataclasses.replace(
        coalition.deployment, contracts={**coalition.deployment.contracts, "InteractionAnchor": second}
    )
    with pytest.raises(errors.DeploymentMismatch, match=f"InteractionAnchor: the manifest says {second}"):
        Coalition.attach(coalition.chain.backend, edited, coalition.build)
    Coalition.attach(coalition.chain.backend, coalition.deployment, coalition.build)  # the genuine one


def test_a_pinned_consortium_refuses_any_other(coalition):
    backend = coalition.chain.backend
    pinned = coalition.consortium_address
    Coalition.attach(backend, coalition.deployment, coalition.build, consortium=pinned.lower())
    other = backend.accounts[7].address  # any other address, told to the user as the anchor
    with pytest.raises(errors.DeploymentMismatch, match=f"not the pinned {other}"):
        verify_deployment(coalition.chain, coalition.build, coalition.deployment, consortium=other)


def test_a_manifest_of_another_chain_is_refused_before_its_code_is_read(coalition):
    """Which chain: the node's block at the manifest's deployedAtBlock must have the manifest's hash (a
    twin deployment on a second anvil: tests/ledger/test_reader.py)."""
    deployment = coalition.deployment
    other = "0x" + "5a" * 32
    with pytest.raises(errors.DeploymentMismatch) as refused:
        verify_deployment(coalition.chain, coalition.build, dataclasses.replace(deployment, block_hash=other))
    assert str(refused.value) == (
        f"this node's block {deployment.block_number} is {deployment.block_hash}, the coalition's is"
        f" {other}: a different chain"
    )
    beyond = dataclasses.replace(deployment, block_number=coalition.block_number() + 50)
    with pytest.raises(
        errors.DeploymentMismatch, match=r"this node has no block \d+, the block the coalition"
    ):
        verify_deployment(coalition.chain, coalition.build, beyond)
    # a manifest written before it kept the hash (from its JSON, as a home's config holds it): the node's
    old = {k: v for k, v in deployment.to_json().items() if k != "deployedAtBlockHash"}
    trusted = verify_deployment(coalition.chain, coalition.build, Deployment.from_json(old))
    assert trusted == deployment
    with pytest.raises(errors.DeploymentMismatch, match="not a ledgercrm deployment manifest"):
        Deployment.from_json({**old, "deployedAtBlockHash": "0xabc"})


def test_an_address_that_is_no_consortium_is_no_trust_anchor(coalition):
    backend = coalition.chain.backend
    with pytest.raises(errors.DeploymentMismatch, match="Consortium: no contract at"):
        trusted_deployment(backend, backend.accounts[7].address, coalition.build)
    with pytest.raises(errors.DeploymentMismatch, match=r"Consortium at .* was built from other sources"):
        trusted_deployment(backend, coalition.deployment.contracts["MemberRegistry"], coalition.build)
    artifact = coalition.build["Consortium"]
    sender = backend.accounts[5]
    bare = coalition.chain.deploy(artifact.abi, artifact.bytecode, [[sender.address]], sender)
    with pytest.raises(errors.DeploymentMismatch, match="records no coalition contracts"):
        trusted_deployment(backend, str(bare["contractAddress"]), coalition.build)
