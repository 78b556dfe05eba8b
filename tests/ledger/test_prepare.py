"""`Chain.prepare` reads the node raw (one batch on JSON-RPC, eth-tester itself in process) and encodes
batch calldata itself: the transactions it signs, and the errors it raises, must be those web3 gives.

Tests taking `coalition` run on eth-tester and on anvil (partners = accounts 0, 1, 2), rolled back after.
"""

import os
from typing import Any

import pytest
from eth_account.typed_transactions.typed_transaction import TypedTransaction
from eth_utils import to_checksum_address
from hexbytes import HexBytes
from hypothesis import given
from hypothesis import strategies as st
from web3 import Web3
from web3._utils.fee_utils import fee_history_priority_fee
from web3._utils.transactions import fill_transaction_defaults

from ledger import errors
from ledger.backends import EthTesterBackend, RpcBackend
from ledger.chain import (
    _GAS_MARGIN_DEN,
    _GAS_MARGIN_NUM,
    _encode_words,
    _one_word,
    encode_call,
    function_calldata,
)
from ledger.clients import ConsentStatus, purpose_id
from ledger.coalition import Coalition
from ledger.compiler import compile_contracts
from tests.ledger.members import enrol

BOUND = 500_000


def member() -> bytes:
    return os.urandom(32)


def earn_batch(coalition: Coalition, n: int = 3, amounts: list[int] | None = None, home: Any = None) -> Any:
    """An earnBatch call (not sent) for fresh members enrolled by `home` (default: account 0) with its
    loyalty consent: what earning needs, so that only what a test varies can make it fail."""
    amounts = amounts if amounts is not None else [5] * n
    members = enrol(coalition, home or coalition.chain.backend.accounts[0], len(amounts))
    return coalition.loyalty.contract.functions.earnBatch(members, amounts, [member() for _ in amounts])


def filled_by_web3(coalition: Coalition, fn: Any, sender: Any, gas: int) -> bytes:
    """What `prepare` signed before it read the node itself: web3 filling the defaults."""
    w3 = coalition.chain.w3
    params: Any = {
        "from": sender.address,
        "to": fn.address,
        "data": HexBytes(fn._encode_transaction_data()),  # web3's own encoding, not `encode_call`
        "nonce": w3.eth.get_transaction_count(sender.address, "pending"),
        "gas": gas,
        "chainId": w3.eth.chain_id,
    }
    if coalition.chain.backend.gas_price is not None:
        params["gasPrice"] = coalition.chain.backend.gas_price
    return bytes(sender.sign_transaction(fill_transaction_defaults(w3, params)).raw_transaction)


def fields(raw: bytes) -> dict[str, Any]:
    """The fields of a signed EIP-1559 transaction."""
    return dict(TypedTransaction.from_bytes(HexBytes(raw)).as_dict())


def nonce_and_block(coalition: Coalition, account: Any) -> tuple[int, int]:
    w3 = coalition.chain.w3
    return w3.eth.get_transaction_count(account.address, "pending"), w3.eth.block_number


def anvil_only(coalition: Coalition) -> RpcBackend:
    backend = coalition.chain.backend
    if not isinstance(backend, RpcBackend):
        pytest.skip("an anvil test")
    return backend


class TestTheSignedTransaction:
    def test_with_a_gas_bound_it_is_what_web3_would_have_signed(self, coalition):
        sender = coalition.chain.backend.accounts[0]
        fn = earn_batch(coalition)
        signed = coalition.chain.prepare(fn, sender, gas=BOUND)
        assert signed.raw == filled_by_web3(coalition, fn, sender, BOUND)
        tx = fields(signed.raw)
        # twice the latest base fee on top of the tip (anvil's base fee is zero: ledger/anvil.py)
        base_fee = int(coalition.chain.w3.eth.get_block("latest")["baseFeePerGas"])
        assert tx["gas"] == BOUND and tx["maxFeePerGas"] == tx["maxPriorityFeePerGas"] + 2 * base_fee
        assert tx["maxPriorityFeePerGas"] > 0

    def test_with_an_estimate_it_is_what_web3_would_have_signed(self, coalition):
        sender = coalition.chain.backend.accounts[1]
        fn = earn_batch(coalition, home=sender)
        call: Any = {"from": sender.address, "to": fn.address, "data": encode_call(fn)}
        gas = coalition.chain.w3.eth.estimate_gas(call) * _GAS_MARGIN_NUM // _GAS_MARGIN_DEN
        assert coalition.chain.prepare(fn, sender).raw == filled_by_web3(coalition, fn, sender, gas)

    def test_the_nonce_counts_pending_transactions(self, coalition):
        sender = coalition.chain.backend.accounts[0]
        calls = [earn_batch(coalition) for _ in range(3)]  # enrolling sends transactions: first
        first = coalition.chain.prepare(calls[0], sender, gas=BOUND)
        assert (
            fields(coalition.chain.prepare(calls[1], sender, gas=BOUND).raw)["nonce"]
            == (fields(first.raw)["nonce"])
        )
        coalition.chain.broadcast(first)
        second = coalition.chain.prepare(calls[2], sender, gas=BOUND)
        assert fields(second.raw)["nonce"] == fields(first.raw)["nonce"] + 1
        coalition.chain.send(coalition.loyalty.contract, second)

    def test_a_fixed_gas_price_is_signed_as_web3_would(self, coalition):
        backend = anvil_only(coalition)
        assert backend.rpc_url is not None
        fixed = Coalition.attach(RpcBackend(backend.rpc_url, gas_price=7 * 10**9), coalition.deployment)
        sender = fixed.chain.backend.accounts[2]
        fn = earn_batch(fixed, home=sender)
        signed = fixed.chain.prepare(fn, sender, gas=BOUND)
        assert signed.raw == filled_by_web3(fixed, fn, sender, BOUND)
        assert fixed.chain.send(fixed.loyalty.contract, signed).gas_used < BOUND
        sent = fixed.chain.w3.eth.get_transaction(signed.tx_hash)  # type: ignore[arg-type]
        assert (sent["type"], sent["gasPrice"], sent["gas"]) == (0, 7 * 10**9, BOUND)


class TestTheSimulation:
    def test_a_custom_error_with_arguments_is_named_and_nothing_is_sent(self, coalition):
        outsider = coalition.chain.backend.accounts[5]
        fn = earn_batch(coalition)
        before = nonce_and_block(coalition, outsider)
        with pytest.raises(errors.LoyaltyNotPartner) as raised:
            coalition.chain.prepare(fn, outsider, gas=BOUND)
        assert raised.value.account == outsider.address
        assert nonce_and_block(coalition, outsider) == before

    def test_what_used_to_overflow_is_a_named_cap_on_both_backends(self, coalition):
        # an earn of 2**256 - 1 used to pass, and the next earn overflowed (Panic 0x11) for everyone
        sender = coalition.chain.backend.accounts[0]
        with pytest.raises(errors.LoyaltyAmountAboveCap) as raised:
            coalition.chain.prepare(earn_batch(coalition, amounts=[1, 2**256 - 1]), sender, gas=BOUND)
        assert (raised.value.amount, raised.value.cap) == (2**256 - 1, 10**9)

    def test_a_bound_too_low_fails_in_the_simulation(self, coalition):
        sender = coalition.chain.backend.accounts[0]
        fn = earn_batch(coalition, n=3)
        before = nonce_and_block(coalition, sender)
        # anvil answers "OutOfGas" (an RPC error), eth-tester a revert with the reason "Out of gas" (or,
        # when the gas runs out at a storage write, EIP-2200's "below 2300 gas", which anvil calls
        # "ReentrancySentryOOG")
        with pytest.raises(
            (errors.BackendError, errors.ContractRevert), match=r"(?i)out ?of ?gas|below 2300 gas|SentryOOG"
        ):
            coalition.chain.prepare(fn, sender, gas=60_000)
        assert nonce_and_block(coalition, sender) == before


class TestTheGasLimit:
    def test_a_bound_above_the_block_gas_limit_is_capped_at_it(self, coalition):
        sender = coalition.chain.backend.accounts[0]
        limit = coalition.chain.w3.eth.get_block("latest")["gasLimit"]
        signed = coalition.chain.prepare(earn_batch(coalition), sender, gas=limit * 2)
        assert fields(signed.raw)["gas"] == limit

    def test_the_limit_last_seen_saves_a_round_trip(self, coalition, monkeypatch):
        backend = coalition.chain.backend
        fn, again = earn_batch(coalition), earn_batch(coalition)
        coalition.chain.prepare(fn, backend.accounts[0], gas=BOUND)
        seen = spy_on_tx_context(backend, monkeypatch)
        monkeypatch.setattr(coalition.chain.w3.eth, "get_block", fail_if_called)
        coalition.chain.prepare(again, backend.accounts[0], gas=BOUND)
        assert seen == [BOUND]

    def test_a_limit_that_moved_since_the_last_simulation_is_simulated_again(self, coalition, monkeypatch):
        backend = coalition.chain.backend
        fn = earn_batch(coalition)
        limit = coalition.chain.block_gas_limit()
        coalition.chain._gas_limit = limit - 1_000_000  # as if the network's limit had risen since
        seen = spy_on_tx_context(backend, monkeypatch)
        signed = coalition.chain.prepare(fn, backend.accounts[0], gas=limit * 2)
        assert seen == [limit - 1_000_000, limit]
        assert fields(signed.raw)["gas"] == limit == coalition.chain._gas_limit

    def test_a_new_limit_on_the_node_is_picked_up_by_the_next_prepare(self, coalition):
        backend = anvil_only(coalition)
        sender = backend.accounts[0]
        limit = coalition.chain.block_gas_limit()
        assert fields(coalition.chain.prepare(earn_batch(coalition), sender, gas=limit).raw)["gas"] == limit
        try:
            backend._rpc("evm_setBlockGasLimit", [hex(limit // 2)])
            backend._rpc("evm_mine", [])
            signed = coalition.chain.prepare(earn_batch(coalition), sender, gas=limit)
            assert fields(signed.raw)["gas"] == limit // 2
        finally:  # a setting of the node, which a snapshot does not restore
            backend._rpc("evm_setBlockGasLimit", [hex(limit)])
            backend._rpc("evm_mine", [])


def spy_on_tx_context(backend: Any, monkeypatch: pytest.MonkeyPatch) -> list[int | None]:
    """The gas of each simulation `prepare` asks the backend for, from now on."""
    seen: list[int | None] = []
    real = backend.tx_context

    def tx_context(sender: str, *, fees: bool, simulate: Any = None) -> Any:
        seen.append(None if simulate is None else simulate.gas)
        return real(sender, fees=fees, simulate=simulate)

    monkeypatch.setattr(backend, "tx_context", tx_context)
    return seen


def fail_if_called(*args: Any, **kwargs: Any) -> Any:
    raise AssertionError("an extra round trip")


class TestTheRpcBatch:
    def test_a_node_that_refuses_batches_is_asked_one_request_at_a_time(self, coalition, monkeypatch):
        backend = anvil_only(coalition)
        refusal = {"jsonrpc": "2.0", "id": None, "error": {"code": -32600, "message": "batches disabled"}}
        sender = backend.accounts[0]
        fn, zero = earn_batch(coalition), earn_batch(coalition, amounts=[1, 0])
        monkeypatch.setattr(backend._provider, "make_batch_request", lambda requests: refusal)
        assert coalition.chain.prepare(fn, sender, gas=BOUND).raw == filled_by_web3(
            coalition, fn, sender, BOUND
        )
        with pytest.raises(errors.LoyaltyZeroAmount):
            coalition.chain.prepare(zero, sender, gas=BOUND)

    def test_a_node_without_a_priority_fee_method_gets_web3s_fallback(self, coalition, monkeypatch):
        backend = anvil_only(coalition)
        batch = backend._provider.make_batch_request

        def without_priority_fee(requests: list[Any]) -> Any:
            answers: Any = batch(requests)
            return [
                {"jsonrpc": "2.0", "id": a["id"], "error": {"code": -32601, "message": "method not found"}}
                if method == "eth_maxPriorityFeePerGas"
                else a
                for (method, _), a in zip(requests, answers, strict=True)
            ]

        fn = earn_batch(coalition)
        monkeypatch.setattr(backend._provider, "make_batch_request", without_priority_fee)
        expected = fee_history_priority_fee(coalition.chain.w3.eth)
        signed = coalition.chain.prepare(fn, backend.accounts[0], gas=BOUND)
        assert fields(signed.raw)["maxPriorityFeePerGas"] == expected


def test_eth_tester_revert_data_is_read_with_or_without_web3s_prefix():
    from eth_tester.exceptions import TransactionFailed

    backend = EthTesterBackend(accounts=1)
    data = b"P\x02-G" + bytes(12) + b"\x99" * 20
    assert backend.revert_data(TransactionFailed(str(data))) == data  # eth-tester itself
    assert backend.revert_data(TransactionFailed(f"execution reverted: {data!s}")) == data  # through web3
    assert backend.revert_data(TransactionFailed("b''")) == b""


# --------------------------------------------------------------------------------------------------
# Calldata: the word encoder must give eth_abi's bytes, and step aside for anything else

WORD_TYPES: dict[str, st.SearchStrategy[Any]] = {
    "bytes32": st.binary(min_size=32, max_size=32),
    "uint8": st.integers(0, 2**8 - 1),
    "uint32": st.integers(0, 2**32 - 1),
    "uint64": st.integers(0, 2**64 - 1),
    "uint256": st.integers(0, 2**256 - 1),
    "address": st.binary(min_size=20, max_size=20).map(lambda raw: to_checksum_address(raw)),
}


@st.composite
def word_arguments(draw: st.DrawFn) -> tuple[list[str], list[Any]]:
    types, values = [], []
    for _ in range(draw(st.integers(0, 6))):
        word = draw(st.sampled_from(sorted(WORD_TYPES)))
        if draw(st.booleans()):
            types.append(word + "[]")
            values.append(draw(st.lists(WORD_TYPES[word], max_size=12)))
        else:
            types.append(word)
            values.append(draw(WORD_TYPES[word]))
    return types, values


@given(word_arguments())
def test_the_word_encoder_gives_eth_abis_bytes(arguments):
    types, values = arguments
    assert _encode_words(types, values) == Web3().codec.encode(types, values)


@st.composite
def tuple_arrays(draw: st.DrawFn) -> tuple[list[str], list[Any]]:
    """An array of static tuples of words (recordDecisions' shape), after a word or two."""
    parts = draw(st.lists(st.sampled_from(sorted(WORD_TYPES)), min_size=1, max_size=6))
    rows = draw(st.lists(st.tuples(*(WORD_TYPES[p] for p in parts)), max_size=8))
    head = draw(st.lists(st.sampled_from(sorted(WORD_TYPES)), max_size=2))
    return [*head, "(" + ",".join(parts) + ")[]"], [*(draw(WORD_TYPES[h]) for h in head), rows]


@given(tuple_arrays())
def test_the_word_encoder_gives_eth_abis_bytes_for_arrays_of_tuples(arguments):
    types, values = arguments
    assert _encode_words(types, values) == Web3().codec.encode(types, values)


@pytest.mark.parametrize(
    ("types", "values"),
    [
        (["bytes32"], [b"\x01" * 31]),  # the strict codec refuses it: its error, not ours
        (["bytes32[]"], [["0x" + "11" * 32]]),  # hex strings go through web3's normalizers
        (["uint8"], [256]),
        (["uint256"], [-1]),
        (["uint256"], [True]),
        (["uint256[]"], [[1, 2.0]]),
        (["uint256[2]"], [[1, 2]]),  # fixed-size arrays are eth_abi's
        (["uint7"], [1]),  # not an ABI type
        (["bytes32[][]"], [[[b"\x00" * 32]]]),
        (["address"], ["0x" + "ab" * 20]),  # not checksummed: web3's error to report
        (["address"], [b"\x11" * 20]),  # bytes for an address go through eth_abi
        (["bytes[]"], [[b"\x01"]]),  # a dynamic element type (an empty array is its length alone)
        (["uint256", "uint256"], [1]),
        (["(uint256,bytes32)"], [(1, b"\x00" * 32)]),  # a tuple outside an array: its head is two words
        (["(uint256,bytes32)[]"], [[(1,)]]),  # a tuple short of a component
        (["(uint256,string)[]"], [[(1, "a")]]),  # a dynamic component
        (["(uint256,(uint256,uint256))[]"], [[(1, (2, 3))]]),  # nested
        (["(uint8,bytes32)[]"], [[(256, b"\x00" * 32)]]),  # out of its range
    ],
)
def test_the_word_encoder_steps_aside_for_anything_else(types, values):
    assert _encode_words(types, values) is None


def test_an_address_found_checksummed_once_does_not_vouch_for_other_spellings_of_it():
    good = to_checksum_address("0x" + "ab" * 20)
    assert _encode_words(["address[]"], [[good, good]]) == Web3().codec.encode(["address[]"], [[good, good]])
    wrong_case = good[:2] + good[2:].swapcase()
    for spelling in (good.lower(), wrong_case):  # after `good` was checked (and remembered)
        assert _encode_words(["address[]"], [[good, spelling]]) is None


def test_an_empty_array_of_any_type_is_its_length_alone():
    types, values = ["bytes32[]", "address[]", "uint256[]", "bytes[]"], [[b"\x01" * 32], [], [], []]
    assert _encode_words(types, values) == Web3().codec.encode(types, values)


@pytest.mark.parametrize(
    ("name", "function", "arguments"),
    [
        ("LoyaltyPoints", "earnBatch", ([b"\x01" * 32, b"\x02" * 32], [1, 2**256 - 1], [b"\x03" * 32] * 2)),
        ("ConsentRegistry", "recordBatch", ([b"\x01" * 32], b"\x02" * 32, 1, [b"\x03" * 32], 2**64 - 1)),
        ("MemberRegistry", "enrolBatch", ([b"\x01" * 32] * 2, [to_checksum_address(bytes(20))] * 2, [], [])),
        # a member with a key: its signature is bytes[], web3's to encode
        (
            "MemberRegistry",
            "enrolBatch",
            ([b"\x01" * 32], [to_checksum_address(b"\x07" * 20)], [5], [b"\x01" * 65]),
        ),
    ],
)
def test_a_batchs_calldata_from_its_arguments_is_web3s(name, function, arguments):
    """What the batch clients sign (`function_calldata`, past web3's argument checks) is what web3
    encodes from the same arguments."""
    contract = Web3().eth.contract(
        address=to_checksum_address("0x" + "11" * 20), abi=compile_contracts()[name].abi
    )
    expected = HexBytes(getattr(contract.functions, function)(*arguments)._encode_transaction_data())
    assert function_calldata(contract, function, arguments) == expected


@pytest.mark.parametrize(
    ("kind", "raw"),
    [
        ("bool", (0).to_bytes(32, "big")),
        ("bool", (1).to_bytes(32, "big")),
        ("bool", (2).to_bytes(32, "big")),  # the strict codec refuses: so must the reader
        ("bool", bytes([1]) + bytes(31)),  # dirty padding
        ("bool", (1).to_bytes(31, "big")),  # short
        ("bool", (1).to_bytes(64, "big")),  # long
        ("uint256", (2**256 - 1).to_bytes(32, "big")),
        ("uint256", (7).to_bytes(32, "big")),
        ("uint64", (2**64 - 1).to_bytes(32, "big")),
        ("uint64", (2**64).to_bytes(32, "big")),  # past 64 bits
        ("uint64", bytes(16)),
    ],
)
def test_a_views_one_word_answer_reads_as_the_strict_codec_reads_it(kind, raw):
    """`Chain.call_many` reads a bool or uintN answer itself (`_one_word`): the codec's value where the
    codec takes the word, and None (the codec then decodes it, and raises) wherever it does not."""
    read = _one_word([kind])
    assert read is not None and _one_word(["bool", "bool"]) is None and _one_word(["bytes32"]) is None
    try:
        (expected,) = Web3().codec.decode([kind], raw)
    except Exception:
        assert read(raw) is None
    else:
        if len(raw) == 32:
            assert read(raw) == expected and type(read(raw)) is type(expected)
        else:
            assert read(raw) is None  # a long answer goes to the codec, as before


def test_calldata_from_hex_strings_is_calldata_from_bytes():
    contract = Web3().eth.contract(
        address=to_checksum_address("0x" + "11" * 20), abi=compile_contracts()["LoyaltyPoints"].abi
    )
    members, refs = [member(), member()], [member(), member()]
    as_bytes = contract.functions.earnBatch(members, [1, 2], refs)
    as_hex = contract.functions.earnBatch(
        ["0x" + m.hex() for m in members], [1, 2], ["0x" + r.hex() for r in refs]
    )
    assert encode_call(as_hex) == encode_call(as_bytes) == HexBytes(as_bytes._encode_transaction_data())


class TestPipelinedTransactions:
    def test_a_call_prepared_behind_its_senders_unmined_transaction_sees_it(self, coalition):
        """An import sends a chunk's enrolment and prepares the same members' consents before the
        enrolment is mined (same sender, next nonce: the node mines them in order). The simulation
        must run on the state the transaction will meet, the sender's pending ones included, as its
        nonce already does; on the latest block the members are unknown and the import stopped with
        MemberUnknown at 100k interactions on a loaded machine."""
        backend = anvil_only(coalition)
        sender = backend.accounts[0]
        members = [member(), member()]
        backend._rpc("evm_setAutomine", [False])
        try:
            enrolment = coalition.members.prepare_enrol(sender, members, [None, None])
            coalition.members.broadcast(enrolment)
            consent = coalition.consent.prepare_record_batch(
                sender, members, purpose_id("loyalty"), ConsentStatus.GIVEN, [member(), member()]
            )
            coalition.consent.broadcast(consent)
            backend._rpc("evm_mine", [])
        finally:
            backend._rpc("evm_setAutomine", [True])
        coalition.members.wait(enrolment.tx_hash)
        coalition.consent.wait(consent.tx_hash)
        assert coalition.consent.are_valid(members, sender.address, purpose_id("loyalty")) == [True, True]


@pytest.mark.parametrize("budget", [29_000_000, 59_000_000])  # under a 30M block, and a 60M one
def test_an_earn_batch_is_cut_where_its_gas_bound_would_pass_the_budget(budget):
    """Runs of one member's items cost the bound 40k for the first and 5k after; members each once
    40k each: a batch takes as many items, in order, as the budget allows (and always one)."""
    from ledger.clients.loyalty import earn_batch_fits, earn_batch_gas

    runs = [m.to_bytes(32, "big") for m in range(500) for _ in range(20)]  # 500 members, 20 items each
    singles = [i.to_bytes(32, "big") for i in range(2000)]
    assert earn_batch_gas(runs[:20]) == 115_000 + 40_000 + 19 * 5_000
    assert earn_batch_fits(runs[:2000], budget) == 2000  # 100 members' runs: ~4,100 items fit, not 720
    for batch in (runs, singles):
        fits = earn_batch_fits(batch, budget)
        assert earn_batch_gas(batch[:fits]) <= budget < earn_batch_gas(batch[: fits + 1])
    assert earn_batch_fits(singles, budget) == (budget - 115_000) // 40_000
    assert earn_batch_fits(singles[:1], budget=1) == 1
