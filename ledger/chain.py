"""Sending transactions and making calls, with reverts turned into named exceptions."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from eth_account.signers.local import LocalAccount
from eth_typing import ABIEvent
from eth_utils import event_abi_to_log_topic
from hexbytes import HexBytes
from web3.contract import Contract
from web3.contract.contract import ContractConstructor, ContractFunction
from web3.exceptions import TransactionNotFound
from web3.types import BlockIdentifier, EventData, TxParams, TxReceipt, Wei

from ledger.backends import Backend
from ledger.errors import BackendError, ContractRevert, TransactionFailed
from ledger.reverts import RevertDecoder

# Gas estimates are exact for the state they ran on; the margin covers a state change between the
# estimate and inclusion on a shared network (another partner's transaction landing first).
_GAS_MARGIN_NUM, _GAS_MARGIN_DEN = 6, 5


@dataclass(frozen=True)
class SignedTx:
    tx_hash: str
    raw: bytes


@dataclass(frozen=True)
class TxResult:
    tx_hash: str
    block_number: int
    gas_used: int
    events: list[EventData] = field(default_factory=list)

    def event(self, name: str) -> EventData:
        """The single event called `name` (raises if there is not exactly one)."""
        found = self.events_named(name)
        if len(found) != 1:
            raise LookupError(f"expected one {name} event, found {len(found)}")
        return found[0]

    def events_named(self, name: str) -> list[EventData]:
        return [e for e in self.events if e["event"] == name]


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

    @property
    def chain_id(self) -> int:
        if self._chain_id is None:
            self._chain_id = self.w3.eth.chain_id
        return self._chain_id

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
        try:
            if gas is None or isinstance(fn, ContractConstructor):
                gas = fn.estimate_gas({"from": sender.address}) * _GAS_MARGIN_NUM // _GAS_MARGIN_DEN
            else:
                fn.call({"from": sender.address})
                gas = min(gas, self.block_gas_limit())
            params: TxParams = {
                "from": sender.address,
                "nonce": self.w3.eth.get_transaction_count(sender.address, "pending"),
                "gas": gas,
                "chainId": self.chain_id,
            }
            if self.backend.gas_price is not None:
                params["gasPrice"] = Wei(self.backend.gas_price)
            tx = fn.build_transaction(params)
        except Exception as exc:
            raise self._translate(exc) from exc
        signed = sender.sign_transaction(tx)  # type: ignore[arg-type]
        return SignedTx(tx_hash="0x" + bytes(signed.hash).hex(), raw=bytes(signed.raw_transaction))

    def block_gas_limit(self) -> int:
        return int(self.w3.eth.get_block("latest")["gasLimit"])

    def send(self, contract: Contract, signed: SignedTx) -> TxResult:
        """Send a prepared transaction and wait for it to be mined."""
        try:
            self.w3.eth.send_raw_transaction(signed.raw)
        except Exception as exc:
            raise self._translate(exc) from exc
        return self.wait(contract, signed.tx_hash)

    def wait(self, contract: Contract, tx_hash: str) -> TxResult:
        try:
            # anvil mines within milliseconds: poll often rather than sleep web3's default 100 ms
            receipt = self.w3.eth.wait_for_transaction_receipt(
                HexBytes(tx_hash), timeout=self.receipt_timeout, poll_latency=0.005
            )
        except Exception as exc:
            raise self._translate(exc) from exc
        return self._result(contract, receipt)

    def lookup(self, contract: Contract, tx_hash: str) -> TxResult | Literal["pending"] | None:
        """What became of a transaction sent earlier: its result once mined, "pending" while the node
        still holds it, None if the node has never seen it (it was never sent, or was dropped)."""
        try:
            receipt = self.w3.eth.get_transaction_receipt(HexBytes(tx_hash))
        except TransactionNotFound:
            try:
                self.w3.eth.get_transaction(HexBytes(tx_hash))
            except TransactionNotFound:
                return None
            return "pending"
        except Exception as exc:
            raise self._translate(exc) from exc
        return self._result(contract, receipt)

    def _result(self, contract: Contract, receipt: TxReceipt) -> TxResult:
        tx_hash = "0x" + bytes(receipt["transactionHash"]).hex()
        if receipt["status"] != 1:
            raise TransactionFailed(f"transaction {tx_hash} failed (gas used {receipt['gasUsed']})")
        return TxResult(
            tx_hash=tx_hash,
            block_number=receipt["blockNumber"],
            gas_used=receipt["gasUsed"],
            events=decode_events(contract, receipt),
        )

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
            raise self._translate(exc) from exc
        if receipt["status"] != 1:
            raise TransactionFailed(f"deploying from {sender.address} failed")
        return receipt

    def call(self, fn: ContractFunction, block: BlockIdentifier = "latest") -> Any:
        try:
            return fn.call(block_identifier=block)
        except Exception as exc:
            raise self._translate(exc) from exc

    def _translate(self, exc: Exception) -> Exception:
        data = self.backend.revert_data(exc)
        if data is not None:
            return self.decoder.decode(data)
        if isinstance(exc, ContractRevert | BackendError):
            return exc
        return BackendError(f"{type(exc).__name__}: {exc}")


def decode_events(contract: Contract, receipt: TxReceipt) -> list[EventData]:
    """Every log of `receipt` emitted by `contract`, decoded, in log order."""
    events_abi: list[ABIEvent] = [item for item in contract.abi if item["type"] == "event"]
    by_topic = {event_abi_to_log_topic(item): item["name"] for item in events_abi}
    events: list[EventData] = []
    for log in receipt["logs"]:
        if log["address"] != contract.address or not log["topics"]:
            continue
        name = by_topic.get(bytes(log["topics"][0]))
        if name is not None:
            events.append(contract.events[name]().process_log(log))
    return events
