"""The lean sender's transactions (ledger/sender.py) are eth_account's, byte for byte: the same key gives
the same address, and the same fields the same signed EIP-1559 transaction and hash, across the lengths
where RLP changes form (empty, one byte under 0x80, 55 and 56 bytes, long data) and large values."""

from __future__ import annotations

from typing import Any

import pytest
from eth_account import Account
from web3.providers.base import BaseProvider

from ledger.sender import Fees, LocalKey, rlp, signed_eip1559

KEYS = [
    bytes.fromhex("ac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"),
    (1).to_bytes(32, "big"),
    bytes.fromhex("fffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364140"),  # the order - 1
]
# 2,304 bytes: a two-byte length; 70,144 (> 2^16): a three-byte one
DATAS = [b"", b"\x01", b"\x80", bytes(55), bytes(56), bytes(range(256)) * 9, bytes(range(256)) * 274]
TO = "0x5FbDB2315678afecb367f032d93F642f64180aa3"


@pytest.mark.parametrize("key", KEYS, ids=["anvil-0", "one", "order-1"])
@pytest.mark.parametrize("data", DATAS, ids=["empty", "01", "80", "55", "56", "2304", "70144"])
def test_signed_as_eth_account_signs(key, data):
    ours = LocalKey(key)
    theirs = Account.from_key(key)
    assert ours.address == theirs.address
    for nonce, gas, priority, base, chain_id in [
        (0, 21_000, 0, 0, 31337),
        (1, 20_100_000, 1, 7, 1),
        (2**64 - 2, 29_000_000, 10**9, 2**120, 2**31),
        (127, 2**63 - 1, 2**255 - 1, 0, 2**64 - 1),  # fees of a whole word, an eight-byte chain id
        (128, 1, 2**200, 2**254, 0x100),
    ]:
        fees = Fees(priority, priority + 2 * base)
        signed = signed_eip1559(ours, chain_id=chain_id, nonce=nonce, gas=gas, fees=fees, to=TO, data=data)
        expected = theirs.sign_transaction(
            {
                "to": TO,
                "data": data,
                "value": 0,
                "nonce": nonce,
                "gas": gas,
                "chainId": chain_id,
                "maxPriorityFeePerGas": fees.max_priority_fee,
                "maxFeePerGas": fees.max_fee,
            }
        )
        assert signed.raw == bytes(expected.raw_transaction)
        assert signed.tx_hash == "0x" + bytes(expected.hash).hex()


def test_key_files_and_bad_keys():
    text = "0x" + KEYS[0].hex()
    assert LocalKey.from_text(text + "\n").address == Account.from_key(text).address
    assert LocalKey.from_text(KEYS[0].hex()).key == KEYS[0]
    for bad in ("", "0x12", "0x" + "g" * 64, "0x" + "0" * 64, "0x" + "f" * 64, text + "00"):
        with pytest.raises(ValueError):
            LocalKey.from_text(bad)


ORDER = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
ANVIL0 = KEYS[0].hex()
KEY_FORMS = {
    "0x": "0x" + ANVIL0,
    "0X": "0X" + ANVIL0,
    "upper": "0x" + ANVIL0.upper(),
    "bare": ANVIL0,
    "blanks": " \t0x" + ANVIL0 + "\r\n",
    "nbsp": "\u00a00x" + ANVIL0,
    "63 digits": "0x" + ANVIL0[1:],  # hexbytes pads an odd count: taken as the key 0x0<63 digits>
    "63 bare": ANVIL0[1:],
    "65 digits": "0x0" + ANVIL0,
    "66 digits": "0x00" + ANVIL0,
    "empty": "",
    "0x alone": "0x",
    "short": "0x12",
    "zero": "0x" + "0" * 64,
    "order": f"0x{ORDER:064x}",
    "order+1": f"0x{ORDER + 1:064x}",
    "all f": "0x" + "f" * 64,
    "order-1": f"0x{ORDER - 1:064x}",
    "inner blank": "0x" + ANVIL0[:10] + " " + ANVIL0[10:],
    "underscore": "0x" + ANVIL0[:10] + "_" + ANVIL0[10:],
    "not hex": "0x" + "g" * 64,
    "arabic digit": "0x" + ANVIL0[:-1] + "\u0661",
    "bom": "\ufeff0x" + ANVIL0,
    "0x0x": "0x0x" + ANVIL0[4:],
}


def _address_or_refused(parse, text):
    try:
        return parse(text.strip()).address
    except ValueError:
        return "refused"


@pytest.mark.parametrize("text", KEY_FORMS.values(), ids=KEY_FORMS.keys())
def test_a_key_file_is_taken_or_refused_as_eth_account_takes_it(text):
    """`score` reads the home's key files with LocalKey, every other command with Account.from_key: a
    form one takes and the other refuses would let a home work for every command but one (it did for
    0X and 63 digits), or sign as another account."""
    assert _address_or_refused(LocalKey.from_text, text) == _address_or_refused(Account.from_key, text)


def test_a_key_is_in_no_repr_and_no_refusal():
    key = LocalKey(KEYS[0])
    assert KEYS[0].hex() not in repr(key) + str(key) and repr(KEYS[0]) not in repr(key)
    for bad in ("0x0" + ANVIL0, "0x" + ANVIL0[:-1] + "z", f"0x{ORDER + 1:064x}"):
        with pytest.raises(ValueError) as refused:
            LocalKey.from_text(bad)
        assert bad[6:30].lower() not in str(refused.value).lower()


def test_rlp_of_the_edges():
    assert rlp(0) == b"\x80" and rlp(127) == b"\x7f" and rlp(128) == b"\x81\x80"
    assert rlp([]) == b"\xc0" and rlp(b"") == b"\x80"
    assert rlp(bytes(56))[:2] == b"\xb8\x38" and rlp([bytes(55)])[:2] == b"\xf8\x38"
    with pytest.raises(ValueError):
        rlp(-1)


BLOCK = "0x" + "ab" * 32  # the hash of every block of _Node's chain


class _Node:
    """A node that answers every request from a table (its answers as a broken or lying node gives them)."""

    def __init__(self, **answers: object) -> None:
        self.answers = {
            "eth_chainId": "0x7a69",
            "eth_getTransactionCount": "0x0",
            "eth_getBlockByNumber": {"gasLimit": hex(30_000_000), "baseFeePerGas": "0x7", "hash": BLOCK},
            "eth_maxPriorityFeePerGas": "0x1",
            "eth_call": "0x",
            "eth_getCode": "0x6000",
            **answers,
        }

    def post(self, body: Any) -> Any:
        messages = body if isinstance(body, list) else [body]
        out = [{"jsonrpc": "2.0", "id": m["id"], "result": self.answers[m["method"]]} for m in messages]
        return out if isinstance(body, list) else out[0]


BROKEN = {
    "nonce null": {"eth_getTransactionCount": None},
    "nonce not hex": {"eth_getTransactionCount": "0xzz"},
    "nonce an int": {"eth_getTransactionCount": 7},
    "no block": {"eth_getBlockByNumber": None},
    "block a list": {"eth_getBlockByNumber": []},
    "block without gas limit": {"eth_getBlockByNumber": {"baseFeePerGas": "0x0"}},
    "gas limit an int": {"eth_getBlockByNumber": {"gasLimit": 30_000_000, "baseFeePerGas": "0x0"}},
    "base fee not hex": {"eth_getBlockByNumber": {"gasLimit": "0x1c9c380", "baseFeePerGas": "zz"}},
    "priority fee null": {"eth_maxPriorityFeePerGas": None},
}


@pytest.mark.parametrize("answers", BROKEN.values(), ids=BROKEN.keys())
def test_a_node_answering_nonsense_to_the_simulation_is_one_error_in_words(monkeypatch, answers):
    """What the web3 chain client says of a malformed answer (Chain.translate: a BackendError), the lean
    sender says too, before anything is signed; it was a TypeError or ValueError (a traceback)."""
    from ledger.errors import BackendError
    from ledger.reader import JsonRpc
    from ledger.sender import RawSender

    monkeypatch.setattr(JsonRpc, "_post", _Node().post)
    key = LocalKey(KEYS[0])
    assert RawSender(JsonRpc("http://node"), 31337).prepare_calldata(TO, b"", key, gas=50_000).raw
    monkeypatch.setattr(JsonRpc, "_post", _Node(**answers).post)
    with pytest.raises(BackendError, match="the node answered"):
        RawSender(JsonRpc("http://node"), 31337).prepare_calldata(TO, b"", key, gas=50_000)


class _Provider(BaseProvider):
    """web3's provider over `_Node`: what `RpcBackend` sends its requests through."""

    def __init__(self, node: _Node) -> None:
        super().__init__()
        self.node = node

    def make_request(self, method: str, params: Any) -> Any:
        return self.node.post({"id": 0, "method": method, "params": params})

    def make_batch_request(self, calls: Any) -> Any:
        return self.node.post([{"id": i, "method": m, "params": p} for i, (m, p) in enumerate(calls)])


@pytest.mark.parametrize("answers", BROKEN.values(), ids=BROKEN.keys())
def test_the_web3_client_reads_the_simulation_by_the_same_rule(monkeypatch, answers):
    """Both senders read the node's answers before signing through one function
    (`ledger.txs.read_before_signing`): what the lean sender refuses in words, the web3 chain client
    refuses in the same words (it took an int where a hex quantity was due, and a null nonce or gas
    limit was a TypeError there)."""
    from ledger.backends import RpcBackend
    from ledger.errors import BackendError
    from ledger.txs import CallRequest

    node = _Node()
    monkeypatch.setattr(RpcBackend, "_new_provider", lambda backend: _Provider(node))
    backend = RpcBackend("http://node")
    call = CallRequest(LocalKey(KEYS[0]).address, TO, b"", 50_000)
    assert backend.tx_context(call.sender, fees=True, simulate=call).priority_fee == 1
    node.answers.update(answers)
    with pytest.raises(BackendError, match="the node answered"):
        backend.tx_context(call.sender, fees=True, simulate=call)


@pytest.mark.parametrize(
    "answers",
    [
        {"eth_chainId": None},
        {"eth_chainId": "0xzz"},
        {"eth_getCode": "0xzz"},
        {"eth_getBlockByNumber": []},
        {"eth_getBlockByNumber": {"number": "0x1"}},
        {"eth_getBlockByNumber": {"hash": "0xzz"}},
    ],
    ids=[
        "chain id null",
        "chain id not hex",
        "code not hex",
        "block a list",
        "block without hash",
        "hash not hex",
    ],
)
def test_a_node_answering_nonsense_to_the_trust_checks_is_one_error_in_words(monkeypatch, answers):
    """score's and decision verify's opening (ReadCoalition.attach) against a broken node: words, as the
    web3 open gives them, never a traceback."""
    from ledger.compiler import CONTRACT_NAMES, compile_contracts
    from ledger.errors import BackendError
    from ledger.reader import JsonRpc, ReadCoalition

    monkeypatch.setattr(JsonRpc, "_post", _Node(**answers).post)
    manifest = {
        "chainId": 31337,
        "contracts": {name: TO for name in CONTRACT_NAMES},
        "deployedAtBlock": 1,
        "deployedAtBlockHash": BLOCK,
    }
    with pytest.raises(BackendError, match="the node answered"):
        ReadCoalition.attach("http://node", manifest, compile_contracts())


def test_a_gas_limit_that_falls_caps_the_bound_again_before_signing(monkeypatch):
    """As Chain._simulate: the cap comes from the limit the last simulation read; when the block gas limit
    fell since (a network's limit drifts), the call is simulated again under the new cap and the
    transaction signed with it, never with a bound the block cannot hold."""
    from ledger.errors import BackendError
    from ledger.reader import JsonRpc
    from ledger.sender import RawSender

    node = _Node()
    gases: list[int] = []
    post = node.post

    def counting(rpc: JsonRpc, body: Any) -> Any:
        messages = body if isinstance(body, list) else [body]
        gases.extend(int(m["params"][0]["gas"], 16) for m in messages if m["method"] == "eth_call")
        return post(body)

    monkeypatch.setattr(JsonRpc, "_post", counting)
    sender = RawSender(JsonRpc("http://node"), 31337)
    key = LocalKey(KEYS[0])
    sender.prepare_calldata(TO, b"", key, gas=40_000_000)  # the limit read first: 30M
    assert gases == [30_000_000]
    node.answers["eth_getBlockByNumber"] = {"gasLimit": hex(1_000_000), "baseFeePerGas": "0x0"}
    signed = sender.prepare_calldata(TO, b"", key, gas=2_000_000)
    assert gases[1:] == [2_000_000, 1_000_000]
    assert signed == signed_eip1559(
        key, chain_id=31337, nonce=0, gas=1_000_000, fees=Fees(1, 1), to=TO, data=b""
    )
    moving = iter(range(900_000, 0, -1000))

    def falling(rpc: JsonRpc, body: Any) -> Any:
        node.answers["eth_getBlockByNumber"] = {"gasLimit": hex(next(moving)), "baseFeePerGas": "0x0"}
        return post(body)

    monkeypatch.setattr(JsonRpc, "_post", falling)
    with pytest.raises(BackendError, match="changed during each of three simulations"):
        sender.prepare_calldata(TO, b"", key, gas=2_000_000)


def _receipt(tx_hash: str, status: str = "0x1", logs: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {
        "transactionHash": tx_hash,
        "status": status,
        "blockNumber": "0x5",
        "gasUsed": "0x5208",
        "blockHash": "0x" + "11" * 32,
        "logs": logs or [],
    }


def _log(address: str, *topics: bytes) -> dict[str, Any]:
    return {
        "address": address,
        "topics": ["0x" + t.hex() for t in topics],
        "data": "0x",
        "logIndex": "0x0",
        "transactionIndex": "0x0",
        "blockHash": "0x" + "11" * 32,
    }


def test_a_receipt_is_believed_only_for_its_transaction_and_its_decision_log(monkeypatch):
    """A broken or lying node's receipts, on the lean sender (the web3 client reads them alike: the same
    hash check in Chain._result, the same first_decision_id): another transaction's receipt, one whose
    status is 0, and a DecisionRecorded logged by another address or with its id topic cut off are
    refused in words (nothing confirmed on them), where they were believed or a LookupError/IndexError."""
    from ledger.errors import BackendError, TransactionFailed
    from ledger.reader import JsonRpc, keccak
    from ledger.sender import DECISION_RECORDED, RawSender, first_decision_id

    mine, other = "0x" + "ab" * 32, "0x" + "cd" * 32
    recorded, log_address = keccak(DECISION_RECORDED.encode()), TO
    stranger = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
    first = (41).to_bytes(32, "big")

    def sender_answering(receipt: dict[str, Any]) -> RawSender:
        monkeypatch.setattr(JsonRpc, "_post", _Node(eth_getTransactionReceipt=receipt).post)
        return RawSender(JsonRpc("http://node"), 31337)

    with pytest.raises(BackendError, match="the receipt of 0xcdcd"):
        sender_answering(_receipt(other)).wait(mine)
    with pytest.raises(BackendError, match="the receipt of 0xcdcd"):
        sender_answering(_receipt(other)).lookup(mine)
    with pytest.raises(TransactionFailed):
        sender_answering(_receipt(mine, status="0x0")).wait(mine)
    logs = [
        _log(stranger, recorded, (7).to_bytes(32, "big")),
        _log(log_address),
        _log(log_address, recorded, first),
    ]
    mined = sender_answering(_receipt(mine.upper().replace("0X", "0x"), logs=logs)).wait(mine)
    assert first_decision_id(mined, log_address) == 41  # not the stranger's 7, past a log with no topic
    for bad in ([_log(stranger, recorded, first)], [_log(log_address, recorded)], []):
        mined = sender_answering(_receipt(mine, logs=bad)).wait(mine)
        with pytest.raises(BackendError, match="holds no DecisionRecorded"):
            first_decision_id(mined, log_address)
    broken = sender_answering(_receipt(mine, logs=[{"address": log_address}])).wait(mine)
    with pytest.raises(BackendError, match="malformed log"):
        first_decision_id(broken, log_address)


@pytest.mark.parametrize(
    "rewards",
    [[["0x0"]] * 10, [["0x3b9aca07"], ["0x0"], ["0x4a817c800"]], [["0x59682f01"], ["0x5f5e100"]]],
    ids=["all zero", "above the bound", "within"],
)
def test_a_node_without_max_priority_fee_is_priced_from_its_fee_history_as_web3_prices_it(
    monkeypatch, rewards
):
    """eth_maxPriorityFeePerGas is not in the JSON-RPC spec: the web3 chain client then takes web3's fee
    from eth_feeHistory; `score` refused such a node in words where every other command signed."""
    from web3._utils.fee_utils import _fee_history_priority_fee_estimate

    from ledger.reader import JsonRpc
    from ledger.sender import RawSender

    node = _Node(eth_feeHistory={"reward": rewards, "baseFeePerGas": [], "gasUsedRatio": []})
    post = node.post

    def without(body: Any) -> Any:
        answers = post(body)
        for message, answer in zip(body, answers, strict=True):
            if message["method"] == "eth_maxPriorityFeePerGas":
                answer.pop("result")
                answer["error"] = {"code": -32601, "message": "the method does not exist"}
        return answers

    monkeypatch.setattr(
        JsonRpc, "_post", lambda rpc, body: without(body) if isinstance(body, list) else post(body)
    )
    key = LocalKey(KEYS[0])
    signed = RawSender(JsonRpc("http://node"), 31337).prepare_calldata(TO, b"", key, gas=50_000)
    expected = _fee_history_priority_fee_estimate({"reward": [[int(r[0], 16)] for r in rewards]})  # type: ignore[typeddict-item]
    fees = Fees(expected, expected + 2 * 7)
    assert signed == signed_eip1559(key, chain_id=31337, nonce=0, gas=50_000, fees=fees, to=TO, data=b"")
