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
from ledger.reader import ChainReader, JsonRpc, ReadCoalition, checksum_address, selector, topic
from ledger.reader import purpose_id as lean_purpose_id
from tests.fixtures.twins import twin


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


def test_a_twin_on_another_chain_is_refused_on_both_paths(anvil, second_anvil_url):
    """The same deployment on another chain (every devnet deploys the six contracts from one account at
    the same nonces): the chain id, addresses, code and Consortium records all agree, and both ways of
    attaching took it for the coalition's. The block it was deployed in tells them apart."""
    deployment = anvil.deployment
    with twin(deployment, second_anvil_url) as copy:
        found = copy.deployment.block_hash
        words = (
            f"this node's block {deployment.block_number} is {found}, the coalition's is"
            f" {deployment.block_hash}: a different chain"
        )
        with pytest.raises(errors.DeploymentMismatch) as lean:
            ReadCoalition.attach(second_anvil_url, deployment.to_json(), anvil.build)
        with pytest.raises(errors.DeploymentMismatch) as web3:
            Coalition.attach(copy.chain.backend, deployment, anvil.build)
        assert str(lean.value) == str(web3.value) == words
        # a manifest written before it kept the hash: the node's is taken (trust on first use), on both
        old = dataclasses.replace(deployment, block_hash=None)
        assert "deployedAtBlockHash" not in old.to_json()
        assert Coalition.attach(copy.chain.backend, old, anvil.build).deployment.block_hash == found
        assert ReadCoalition.attach(second_anvil_url, old.to_json(), anvil.build).block_hash == found
        with pytest.raises(errors.DeploymentMismatch, match="a different chain"):
            _reader(anvil, block_hash=found)  # and the twin's manifest is refused on the coalition's chain
    assert _reader(anvil).block_hash == deployment.block_hash  # the coalition's chain: both attach
    assert Coalition.attach(anvil.chain.backend, deployment, anvil.build).deployment == deployment
    beyond = anvil.block_number() + 1_000
    with pytest.raises(errors.DeploymentMismatch, match=f"this node has no block {beyond}"):
        _reader(anvil, block_number=beyond)
    with pytest.raises(errors.DeploymentMismatch, match="not a ledgercrm deployment manifest"):
        _reader(anvil, block_hash="0x1234")


def test_a_node_that_does_not_answer_is_one_backend_error():
    rpc = JsonRpc(f"http://127.0.0.1:{free_port()}", timeout=5)
    with pytest.raises(errors.BackendError, match="stopped answering: connection refused"):
        rpc.request("eth_chainId", [])


def test_a_node_that_answers_malformed_logs_is_one_backend_error():
    class Node(JsonRpc):  # answers a log without its topics
        def request(self, method, params):
            return "0x10" if method == "eth_blockNumber" else [{"data": "0x", "blockNumber": "0x1"}]

    with pytest.raises(errors.BackendError, match="malformed log"):
        ChainReader(Node("http://127.0.0.1:1")).logs("0x" + "11" * 20, [None])


def test_no_log_request_spans_more_blocks_than_the_node_takes(anvil, monkeypatch):
    """Besu refuses an eth_getLogs over more than --rpc-max-logs-range blocks: with the cap set to 3, the
    reader and the web3 client ask for windows of 3 blocks at most, and their logs are those of one
    request over the whole range, in its order."""
    from tests.ledger.members import enrol

    home = anvil.chain.backend.accounts[0]
    for _ in range(3):  # enrolments in blocks of their own, a consent block between each two
        enrol(anvil, home, 2)
    address = anvil.members.address
    reader = _reader(anvil)
    one = reader.rpc.request("eth_getLogs", [{"address": address, "fromBlock": "0x0", "toBlock": "latest"}])
    assert len({e["blockNumber"] for e in one}) >= 3

    sent: list[dict[str, object]] = []
    request, provider = reader.rpc.request, anvil.chain.w3.provider
    make_request = provider.make_request

    def recorded(method: str, params: list[dict[str, object]]) -> object:
        if method == "eth_getLogs":
            sent.append(params[0])
        return request(method, params)

    def provider_recorded(method: str, params: list[dict[str, object]]) -> object:
        if method == "eth_getLogs":
            sent.append(params[0])
        return make_request(method, params)

    latest = anvil.block_number()

    def number(block: object) -> int:
        return latest if block == "latest" else int(str(block), 16)

    def spans() -> list[int]:
        found = [number(p["toBlock"]) - number(p["fromBlock"]) + 1 for p in sent]
        sent.clear()
        return found

    monkeypatch.setenv("LEDGERCRM_MAX_LOGS_RANGE", "3")
    monkeypatch.setattr(reader.rpc, "request", recorded)
    monkeypatch.setattr(provider, "make_request", provider_recorded)
    lean = reader.chain.logs(address, [])
    lean_spans = spans()
    web3 = anvil.chain.raw_logs({"address": address, "fromBlock": 0, "toBlock": "latest"})
    web3_spans = spans()
    assert anvil.chain.raw_logs({"address": address, "fromBlock": "earliest"}) == web3  # "earliest" is 0
    assert max(spans()) == 3

    for found in (lean_spans, web3_spans):
        assert max(found) == 3 and min(found) >= 1
        assert sum(found) == latest + 1  # every block once
    expected = [(e["blockNumber"], e["topics"], e["data"]) for e in one]
    assert [(hex(g.block_number), ["0x" + t.hex() for t in g.topics], "0x" + g.data.hex()) for g in lean] == (
        expected
    )
    assert [
        (hex(g.block_number), ["0x" + t.hex() for t in g.topics], "0x" + g.data.hex()) for g in web3
    ] == expected
    assert [g.tx_hash for g in web3] == [bytes.fromhex(e["transactionHash"][2:]) for e in one]


def test_windows_adapt_below_the_cap_and_cover_the_range_once(monkeypatch):
    """Halved after a large answer, doubled after a small one, never past the cap; the windows cover
    the range exactly once, oldest first. A cap that is not a positive number of blocks is one line."""
    from ledger import logwindows
    from ledger.logwindows import BlockWindows

    monkeypatch.setenv("LEDGERCRM_MAX_LOGS_RANGE", "8")
    monkeypatch.setattr(logwindows, "LOG_WINDOW_EVENTS", 100)
    windows = BlockWindows(10, 60)
    answers = iter([0, 0, 0, 0, 101, 101, 50, 0, 0, 0, 0, 0, 0, 0, 0])
    seen = []
    for first, last in windows:
        seen.append((first, last))
        windows.answered(next(answers))
    assert [b - a + 1 for a, b in seen] == [4, 8, 8, 8, 8, 4, 2, 2, 4, 3]
    assert list(range(10, 61)) == [b for a, z in seen for b in range(a, z + 1)]
    assert [(a, b) for a, b in BlockWindows(5, 30, wide=True)][:1] == [(5, 12)]
    assert list(BlockWindows(7, 6)) == []
    for bad in ("0", "-5", "lots", "1.5"):
        monkeypatch.setenv("LEDGERCRM_MAX_LOGS_RANGE", bad)
        with pytest.raises(errors.BackendError, match=r"LEDGERCRM_MAX_LOGS_RANGE is .*: it must be a whole"):
            BlockWindows(0, 10)
    monkeypatch.setenv("LEDGERCRM_MAX_LOGS_RANGE", "")
    assert BlockWindows(0, 10).cap == logwindows.LOG_RANGE_MAX == 5000
