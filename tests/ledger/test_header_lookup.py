"""An outbox's lookups without logs (`Chain.lookup(..., logs=False)`, the points, consent and enrolment
clients): a transaction this process sent, mined alone in its block under a logs bloom that holds its
contract's address, is confirmed from the block's header, without its receipt (an earnBatch's carries
~1,100 logs). Anything the header cannot prove (a revert, a block shared with other transactions, a
header in no shape) is read from the receipt, as before.

On anvil only: eth-tester's receipts are read in process, and no lookup there goes by headers.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest

from ledger.backends import RpcBackend
from ledger.chain import SignedTx
from ledger.coalition import Coalition
from ledger.errors import BackendError, TransactionFailed
from tests.ledger.test_prepare import BOUND, anvil_only, earn_batch


@pytest.fixture
def receipts(coalition: Coalition, monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """The hashes whose receipts the node is asked for, in order (a test clears it after its set-up:
    enrolling members waits for receipts)."""
    backend = anvil_only(coalition)
    asked: list[str] = []
    read = backend.receipt

    def receipt(tx_hash: str) -> Any:
        asked.append(tx_hash)
        return read(tx_hash)

    monkeypatch.setattr(backend, "receipt", receipt)
    yield asked


def unsimulated(coalition: Coalition, fn: Any, later: int = 0) -> SignedTx:
    """`fn` signed without a simulation (as a node would mine it whatever it does), noted as sent now;
    with the pending nonce plus `later`."""
    chain, sender = coalition.chain, coalition.chain.backend.accounts[0]
    context = chain.backend.tx_context(sender.address, fees=chain.backend.gas_price is None)
    data = bytes.fromhex(fn._encode_transaction_data()[2:])
    return chain.sign(sender, fn.address, data, BOUND, replace(context, nonce=context.nonce + later))


def mined_block(coalition: Coalition, tx_hash: str) -> int:
    """Once mined, its block, as web3 reads it (not through the backend's `receipt`)."""
    return int(coalition.chain.w3.eth.wait_for_transaction_receipt(tx_hash)["blockNumber"])  # type: ignore[arg-type]


def test_a_batch_mined_alone_is_confirmed_from_its_block_header_without_its_receipt(
    coalition: Coalition, receipts: list[str]
) -> None:
    chain, sender = coalition.chain, coalition.chain.backend.accounts[0]
    calls = [earn_batch(coalition, amounts=[3, 4]), earn_batch(coalition, amounts=[5])]
    receipts.clear()
    with chain.pipelined():
        waited, looked_up = (chain.prepare(fn, sender, gas=BOUND) for fn in calls)
        chain.broadcast(waited)
        chain.broadcast(looked_up)
        found = [coalition.loyalty.wait(waited.tx_hash)]
    mined_block(coalition, looked_up.tx_hash)
    found.append(coalition.loyalty.lookup(looked_up.tx_hash))  # type: ignore[arg-type]
    assert receipts == []  # neither read the receipt
    # the receipts, for comparison: the same hash, block and gas
    assert found == [chain.wait(coalition.loyalty.contract, tx.tx_hash) for tx in (waited, looked_up)]
    assert [f.block_number for f in found] == [
        mined_block(coalition, tx.tx_hash) for tx in (waited, looked_up)
    ]


def test_the_events_of_a_result_read_without_logs_raise_rather_than_read_as_none(
    coalition: Coalition, receipts: list[str]
) -> None:
    chain, sender = coalition.chain, coalition.chain.backend.accounts[0]
    signed = chain.prepare(earn_batch(coalition, amounts=[7]), sender, gas=BOUND)
    receipts.clear()
    chain.broadcast(signed)
    with pytest.raises(LookupError, match="without its logs"):
        _ = coalition.loyalty.wait(signed.tx_hash).events
    # with its logs (anchors, decisions, governance: what reads events), the receipt as before
    mined = chain.wait(coalition.loyalty.contract, signed.tx_hash)
    assert mined.event("PointsEarned")["args"]["amount"] == 7
    assert receipts == [signed.tx_hash]


def test_a_reverted_batch_mined_alone_is_read_from_its_receipt_and_fails(
    coalition: Coalition, receipts: list[str]
) -> None:
    """Mined without a simulation (as after a state change between the simulation and the block): a
    revert leaves no log, so its block's bloom is empty and only the receipt can say; it says failed."""
    chain = coalition.chain
    signed = unsimulated(coalition, earn_batch(coalition, amounts=[1, 0]))  # 0: LoyaltyZeroAmount
    receipts.clear()
    chain.w3.eth.send_raw_transaction(signed.raw)
    with pytest.raises(TransactionFailed):
        coalition.loyalty.wait(signed.tx_hash)
    with pytest.raises(TransactionFailed):
        coalition.loyalty.lookup(signed.tx_hash)
    assert receipts == [signed.tx_hash, signed.tx_hash]


def test_a_batch_mined_beside_another_is_read_from_its_receipt(
    coalition: Coalition, receipts: list[str]
) -> None:
    """Two transactions in one block, one of which reverted: the block's bloom is the other's, so no
    header says anything of either; each is read from its receipt."""
    chain = coalition.chain
    calls = [earn_batch(coalition, amounts=[2]), earn_batch(coalition, amounts=[0])]
    good, bad = unsimulated(coalition, calls[0]), unsimulated(coalition, calls[1], later=1)
    receipts.clear()
    backend = chain.backend
    assert isinstance(backend, RpcBackend)
    backend._rpc("evm_setAutomine", [False])
    try:
        chain.w3.eth.send_raw_transaction(good.raw)
        chain.w3.eth.send_raw_transaction(bad.raw)
        backend._rpc("evm_mine", [])
    finally:
        backend._rpc("evm_setAutomine", [True])
    assert mined_block(coalition, good.tx_hash) == mined_block(coalition, bad.tx_hash)
    with pytest.raises(TransactionFailed):
        coalition.loyalty.lookup(bad.tx_hash)
    found = coalition.loyalty.lookup(good.tx_hash)
    assert found == chain.wait(coalition.loyalty.contract, good.tx_hash)
    assert receipts == [bad.tx_hash, good.tx_hash, good.tx_hash]


@pytest.mark.parametrize(
    "header",
    [
        {"logsBloom": "0xnot-hex"},
        {"logsBloom": None},
        {"logsBloom": "0x" + "00" * 255 + "01"},  # logs, none of the contract's: not the transaction's
        {"number": "12"},  # not a JSON-RPC quantity
        {"gasUsed": None},
        {"transactions": None},
    ],
    ids=[
        "bloom-not-hex",
        "bloom-null",
        "bloom-without-the-contract",
        "number-not-hex",
        "gas-null",
        "transactions-null",
    ],
)
def test_a_header_in_no_shape_is_not_believed_the_receipt_is(
    coalition: Coalition, receipts: list[str], monkeypatch: pytest.MonkeyPatch, header: dict[str, Any]
) -> None:
    chain, sender = coalition.chain, coalition.chain.backend.accounts[0]
    backend = chain.backend
    assert isinstance(backend, RpcBackend)
    signed = chain.prepare(earn_batch(coalition, amounts=[5]), sender, gas=BOUND)
    receipts.clear()
    chain.broadcast(signed)
    block = mined_block(coalition, signed.tx_hash)
    blocks = backend.blocks

    def broken(first: int, count: int) -> list[Any]:
        found = blocks(first, count)
        return [b if b is None or int(b["number"], 16) != block else {**b, **header} for b in found]

    monkeypatch.setattr(backend, "blocks", broken)
    mined = coalition.loyalty.lookup(signed.tx_hash)
    assert mined is not None and mined != "pending"
    assert mined.block_number == block
    assert receipts == [signed.tx_hash]


def test_headers_the_node_answers_with_an_error_leave_it_to_the_receipt(
    coalition: Coalition, receipts: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A node that answers a block it has not mined with an error rather than null: not the import's
    failure; the receipt says."""
    chain, sender = coalition.chain, coalition.chain.backend.accounts[0]
    backend = chain.backend
    assert isinstance(backend, RpcBackend)
    signed = chain.prepare(earn_batch(coalition, amounts=[6]), sender, gas=BOUND)
    receipts.clear()
    chain.broadcast(signed)

    def refused(first: int, count: int) -> list[Any]:
        raise BackendError("eth_getBlockByNumber failed: {'code': -32000, 'message': 'block not found'}")

    monkeypatch.setattr(backend, "blocks", refused)
    mined = coalition.loyalty.wait(signed.tx_hash)
    assert mined.block_number == mined_block(coalition, signed.tx_hash)
    assert receipts and set(receipts) == {signed.tx_hash}
