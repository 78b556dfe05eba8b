"""The lean JSON-RPC reader (ledger/reader.py) against the web3 clients on the session's anvil: the same
answers, the same trust checks of a deployment, the same named errors. (Decisions logged by a scoring
run are compared on the CLI's home: tests/api/test_cli_decisions.py.)"""

from __future__ import annotations

import dataclasses
import os

import pytest
from eth_utils import event_abi_to_log_topic, function_abi_to_4byte_selector, to_checksum_address

from ledger import errors
from ledger.anvil import free_port
from ledger.clients.consent import PURPOSES, purpose_id
from ledger.coalition import Coalition
from ledger.reader import JsonRpc, ReadCoalition, checksum_address, selector, topic
from ledger.reader import purpose_id as lean_purpose_id


@pytest.fixture
def anvil(coalition: Coalition) -> Coalition:
    if coalition.chain.backend.rpc_url is None:
        pytest.skip("the reader speaks JSON-RPC: anvil only")
    return coalition


def _reader(coalition: Coalition, **changes: object) -> ReadCoalition:
    manifest = dataclasses.replace(coalition.deployment, **changes).to_json()  # type: ignore[arg-type]
    url = coalition.chain.backend.rpc_url
    assert url is not None
    return ReadCoalition.attach(url, manifest, coalition.build, consortium=coalition.consortium_address)


def test_the_reader_answers_as_the_web3_clients_do(anvil):
    sender = anvil.chain.backend.accounts[0]
    model_id = anvil.decisions.register_model(sender, b"\x01" * 32, b"\x02" * 32, b"\x03" * 32)
    reader = _reader(anvil)
    assert reader.decisions.model(model_id) == anvil.decisions.model(model_id)
    assert reader.decisions.decisions() == anvil.decisions.decisions()
    assert reader.decisions.decision(0) == anvil.decisions.decision(0)
    stranger = os.urandom(32)
    assert reader.members.are_erased([stranger]) == anvil.members.are_erased([stranger]) == [False]
    assert reader.members.erasures() == anvil.members.erasures()
    partner = sender.address
    assert reader.anchor.heads(partner) == anvil.anchor.heads(partner)
    block = anvil.block_number()
    profiling = purpose_id("profiling")
    assert reader.consent.is_valid_at_block(stranger, partner, profiling, block) is False
    assert anvil.consent.is_valid_at_block(stranger, partner, profiling, block) is False
    assert reader.block_number() == block
    # a revert is the named error, as the client raises it
    with pytest.raises(errors.DecisionUnknownModel):
        anvil.decisions.model(model_id + 1)
    with pytest.raises(errors.DecisionUnknownModel):
        reader.decisions.model(model_id + 1)


def test_the_words_are_the_abis():
    """The selectors and topics the reader hashes from its signatures are the build's, and its
    checksums and purpose ids are eth_utils' and the consent client's."""
    from ledger.compiler import compile_contracts

    build = compile_contracts()
    functions = {
        ("DecisionLog", "model"): "model(uint256)",
        ("ConsentRegistry", "isValidAtBlock"): "isValidAtBlock(bytes32,address,bytes32,uint64,uint64)",
        ("InteractionAnchor", "headsOf"): "headsOf(address,uint256)",
        ("InteractionAnchor", "batch"): "batch(uint256)",
        ("MemberRegistry", "memberOf"): "memberOf(bytes32)",
        ("Consortium", "coalitionContracts"): "coalitionContracts()",
    }
    events = {
        ("DecisionLog", "DecisionRecorded"): (
            "DecisionRecorded(uint256,bytes32,address,uint256,bytes32,uint32,bytes32,bytes32,bytes32)"
        ),
        ("MemberRegistry", "MemberErased"): "MemberErased(bytes32,address)",
    }
    for (contract, name), signature in functions.items():
        (abi,) = [i for i in build[contract].abi if i.get("type") == "function" and i["name"] == name]
        assert selector(signature) == function_abi_to_4byte_selector(abi), signature  # type: ignore[arg-type]
    for (contract, name), signature in events.items():
        (abi,) = [i for i in build[contract].abi if i.get("type") == "event" and i["name"] == name]
        assert topic(signature) == "0x" + event_abi_to_log_topic(abi).hex(), signature  # type: ignore[arg-type]
    for raw in (b"\x00" * 20, b"\xff" * 20, bytes(range(20)), os.urandom(20)):
        assert checksum_address("0x" + raw.hex()) == to_checksum_address(raw)
        assert checksum_address(b"\x00" * 12 + raw) == to_checksum_address(raw)  # a topic's last 20 bytes
    for name in PURPOSES:
        assert lean_purpose_id(name) == purpose_id(name)


def test_a_deployment_is_trusted_only_as_verify_deployment_trusts_it(anvil):
    deployment = anvil.deployment
    contracts = deployment.contracts
    with pytest.raises(errors.DeploymentMismatch, match="the node is chain id"):
        _reader(anvil, chain_id=deployment.chain_id + 1)
    swapped = {**contracts, "DecisionLog": contracts["InteractionAnchor"]}
    with pytest.raises(errors.DeploymentMismatch, match="DecisionLog: the manifest says"):
        _reader(anvil, contracts=swapped)
    hashes = {**deployment.code_hashes, "DecisionLog": "0x" + "00" * 32}
    with pytest.raises(errors.DeploymentMismatch, match=r"DecisionLog at .* code hash"):
        _reader(anvil, code_hashes=hashes)
    url = anvil.chain.backend.rpc_url
    assert url is not None
    other = to_checksum_address("0x" + "11" * 20)
    with pytest.raises(errors.DeploymentMismatch, match="not the pinned"):
        ReadCoalition.attach(url, deployment.to_json(), anvil.build, consortium=other)
    with pytest.raises(errors.DeploymentMismatch, match="is not an address"):
        ReadCoalition.attach(url, deployment.to_json(), anvil.build, consortium="0x1234")
    empty = dataclasses.replace(deployment, contracts={**contracts, "Consortium": other})  # no code there
    with pytest.raises(errors.DeploymentMismatch, match="Consortium: no contract at"):
        ReadCoalition.attach(url, empty.to_json(), anvil.build)


def test_a_node_that_does_not_answer_is_one_backend_error():
    rpc = JsonRpc(f"http://127.0.0.1:{free_port()}", timeout=5)
    with pytest.raises(errors.BackendError, match="stopped answering: connection refused"):
        rpc.request("eth_chainId", [])
