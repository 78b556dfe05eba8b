"""What a transaction becomes on the way to the chain and back, without web3: signed (`SignedTx`), mined
(`TxResult`, with its `Receipt`). The web3 chain client (`ledger.chain`) and the lean decision sender
(`ledger.sender`) both give these, so an outbox takes either; importing this module costs no web3
(`score --all` signs and sends without it: benchmarks/README.md)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any, NoReturn

from ledger.errors import BackendError
from ledger.reader import checksum_address, quantity

if TYPE_CHECKING:
    from web3.contract import Contract
    from web3.types import EventData


# How long a simulation that reverted waits for the sender's transactions in flight to be mined before it
# runs again (see `read_before_signing`): far above any block's time.
MINED_WAIT = 120.0


@dataclass(frozen=True)
class CallRequest:
    """A transaction to simulate with eth_call before it is signed."""

    sender: str
    to: str
    data: bytes
    gas: int


@dataclass(frozen=True)
class TxContext:
    """What the node says about a transaction about to be signed, read at one moment."""

    nonce: int  # the sender's next, counting its pending transactions
    gas_limit: int  # the latest block's
    base_fee: int | None  # the latest block's; None on a chain without EIP-1559
    priority_fee: int | None  # the node's suggested tip; None when not asked for
    # the latest block's number: a transaction sent after this read is mined in a later block
    block_number: int | None = None


Requests = list[tuple[str, list[object]]]


def read_before_signing(
    batch: Callable[[Requests], Sequence[Any]],
    result: Callable[[str, Any], Any],
    sender: str,
    *,
    fees: Callable[[], int] | None,
    call: CallRequest | None,
    reverted: Callable[[Any], NoReturn],
) -> TxContext:
    """The one JSON-RPC batch read before a transaction is signed, for both senders over JSON-RPC (the
    web3 client's `RpcBackend.tx_context` and the lean `RawSender`): the sender's next nonce (counting
    its pending transactions), the latest block's gas limit and base fee, with `fees` the node's priority
    fee (`fees()` where the node lacks eth_maxPriorityFeePerGas, which is not in the JSON-RPC spec: web3
    computes it from eth_feeHistory), and with `call` an `eth_call` of it on "pending", whose revert is
    handed to `reverted` (which raises the sender's named error). Raw JSON-RPC in one round trip: web3's
    formatters and validation (an eth_chainId per call) cost more than anvil needs to run an 800-item
    batch, and each round trip costs ~1 ms even on localhost.

    `batch` sends requests and gives their answers in order, errors unraised; `result` gives one answer's
    result or raises its error in the sender's words. What the node answers where a number is due is
    checked (`quantity`): a node answering nonsense is refused in words on both paths alike."""
    requests: Requests = [
        ("eth_getTransactionCount", [sender, "pending"]),
        ("eth_getBlockByNumber", ["latest", False]),
    ]
    if fees is not None:
        requests.append(("eth_maxPriorityFeePerGas", []))
    if call is not None:
        simulated = {"from": call.sender, "to": call.to, "data": "0x" + call.data.hex(), "gas": hex(call.gas)}
        # "pending": the state this transaction will meet, after the sender's transactions already sent
        # and not yet mined (its nonce counts them too). An import sends a chunk's enrolment and then
        # prepares those members' consents; on "latest" the members can still be unknown.
        requests += [("eth_getTransactionCount", [sender, "latest"]), ("eth_call", [simulated, "pending"])]
    for again in (True, False):
        answers = batch(requests)
        pending = quantity(result("eth_getTransactionCount", answers[0]))
        if call is not None and "error" in answers[-1]:
            mined = quantity(result("eth_getTransactionCount", answers[-2]))
            if again and mined < pending:
                # While anvil mines a block, its transactions are neither in its pool nor in its latest
                # block, so a call on "pending" misses the sender's transaction being mined (seen in a 1M
                # import, where a block takes ~0.5 s: the consents of members whose enrolBatch was being
                # mined reverted with MemberUnknown). Once the sender's transactions are mined the call
                # runs once more; a real revert reverts again.
                _wait_mined(batch, result, sender, pending)
                continue
            reverted(answers[-1])
        block = result("eth_getBlockByNumber", answers[1])
        if not isinstance(block, Mapping):
            raise BackendError(f"the node answered {str(block)[:100]!r} where the latest block was due")
        base_fee = block.get("baseFeePerGas")
        priority_fee: int | None = None
        if fees is not None:
            answer = answers[2]
            priority_fee = (
                fees() if "error" in answer else quantity(result("eth_maxPriorityFeePerGas", answer))
            )
        return TxContext(
            nonce=pending,
            gas_limit=quantity(block.get("gasLimit")),
            base_fee=None if base_fee is None else quantity(base_fee),
            priority_fee=priority_fee,
            block_number=None if block.get("number") is None else quantity(block["number"]),
        )
    raise AssertionError("unreachable: the second reading returns or raises")


def _wait_mined(
    batch: Callable[[Requests], Sequence[Any]], result: Callable[[str, Any], Any], sender: str, count: int
) -> None:
    """Return once the latest block counts `count` transactions of `sender` (or after `MINED_WAIT`
    seconds: the caller's next reading says what is wrong)."""
    deadline = time.monotonic() + MINED_WAIT
    while time.monotonic() < deadline:
        (answer,) = batch([("eth_getTransactionCount", [sender, "latest"])])
        if quantity(result("eth_getTransactionCount", answer)) >= count:
            return
        time.sleep(0.02)


@dataclass(frozen=True)
class SignedTx:
    tx_hash: str
    raw: bytes


@dataclass(frozen=True)
class TxResult:
    tx_hash: str
    block_number: int
    gas_used: int
    receipt: Receipt | None = field(default=None, repr=False, compare=False)
    contract: Contract | None = field(default=None, repr=False, compare=False)
    # False when the result was read from its block's header, not its receipt (`Chain.lookup(...,
    # logs=False)`): its events are unknown here, not absent
    logs_read: bool = field(default=True, repr=False, compare=False)

    @cached_property
    def events(self) -> list[EventData]:
        """`contract`'s events in this transaction, decoded on first use: a batch of hundreds of items
        emits hundreds of events that an outbox never reads, and web3 decodes ~1,000 a second."""
        if not self.logs_read:
            raise LookupError(f"transaction {self.tx_hash} was looked up without its logs")
        if self.contract is None or self.receipt is None:
            return []
        from ledger.chain import decode_events  # web3's decoder: only where events are read

        return decode_events(self.contract, self.receipt.logs, self.tx_hash, self.block_number)

    def event(self, name: str) -> EventData:
        """The single event called `name` (raises if there is not exactly one)."""
        found = self.events_named(name)
        if len(found) != 1:
            raise LookupError(f"expected one {name} event, found {len(found)}")
        return found[0]

    def events_named(self, name: str) -> list[EventData]:
        return [e for e in self.events if e["event"] == name]


@dataclass(frozen=True)
class Log:
    address: str  # checksummed
    topics: tuple[bytes, ...]
    data: bytes
    log_index: int
    transaction_index: int
    block_hash: bytes


@dataclass(frozen=True)
class Receipt:
    """The parts of a transaction receipt the ledger layer reads, the same on every backend.

    Read straight from the node's answer: web3's receipt formatters cost ~1 ms per log in Python,
    which for a batch of 800 events is more than the node needs to execute the transaction. The logs
    are converted only when asked for (an outbox reads the status and the block, never the logs)."""

    tx_hash: str
    status: int
    block_number: int
    gas_used: int
    raw_logs: tuple[Mapping[str, Any], ...] = field(default=(), repr=False)
    # the node's names for a log's index fields: JSON-RPC camelCase, or eth-tester's snake_case
    dialect: tuple[str, str, str] = field(default=("logIndex", "transactionIndex", "blockHash"), repr=False)

    @cached_property
    def logs(self) -> tuple[Log, ...]:
        return tuple(self.iter_logs())

    def iter_logs(self) -> Iterator[Log]:
        """The logs, converted one at a time as they are read (a reader after the first of a batch's
        hundreds stops there)."""
        if "logs" in self.__dict__:
            yield from self.logs
            return
        log_index, tx_index, block_hash = self.dialect
        for log in self.raw_logs:
            yield Log(
                address=checksum_address(log["address"]),
                topics=tuple(_bytes(t) for t in log["topics"]),
                data=_bytes(log["data"]),
                log_index=_int(log[log_index]),
                transaction_index=_int(log[tx_index]),
                block_hash=_bytes(log[block_hash]),
            )


def _int(value: int | str) -> int:
    return value if isinstance(value, int) else int(value, 16)


def _bytes(value: bytes | str) -> bytes:
    return value if isinstance(value, bytes) else bytes.fromhex(value.removeprefix("0x"))


def receipt_of(
    raw: Mapping[str, Any], tx_hash: str, block: str, gas: str, log_index: str, tx_index: str
) -> Receipt:
    """A receipt from either dialect, named by its keys (JSON-RPC camelCase, eth-tester snake_case)."""
    block_hash = "blockHash" if "blockHash" in raw else "block_hash"
    return Receipt(
        tx_hash="0x" + _bytes(raw[tx_hash]).hex(),
        status=_int(raw["status"]),
        block_number=_int(raw[block]),
        gas_used=_int(raw[gas]),
        raw_logs=tuple(raw["logs"]),
        dialect=(log_index, tx_index, block_hash),
    )
