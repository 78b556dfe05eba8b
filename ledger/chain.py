"""Sending transactions and making calls, with reverts turned into named exceptions."""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any, Literal

from eth_account.signers.local import LocalAccount
from eth_typing import ABIEvent, ChecksumAddress
from eth_utils import (
    event_abi_to_log_topic,
    function_abi_to_4byte_selector,
    get_abi_input_types,
    to_checksum_address,
)
from hexbytes import HexBytes
from web3.contract import Contract
from web3.contract.contract import ContractConstructor, ContractFunction
from web3.datastructures import AttributeDict
from web3.exceptions import TransactionNotFound
from web3.types import BlockIdentifier, EventData, LogReceipt, TxParams, TxReceipt, Wei

from ledger.abiwords import _encode_words as _encode_words
from ledger.abiwords import _one_word as _one_word
from ledger.backends import Backend, Log, Receipt, RpcBackend, unreachable
from ledger.errors import (
    NONCE_TAKEN_MARKS,
    BackendError,
    ContractRevert,
    NonceTaken,
    TransactionFailed,
)
from ledger.logwindows import BlockWindows
from ledger.pipeline import Pipeline
from ledger.reader import keccak, quantity
from ledger.reverts import RevertDecoder
from ledger.txs import CallRequest, TxContext
from ledger.txs import SignedTx as SignedTx
from ledger.txs import TxResult as TxResult

# Gas estimates are exact for the state they ran on; the margin covers a state change between the
# estimate and inclusion on a shared network (another partner's transaction landing first).
_GAS_MARGIN_NUM, _GAS_MARGIN_DEN = 6, 5


# Waiting for a receipt: anvil mines within milliseconds on a small state, so the first polls come
# often (web3 sleeps 100 ms); a block of a large state takes it 0.3-0.4 s (a 1M import's last blocks),
# through which a poll every 5 ms cost this process and the node a request each, so the pause grows
# to at most 40 ms (a wait ends at most that much after its block).
RECEIPT_POLL_FIRST = 0.005
RECEIPT_POLL_MAX = 0.04

# How many blocks after the one a transaction was sent at a lookup without its logs reads the headers of
# (one JSON-RPC batch; a block not mined yet costs the node nothing); a transaction mined later than
# that is looked up by its receipt.
HEADER_WINDOW = 8

# How far under the node's block gas limit a batch's gas bound stays (`Chain.batch_gas_budget`): the
# batches (enrolBatch, recordBatch, earnBatch) are cut to the node's block, not to a fixed 30M one, so
# a 60M block takes half as many of them, and on anvil every block costs a state-root rebuild over the
# whole state. A node packs a block by its transactions' gas limits: each such batch fills one.
BATCH_GAS_MARGIN = 1_000_000


class _LogWindows:
    """The windows of one eth_getLogs filter, oldest first (`ledger.logwindows`: none spans more blocks
    than the node takes); `answered(n)` after each sizes the next. A filter by block hash, or with block
    tags other than numbers, "earliest" and "latest", goes as it is."""

    def __init__(self, filters: dict[str, Any], latest: Any) -> None:
        self.filters, self.latest = filters, latest
        self.blocks: BlockWindows | None = None

    def __iter__(self) -> Iterator[dict[str, Any]]:
        first, last = self.filters.get("fromBlock", 0), self.filters.get("toBlock", "latest")
        first = 0 if first == "earliest" else first
        last = 0 if last == "earliest" else last
        if "blockHash" in self.filters or not isinstance(first, int) or not isinstance(last, int | str):
            yield self.filters
            return
        if isinstance(last, str):
            if last != "latest":
                yield self.filters
                return
            last = int(self.latest())
        self.blocks = BlockWindows(first, last)
        for start, stop in self.blocks:
            yield self.filters | {"fromBlock": start, "toBlock": stop}

    def answered(self, events: int) -> None:
        if self.blocks is not None:
            self.blocks.answered(events)


@dataclass(frozen=True)
class RawLog:
    topics: list[bytes]
    data: bytes
    block_number: int
    tx_hash: bytes = b""  # of the transaction that emitted it


class Chain:
    """A backend plus what every contract client needs: signing, sending, decoding."""

    def __init__(
        self, backend: Backend, abis: Iterable[list[dict[str, Any]]], *, receipt_timeout: float = 120
    ) -> None:
        self.backend = backend
        self.w3 = backend.w3
        self.decoder = RevertDecoder(abis)
        self.receipt_timeout = receipt_timeout
        self._chain_id: int | None = None
        self._gas_limit: int | None = None  # the latest block's, as the last simulation saw it
        self._pipeline: Pipeline | None = None  # while `pipelined()` runs
        # hash -> the latest block when this process signed or sent it: the transaction is in a later one
        self._sent_after: dict[str, int] = {}

    @property
    def chain_id(self) -> int:
        if self._chain_id is None:
            self._chain_id = self.w3.eth.chain_id
        return self._chain_id

    def block_number(self) -> int:
        """The latest block's number, as the node sees it now."""
        try:
            return int(self.w3.eth.block_number)
        except Exception as exc:
            raise self.translate(exc) from None

    @contextmanager
    def pipelined(self) -> Iterator[None]:
        """While the block runs, transactions prepared with a gas bound are signed at once and simulated
        and sent in order by a sender thread (ledger/pipeline.py), so the caller does not wait for each
        simulation. A revert still raises its named error, at the caller's next chain call or when the
        block ends, and nothing after it is sent. Not re-entrant: an inner block joins the outer one."""
        if self._pipeline is not None:
            yield
            return
        pipeline = self._pipeline = Pipeline(self)
        try:
            yield
        except BaseException:
            pipeline.close()  # what the block raised is the news; a failure behind it only followed from it
            raise
        else:
            pipeline.close()
            pipeline.raise_failure()
        finally:
            self._pipeline = None

    def _failed(self) -> None:
        """Before a view: raise what the sender thread met, without waiting for it (a view reads the
        latest block, which need not hold what was broadcast, pipelined or not)."""
        if self._pipeline is not None:
            self._pipeline.raise_failure()

    def _sync(self) -> None:
        """Before a transaction the pipeline did not prepare: everything queued is sent first, and the
        pipeline reads the nonces from the node again after it (this one takes the next)."""
        if self._pipeline is not None:
            self._pipeline.drain()
            self._pipeline.raise_failure()
            self._pipeline.forget_nonces()

    def transact(self, contract: Contract, fn: ContractFunction, sender: LocalAccount) -> TxResult:
        """Sign `fn` with `sender`'s key, send it, wait for it, and decode `contract`'s events.

        A call that would revert raises the named `ContractRevert` subclass before anything is sent,
        so a failed call changes no state."""
        return self.send(contract, self.prepare(fn, sender))

    def prepare(
        self, fn: ContractFunction | ContractConstructor, sender: LocalAccount, *, gas: int | None = None
    ) -> SignedTx:
        """Simulate and sign without sending: the hash is known before the transaction exists anywhere,
        so an outbox can record it first and recognise it after a crash.

        With `gas` (a bound the caller knows from the contract's per-item costs), the simulation is one
        `eth_call` instead of a gas estimate: eth-tester's estimator re-executes the call many times, which
        costs seconds for a batch of hundreds of items. Reverts are caught by the call either way."""
        if gas is not None and not isinstance(fn, ContractConstructor):
            try:
                data = encode_call(fn)
            except Exception as exc:
                raise self.translate(exc) from exc
            return self.prepare_calldata(fn.address, data, sender, gas=gas)
        self._sync()
        try:
            if isinstance(fn, ContractConstructor):
                gas = fn.estimate_gas({"from": sender.address}) * _GAS_MARGIN_NUM // _GAS_MARGIN_DEN
                tx = fn.build_transaction(self._params(sender, gas))
            else:
                # One encoding serves the simulation and the transaction (web3 would encode twice, through
                # its Python normalizers, ~100 ms for an 800-item batch).
                data = encode_call(fn)
                call: TxParams = {"from": sender.address, "to": fn.address, "data": data}
                gas = self.w3.eth.estimate_gas(call) * _GAS_MARGIN_NUM // _GAS_MARGIN_DEN
                context = self.backend.tx_context(sender.address, fees=self.backend.gas_price is None)
                return self.sign(sender, fn.address, data, gas, context)
        except Exception as exc:
            raise self.translate(exc) from exc
        signed = sender.sign_transaction(tx)
        return SignedTx(tx_hash="0x" + bytes(signed.hash).hex(), raw=bytes(signed.raw_transaction))

    def prepare_function(
        self, contract: Contract, name: str, arguments: Sequence[Any], sender: LocalAccount, *, gas: int
    ) -> SignedTx:
        """`prepare(contract.functions.<name>(*arguments), sender, gas=gas)`, its calldata encoded by
        `function_calldata`."""
        words = _direct_calldata(contract, name, arguments)
        if words is None:
            return self.prepare(getattr(contract.functions, name)(*arguments), sender, gas=gas)
        return self.prepare_calldata(contract.address, words, sender, gas=gas)

    def prepare_calldata(self, to: str, data: bytes, sender: LocalAccount, *, gas: int) -> SignedTx:
        """`prepare` of a call whose calldata the caller encoded itself (a batch of hundreds of items,
        which web3's argument checks and eth_abi would spend more time on than the node), with a gas
        bound: simulated by one `eth_call` (reverts raise their named error here) and signed."""
        pipeline = self._pipeline
        try:
            if pipeline is not None:
                return pipeline.prepare(to, sender, data, gas)
            self._sync()
            gas, context = self._simulate(CallRequest(sender.address, to, data, gas))
            return self.sign(sender, to, data, gas, context)
        except Exception as exc:
            raise self.translate(exc) from exc

    def sign(self, sender: LocalAccount, to: str, data: bytes, gas: int, context: TxContext) -> SignedTx:
        """The transaction calling `to` with `data`, signed by `sender` with the nonce and fees of
        `context`."""
        signed = sender.sign_transaction(self._transaction(sender, to, data, gas, context))
        tx = SignedTx(tx_hash="0x" + bytes(signed.hash).hex(), raw=bytes(signed.raw_transaction))
        self.sent_after(tx.tx_hash, context)
        return tx

    def sent_after(self, tx_hash: str, context: TxContext) -> None:
        """Note that `tx_hash` goes to the node after `context` was read: it is mined in a later block than
        `context`'s, where a lookup without logs looks for it."""
        if context.block_number is not None:
            self._sent_after[tx_hash] = context.block_number

    def _simulate(self, call: CallRequest) -> tuple[int, TxContext]:
        """Run `call` with its gas bound capped at the block gas limit, as the transaction will be, so a
        bound set too low fails here, not on chain; and read the nonce and fees in the same round trip.

        The cap comes from the limit the previous simulation read (no extra round trip for it); each
        simulation reads the current one, and when it moved in between (a network's limit drifts over
        time) the call runs again with the new cap, so the cap is never older than the simulation."""
        bound = call.gas
        limit = self._gas_limit if self._gas_limit is not None else self.block_gas_limit()
        for _ in range(3):
            gas = min(bound, limit)
            context = self.backend.tx_context(
                call.sender, fees=self.backend.gas_price is None, simulate=replace(call, gas=gas)
            )
            self._gas_limit = limit = context.gas_limit
            if min(bound, limit) == gas:
                return gas, context
        raise BackendError(f"the block gas limit changed during each of three simulations (now {limit})")

    def _transaction(
        self, sender: LocalAccount, to: str, data: bytes, gas: int, context: TxContext
    ) -> dict[str, Any]:
        """The fields, and values, web3's `fill_transaction_defaults` gives these (value 0, and EIP-1559
        fees: the node's priority fee, plus twice the latest base fee), without its round trips."""
        tx: dict[str, Any] = {
            "from": sender.address,
            "to": to,
            "data": data,
            "value": 0,
            "nonce": context.nonce,
            "gas": gas,
            "chainId": self.chain_id,
        }
        if self.backend.gas_price is not None:
            tx["gasPrice"] = self.backend.gas_price
        elif context.base_fee is None or context.priority_fee is None:
            raise BackendError("the latest block has no base fee (no EIP-1559): set a fixed gas price")
        else:
            tx["maxPriorityFeePerGas"] = context.priority_fee
            tx["maxFeePerGas"] = context.priority_fee + 2 * context.base_fee
        return tx

    def _params(self, sender: LocalAccount, gas: int) -> TxParams:
        params: TxParams = {
            "from": sender.address,
            "nonce": self.w3.eth.get_transaction_count(sender.address, "pending"),
            "gas": gas,
            "chainId": self.chain_id,
        }
        if self.backend.gas_price is not None:
            params["gasPrice"] = Wei(self.backend.gas_price)
        return params

    def block_gas_limit(self) -> int:
        self._failed()
        self._gas_limit = int(self.w3.eth.get_block("latest")["gasLimit"])
        return self._gas_limit

    def batch_gas_budget(self) -> int:
        """The most gas a batch's bound may reach on this node: its block gas limit, as the last
        simulation saw it (read from the node only when nothing was simulated yet), less
        BATCH_GAS_MARGIN."""
        limit = self._gas_limit if self._gas_limit is not None else self.block_gas_limit()
        return limit - BATCH_GAS_MARGIN

    def send(self, contract: Contract, signed: SignedTx) -> TxResult:
        """Send a prepared transaction and wait for it to be mined."""
        self.broadcast(signed)
        return self.wait(contract, signed.tx_hash)

    def broadcast(self, signed: SignedTx) -> None:
        """Send a prepared transaction without waiting for it: the caller learns its fate later through
        `lookup` or `wait` (outboxes keep the hash). Meanwhile the node works and so can we."""
        if self._pipeline is not None and self._pipeline.broadcast(signed):
            return
        self._sync()
        try:
            self.w3.eth.send_raw_transaction(signed.raw)
        except Exception as exc:
            raise self.translate(exc) from exc

    def wait(self, contract: Contract, tx_hash: str, *, logs: bool = True) -> TxResult:
        """Wait until `tx_hash` is mined: its result, or `TransactionFailed`. With `logs=False` its events
        are not read (see `lookup`)."""
        if self._pipeline is not None:
            self._pipeline.settled(tx_hash)
        deadline = time.monotonic() + self.receipt_timeout
        pause = RECEIPT_POLL_FIRST
        while True:
            try:
                headers = None if logs else self._from_headers(tx_hash, contract.address)
                if isinstance(headers, TxResult):
                    return headers
                receipt = None if headers == "unmined" else self.backend.receipt(tx_hash)
            except Exception as exc:
                raise self.translate(exc) from exc
            if receipt is not None:
                return self._result(contract, receipt, tx_hash)
            if time.monotonic() > deadline:
                raise BackendError(f"transaction {tx_hash} was not mined within {self.receipt_timeout} s")
            time.sleep(pause)
            pause = min(pause * 1.5, RECEIPT_POLL_MAX)

    def sender_of(self, tx_hash: bytes) -> ChecksumAddress:
        """Who sent a mined transaction (e.g. the partner that relayed a customer's signature)."""
        self._failed()
        try:
            found = self.w3.eth.get_transaction(HexBytes(tx_hash))
        except Exception as exc:
            raise self.translate(exc) from exc
        return to_checksum_address(found["from"])

    def lookup(
        self, contract: Contract, tx_hash: str, *, logs: bool = True
    ) -> TxResult | Literal["pending"] | None:
        """What became of a transaction sent earlier: its result once mined, "pending" while the node
        still holds it, None if the node has never seen it (it was never sent, or was dropped).

        With `logs=False` (an outbox that reads only the status and the block), a transaction this
        process sent is first looked for in the headers of the blocks after it was sent (`_from_headers`):
        an earnBatch's receipt carries ~1,100 logs, ~0.5 MB of JSON the node writes and this process
        reads, for two numbers. Its result's `events` then raise."""
        if self._pipeline is not None:
            self._pipeline.settled(tx_hash)
        try:
            if not logs:
                headers = self._from_headers(tx_hash, contract.address)
                if isinstance(headers, TxResult):
                    return headers
            receipt = self.backend.receipt(tx_hash)
            if receipt is None:
                try:
                    self.w3.eth.get_transaction(HexBytes(tx_hash))
                except TransactionNotFound:
                    return None
                return "pending"
        except Exception as exc:
            raise self.translate(exc) from exc
        return self._result(contract, receipt, tx_hash)

    def _result(self, contract: Contract, receipt: Receipt, tx_hash: str) -> TxResult:
        if receipt.tx_hash != tx_hash.lower():  # a node that breaks or lies: nothing confirmed on its word
            raise BackendError(f"the node answered the receipt of {receipt.tx_hash} for {tx_hash}")
        self._sent_after.pop(receipt.tx_hash, None)
        if receipt.status != 1:
            raise TransactionFailed(f"transaction {receipt.tx_hash} failed (gas used {receipt.gas_used})")
        return TxResult(receipt.tx_hash, receipt.block_number, receipt.gas_used, receipt, contract)

    def _from_headers(self, tx_hash: str, address: str) -> TxResult | Literal["unmined"] | None:
        """What became of `tx_hash`, which this process sent to the contract at `address`, read from the
        headers of the blocks after the one it was sent at (`sent_after`), without its receipt.

        Mined alone in its block, under a logs bloom that holds `address` (a log of that contract): it
        ran to the end, since a reverted transaction leaves no log, and the block's bloom is its
        receipt's alone (the address, not any bit: a chain that adds logs of its own to a block's bloom
        does not pass for it); its gas is the block's. "unmined": no block up to the latest holds it
        (pending, or never sent: `lookup` asks the node which). None where the headers cannot tell: a
        transaction not sent from here, mined beside others, or that logged nothing of that contract (it
        may have failed), or beyond `HEADER_WINDOW` blocks: its receipt says."""
        key = tx_hash.lower()
        after = self._sent_after.get(key)
        if after is None or not isinstance(self.backend, RpcBackend):
            return None
        try:
            blocks = self.backend.blocks(after + 1, HEADER_WINDOW)
        except BackendError:
            return None  # a node that answers a block it lacks with an error, not null: the receipt says
        for block in blocks:
            if block is None:
                return "unmined"  # not in any block up to the latest
            try:
                hashes = [str(h).lower() for h in block["transactions"]]
                if key not in hashes:
                    continue
                if hashes != [key] or not _in_bloom(int(block["logsBloom"], 16), address):
                    return None
                found = TxResult(key, quantity(block["number"]), quantity(block["gasUsed"]), logs_read=False)
            except (KeyError, TypeError, ValueError, BackendError):
                return None  # a header in no shape to say: the receipt does
            self._sent_after.pop(key, None)
            return found
        return None

    def deploy(
        self, abi: list[dict[str, Any]], bytecode: str, args: list[Any], sender: LocalAccount
    ) -> TxReceipt:
        """Deploy a contract; the receipt's `contractAddress` is where it lives."""
        contract = self.w3.eth.contract(abi=abi, bytecode=bytecode)
        signed = self.prepare(contract.constructor(*args), sender)
        try:
            self.w3.eth.send_raw_transaction(signed.raw)
            receipt = self.w3.eth.wait_for_transaction_receipt(
                HexBytes(signed.tx_hash), timeout=self.receipt_timeout, poll_latency=0.005
            )
        except Exception as exc:
            raise self.translate(exc) from exc
        if receipt["status"] != 1:
            raise TransactionFailed(f"deploying from {sender.address} failed")
        return receipt

    def raw_logs(self, filters: dict[str, Any]) -> list[RawLog]:
        """`eth_getLogs`, undecoded. Against a remote node the JSON goes straight to the provider: web3's
        result formatters cost more than the node (37k point events: seconds, not a fraction)."""
        self._failed()
        if isinstance(self.backend, RpcBackend):
            found: list[RawLog] = []
            windows = _LogWindows(filters, self.block_number)
            for window in windows:
                entries: Any = self.backend.get_logs_json(window)
                found.extend(
                    RawLog(
                        [bytes.fromhex(t[2:]) for t in e["topics"]],
                        bytes.fromhex(e["data"][2:]),
                        int(e["blockNumber"], 16),
                        bytes.fromhex(e["transactionHash"][2:]),
                    )
                    for e in entries
                )
                windows.answered(len(entries))
            return found
        return [
            RawLog(
                [bytes(t) for t in e["topics"]],
                bytes(e["data"]),
                int(e["blockNumber"]),
                bytes(e["transactionHash"]),
            )
            for e in self.w3.eth.get_logs(filters)  # type: ignore[arg-type]
        ]

    def call_many(self, contract: Contract, name: str, arguments: Sequence[Sequence[Any]]) -> list[Any]:
        """The view `name` called once per argument list. Against a remote node: raw `eth_call`s in
        JSON-RPC batches (one round trip and no middleware per call; 5,878 balances take about a second
        on anvil instead of a minute); in process, one by one."""
        self._failed()
        fn = getattr(contract.functions, name)
        if not isinstance(self.backend, RpcBackend):
            return [self.call(fn(*args)) for args in arguments]
        abi = contract.get_function_by_name(name).abi
        inputs = [i["type"] for i in abi["inputs"]]
        outputs = [o["type"] for o in abi["outputs"]]
        # the selector once and the arguments per call, straight from the ABI where they are words
        # (`_encode_words`), else by the codec: contract.encode_abi re-resolves the ABI every time, and
        # eth_abi's encoding and decoding of 5,942 consents (bytes32, address, bytes32 -> bool) were
        # ~0.12 CPU s of `score --all`
        selector = "0x" + bytes(function_abi_to_4byte_selector(abi)).hex()
        datas = []
        for args in arguments:
            words = _encode_words(inputs, args)
            datas.append(
                selector + (words if words is not None else self.w3.codec.encode(inputs, list(args))).hex()
            )
        word = _one_word(outputs)
        found: list[Any] = []
        for raw in self.backend.eth_call_many(contract.address, datas):
            value = word(raw) if word is not None else None
            if value is None:  # anything else, or a word the strict codec would refuse: the codec's answer
                values = self.w3.codec.decode(outputs, raw)
                value = values[0] if len(values) == 1 else tuple(values)
            found.append(value)
        return found

    def call(self, fn: ContractFunction, block: BlockIdentifier = "latest") -> Any:
        self._failed()
        try:
            return fn.call(block_identifier=block)
        except Exception as exc:
            raise self.translate(exc) from exc

    def translate(self, exc: Exception) -> Exception:
        """`exc` (from web3 or the backend) as the named revert it carries, or a `BackendError`."""
        data = self.backend.revert_data(exc)
        if data is not None:
            return self.decoder.decode(data)
        if isinstance(exc, ContractRevert | BackendError):
            return exc
        text = str(exc).lower()
        if any(mark in text for mark in NONCE_TAKEN_MARKS):
            # a raw node message ("nonce too low") is no words for a person: named, and said in
            # api/messages.py
            return NonceTaken(f"{type(exc).__name__}: {exc}")
        reason = unreachable(exc)
        if reason is not None:
            return BackendError(f"the node at {self.backend.rpc_url} stopped answering: {reason}")
        return BackendError(f"{type(exc).__name__}: {exc}")


def _in_bloom(bloom: int, address: str) -> bool:
    """Whether a 2048-bit logs bloom holds `address`: the three bits the low 11 bits of the first three
    byte pairs of its keccak set (the yellow paper's M3:2048), false positives possible, never a false
    negative."""
    digest = keccak(bytes.fromhex(address.removeprefix("0x")))
    return all(bloom >> (int.from_bytes(digest[i : i + 2], "big") & 2047) & 1 for i in (0, 2, 4))


def encode_call(fn: ContractFunction) -> bytes:
    """The calldata of `fn`: its selector and its arguments ABI-encoded directly (by `_encode_words` where
    it can, else by eth_abi). Arguments eth_abi does not take as they are (ENS names, hex strings for
    bytes) go through web3's normalizers."""
    try:
        types = get_abi_input_types(fn.abi)
        arguments = _encode_words(types, fn.arguments)
        if arguments is None:
            arguments = fn.w3.codec.encode(types, fn.arguments)
        return HexBytes(fn.selector) + arguments
    except Exception:
        return HexBytes(fn._encode_transaction_data())


def function_calldata(contract: Contract, name: str, arguments: Sequence[Any]) -> bytes:
    """The calldata of `contract.functions.<name>(*arguments)`. Batches of uints, bytes32 and addresses
    are encoded straight from the ABI (`_encode_words`): building web3's ContractFunction first checks
    every argument against the function through eth_abi's `is_encodable`, value by value (1.1 ms for an
    earnBatch of 600 items, 0.2 ms this way; ~0.1 CPU s of an Online Retail II import), which
    `_encode_words` checks again in a join. Anything else is web3's."""
    words = _direct_calldata(contract, name, arguments)
    return words if words is not None else encode_call(getattr(contract.functions, name)(*arguments))


def _direct_calldata(contract: Contract, name: str, arguments: Sequence[Any]) -> bytes | None:
    abi = _function_abi(contract, name)
    words = None if abi is None else _encode_words(abi[1], arguments)
    return None if abi is None or words is None else abi[0] + words


def _function_abi(contract: Contract, name: str) -> tuple[bytes, tuple[str, ...]] | None:
    """The selector and input types of `contract`'s only function called `name` (None if it has
    none or overloads: web3 chooses among those)."""
    found = [e for e in contract.abi if e.get("type") == "function" and e.get("name") == name]
    if len(found) != 1:
        return None
    return bytes(function_abi_to_4byte_selector(found[0])), tuple(get_abi_input_types(found[0]))


def decode_events(
    contract: Contract, logs: Iterable[Log], tx_hash: str, block_number: int
) -> list[EventData]:
    """Every log in `logs` (of transaction `tx_hash`) emitted by `contract`, decoded, in log order."""
    events_abi: list[ABIEvent] = [item for item in contract.abi if item["type"] == "event"]
    by_topic = {event_abi_to_log_topic(item): item["name"] for item in events_abi}
    events: list[EventData] = []
    for log in logs:
        if log.address != contract.address or not log.topics:
            continue
        name = by_topic.get(log.topics[0])
        if name is not None:
            events.append(contract.events[name]().process_log(_log_receipt(log, tx_hash, block_number)))
    return events


def _log_receipt(log: Log, tx_hash: str, block_number: int) -> LogReceipt:
    """`log` in the shape web3's event decoder reads."""
    return AttributeDict(  # type: ignore[return-value]
        {
            "address": log.address,
            "topics": [HexBytes(t) for t in log.topics],
            "data": HexBytes(log.data),
            "logIndex": log.log_index,
            "transactionIndex": log.transaction_index,
            "blockHash": HexBytes(log.block_hash),
            "blockNumber": block_number,
            "transactionHash": HexBytes(tx_hash),
        }
    )
