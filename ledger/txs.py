"""What a transaction becomes on the way to the chain and back, without web3: signed (`SignedTx`), mined
(`TxResult`, with its `Receipt`). The web3 chain client (`ledger.chain`) and the lean decision sender
(`ledger.sender`) both give these, so an outbox takes either; importing this module costs no web3
(`score --all` signs and sends without it: benchmarks/README.md)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

from ledger.reader import checksum_address

if TYPE_CHECKING:
    from web3.contract import Contract
    from web3.types import EventData


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

    @cached_property
    def events(self) -> list[EventData]:
        """`contract`'s events in this transaction, decoded on first use: a batch of hundreds of items
        emits hundreds of events that an outbox never reads, and web3 decodes ~1,000 a second."""
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
