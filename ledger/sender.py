"""Signing and sending DecisionLog's recordDecisions over plain JSON-RPC, without web3 or eth_account.

`score --all` reads the chain (`ledger.reader`) and then logs its decisions in a few batches; importing
web3 and eth_account for those batches cost it ~0.5 of its ~4.3 CPU s (benchmarks/README.md). What the
web3 chain client (`ledger.chain.Chain`) does for a prepared transaction is done here the same way:

- the call simulated first (one JSON-RPC batch: the sender's nonces, the latest block, the node's priority
  fee and an `eth_call` on "pending", read by `ledger.txs.read_before_signing`, which the web3 client's
  `RpcBackend.tx_context` calls too), its gas bound capped at the block gas limit as `Chain._simulate`
  caps it; a revert raises its named `ContractRevert` (`ledger.errors`, decoded
  by `ledger.reverts`) before anything is signed or sent;
- an EIP-1559 transaction with the fields and values `Chain._transaction` gives it (value 0, the node's
  priority fee plus twice the latest base fee), signed with the key by libsecp256k1 (coincurve: RFC 6979
  nonces, low s), byte for byte what eth_account signs (tests/ledger/test_sender.py compares them);
- a node's "nonce too low" (another process took the nonce) is `NonceTaken`, a mined failure
  `TransactionFailed`, a node that does not answer `BackendError`, as from `Chain`.

`DecisionLogSender` answers the outbox as `ledger.clients.decisions.DecisionLogClient` does (prepare,
broadcast, lookup, wait, onchain_id) and reads as `ledger.reader.DecisionLogReader`."""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, NoReturn

from coincurve import PrivateKey

from ledger.abiwords import _encode_words
from ledger.errors import NONCE_TAKEN_MARKS, BackendError, NonceTaken, TransactionFailed
from ledger.reader import (
    ChainReader,
    DecisionLogReader,
    JsonRpc,
    checksum_address,
    keccak,
    quantity,
    selector,
)
from ledger.records import Decision, decision_rows
from ledger.txs import CallRequest, SignedTx, TxResult, read_before_signing, receipt_of

if TYPE_CHECKING:
    from eth_typing import ChecksumAddress

# recordDecisions costs ~21k per decision (an event of six words, the registry's and the consent
# registry's checks; benchmarks/ledger_gas.py): a bound of 40k per item spares an estimate per batch and
# keeps DECISION_BATCH_MAX items well under a 30M block.
DECISION_BATCH_GAS_BASE = 100_000
DECISION_BATCH_GAS_PER_ITEM = 40_000
DECISION_BATCH_MAX = 500

RECORD_DECISIONS = "recordDecisions(uint256,(bytes32,bytes32,uint32,bytes32,bytes32,bytes32)[])"
RECORD_DECISIONS_TYPES = ("uint256", "(bytes32,bytes32,uint32,bytes32,bytes32,bytes32)[]")
DECISION_RECORDED = "DecisionRecorded(uint256,bytes32,address,uint256,bytes32,uint32,bytes32,bytes32,bytes32)"

# as `ledger.chain`: the first polls for a receipt come often, then at most every 40 ms
RECEIPT_POLL_FIRST = 0.005
RECEIPT_POLL_MAX = 0.04
# web3's bounds of a priority fee computed from eth_feeHistory (web3._utils.fee_utils)
PRIORITY_FEE_MIN = 1_000_000_000
PRIORITY_FEE_MAX = 1_500_000_000

# the forms eth_account's Account.from_key takes from a key file (through hexbytes): 0x or 0X or no prefix,
# and the digits of 32 bytes, an odd count padded with a leading zero (63 digits: a key whose first digit
# is 0 written without it); every other command opens the home with Account.from_key, so `score` must
# take and refuse exactly what it does (tests/ledger/test_sender.py)
_KEY = re.compile(r"(?:0[xX])?([0-9a-fA-F]{63,64})")


class LocalKey:
    """A partner's signing key as `eth_account`'s LocalAccount gives what this package reads of it: its
    `address` (checksummed) and `key` (32 bytes)."""

    def __init__(self, key: bytes) -> None:
        if len(key) != 32:
            raise ValueError("a private key is 32 bytes")
        self._private = PrivateKey(key)  # ValueError for 0 or a value past the curve's order
        self.key = key
        public = self._private.public_key.format(compressed=False)[1:]
        self.address: ChecksumAddress = checksum_address(keccak(public)[-20:])

    @classmethod
    def from_text(cls, text: str) -> LocalKey:
        """A key file's text, in the forms Account.from_key takes (0x and 64 hex digits, see `_KEY`)."""
        found = _KEY.fullmatch(text.strip())
        if found is None:
            raise ValueError("not a private key (0x + 64 hex digits)")
        return cls(bytes.fromhex(found.group(1).zfill(64)))

    def sign_digest(self, digest: bytes) -> tuple[int, int, int]:
        """(y parity, r, s) of a 32-byte digest."""
        signature = self._private.sign_recoverable(digest, hasher=None)
        return signature[64], int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:64], "big")


@dataclass(frozen=True)
class Fees:
    max_priority_fee: int
    max_fee: int


def signed_eip1559(
    key: LocalKey, *, chain_id: int, nonce: int, gas: int, fees: Fees, to: str, data: bytes
) -> SignedTx:
    """A type-2 transaction calling `to` with `data` (value 0, no access list), signed by `key`."""
    fields: list[Any] = [
        chain_id,
        nonce,
        fees.max_priority_fee,
        fees.max_fee,
        gas,
        bytes.fromhex(checksum_address(to)[2:]),
        0,
        data,
        [],
    ]
    parity, r, s = key.sign_digest(keccak(b"\x02" + rlp(fields)))
    raw = b"\x02" + rlp([*fields, parity, r, s])
    return SignedTx(tx_hash="0x" + keccak(raw).hex(), raw=raw)


def rlp(item: int | bytes | Sequence[Any]) -> bytes:
    """Recursive length prefix: a non-negative integer as its minimal big-endian bytes, bytes as they
    are, a list as its items' encodings."""
    if isinstance(item, int):
        if item < 0:
            raise ValueError("RLP encodes no negative integer")
        item = item.to_bytes((item.bit_length() + 7) // 8, "big")
    if isinstance(item, bytes):
        if len(item) == 1 and item[0] < 0x80:
            return item
        return _length(len(item), 0x80) + item
    payload = b"".join(rlp(i) for i in item)
    return _length(len(payload), 0xC0) + payload


def _length(n: int, offset: int) -> bytes:
    if n < 56:
        return bytes([offset + n])
    size = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([offset + 55 + len(size)]) + size


def record_decisions_calldata(model_id: int, decisions: Sequence[Decision]) -> bytes:
    """recordDecisions' calldata, encoded as words (every field is one): what both DecisionLog clients
    send (this module's and `ledger.clients.decisions`'), so a value out of its ABI type's range is
    refused by both alike, in words, before anything is signed (web3's own encoder raised its
    MismatchedABI there, which no caller translates)."""
    arguments = _encode_words(RECORD_DECISIONS_TYPES, [model_id, decision_rows(decisions)])
    if arguments is None:
        raise BackendError("recordDecisions: a model id or a score is out of its ABI type's range")
    return selector(RECORD_DECISIONS) + arguments


def _block(answer: Any) -> dict[str, Any]:
    if not isinstance(answer, dict):
        raise BackendError(f"the node answered {str(answer)[:100]!r} where the latest block was due")
    return answer


class RawSender:
    """Simulate, sign, send and follow transactions over `JsonRpc` (see the module's docstring)."""

    def __init__(self, rpc: JsonRpc, chain_id: int, *, receipt_timeout: float = 120) -> None:
        self.rpc = rpc
        self.chain_id = chain_id
        self.receipt_timeout = receipt_timeout
        self._gas_limit: int | None = None  # the latest block's, as the last simulation saw it

    def prepare_calldata(self, to: str, data: bytes, sender: LocalKey, *, gas: int) -> SignedTx:
        """Simulated on "pending" with the gas bound capped at the block gas limit (reverts raise their
        named error here), and signed with the nonce and fees read in the same round trip. The cap comes
        from the previous simulation's limit; when the limit moved in between, the call runs again."""
        limit = self._gas_limit if self._gas_limit is not None else self._block_gas_limit()
        for _ in range(3):
            capped = min(gas, limit)
            nonce, limit, fees = self._simulate(sender.address, to, data, capped)
            self._gas_limit = limit
            if min(gas, limit) == capped:
                return signed_eip1559(
                    sender, chain_id=self.chain_id, nonce=nonce, gas=capped, fees=fees, to=to, data=data
                )
        raise BackendError(f"the block gas limit changed during each of three simulations (now {limit})")

    def _block_gas_limit(self) -> int:
        return quantity(_block(self.rpc.request("eth_getBlockByNumber", ["latest", False])).get("gasLimit"))

    def _simulate(self, sender: str, to: str, data: bytes, gas: int) -> tuple[int, int, Fees]:
        def reverted(answer: Any) -> NoReturn:
            self.rpc.answer(answer)  # raises: the named revert, or the node's refusal
            raise BackendError(f"eth_call failed: {str(answer)[:200]}")

        context = read_before_signing(
            self.rpc.batch_answers,
            lambda _, answer: self.rpc.answer(answer),
            sender,
            # where the node lacks eth_maxPriorityFeePerGas, the fee comes from eth_feeHistory as web3
            # computes it for the web3 chain client, so every command signs on such a node with the
            # same fee, `score` too
            fees=self._fee_history_priority_fee,
            call=CallRequest(sender, to, data, gas),
            reverted=reverted,
        )
        if context.base_fee is None:
            raise BackendError("the latest block has no base fee (no EIP-1559): set a fixed gas price")
        assert context.priority_fee is not None  # asked for
        fees = Fees(context.priority_fee, context.priority_fee + 2 * context.base_fee)
        return context.nonce, context.gas_limit, fees

    def _fee_history_priority_fee(self) -> int:
        """web3's `fee_history_priority_fee` (web3._utils.fee_utils): the mean of the non-zero 5th
        percentile rewards of the last 10 blocks, kept within 1 to 1.5 gwei."""
        history = self.rpc.request("eth_feeHistory", [hex(10), "pending", [5.0]])
        try:
            rewards = [quantity(block[0]) for block in history["reward"]]
        except (KeyError, TypeError, IndexError):
            raise BackendError(f"the node answered eth_feeHistory with {str(history)[:100]}") from None
        paid = [fee for fee in rewards if fee != 0]
        mean = round(sum(paid) / (len(paid) or 1))
        return min(max(mean, PRIORITY_FEE_MIN), PRIORITY_FEE_MAX)

    def broadcast(self, signed: SignedTx) -> None:
        try:
            self.rpc.request("eth_sendRawTransaction", ["0x" + signed.raw.hex()])
        except BackendError as exc:
            if isinstance(exc, NonceTaken) or not any(m in str(exc).lower() for m in NONCE_TAKEN_MARKS):
                raise
            # a raw node message ("nonce too low") is no words for a person: named (api/messages.py)
            raise NonceTaken(f"BackendError: {exc}") from None

    def lookup(self, tx_hash: str) -> TxResult | Literal["pending"] | None:
        receipt = self._receipt(tx_hash)
        if receipt is not None:
            return receipt
        if self.rpc.request("eth_getTransactionByHash", [tx_hash]) is None:
            return None
        return "pending"

    def wait(self, tx_hash: str) -> TxResult:
        deadline = time.monotonic() + self.receipt_timeout
        pause = RECEIPT_POLL_FIRST
        while True:
            found = self._receipt(tx_hash)
            if found is not None:
                return found
            if time.monotonic() > deadline:
                raise BackendError(f"transaction {tx_hash} was not mined within {self.receipt_timeout} s")
            time.sleep(pause)
            pause = min(pause * 1.5, RECEIPT_POLL_MAX)

    def _receipt(self, tx_hash: str) -> TxResult | None:
        raw = self.rpc.request("eth_getTransactionReceipt", [tx_hash])
        if raw is None:
            return None
        try:
            receipt = receipt_of(
                raw, "transactionHash", "blockNumber", "gasUsed", "logIndex", "transactionIndex"
            )
        except (KeyError, TypeError, ValueError, AttributeError):
            raise BackendError(f"the node answered a malformed receipt for {tx_hash}") from None
        if receipt.tx_hash != tx_hash.lower():
            raise BackendError(f"the node answered the receipt of {receipt.tx_hash} for {tx_hash}")
        if receipt.status != 1:
            raise TransactionFailed(f"transaction {receipt.tx_hash} failed (gas used {receipt.gas_used})")
        return TxResult(receipt.tx_hash, receipt.block_number, receipt.gas_used, receipt)


class DecisionLogSender(DecisionLogReader):
    """DecisionLog's reads (`DecisionLogReader`) and its recordDecisions through an outbox, without
    web3: what `score` logs its decisions with (`api.usecases.home_open.open_crm_to_decide`)."""

    def __init__(self, chain: ChainReader, address: str, sender: RawSender) -> None:
        super().__init__(chain, address)
        self.sender = sender

    def prepare_record_decisions(
        self, sender: LocalKey, model_id: int, decisions: Sequence[Decision]
    ) -> SignedTx:
        """As DecisionLogClient.prepare_record_decisions: signed and not sent (the outbox records the
        hash first); the same calldata, gas bound and simulation."""
        gas = DECISION_BATCH_GAS_BASE + DECISION_BATCH_GAS_PER_ITEM * len(decisions)
        return self.sender.prepare_calldata(
            self.address, record_decisions_calldata(model_id, decisions), sender, gas=gas
        )

    def broadcast(self, signed: SignedTx) -> None:
        self.sender.broadcast(signed)

    def lookup(self, tx_hash: str) -> TxResult | Literal["pending"] | None:
        return self.sender.lookup(tx_hash)

    def wait(self, tx_hash: str) -> TxResult:
        return self.sender.wait(tx_hash)

    def onchain_id(self, mined: TxResult) -> int:
        return first_decision_id(mined, self.address)


def first_decision_id(mined: TxResult, address: str) -> int:
    """The id of the first decision a mined recordDecisions logged (the rest follow in order): the first
    indexed topic of the first DecisionRecorded that the DecisionLog at `address` logged, read without
    decoding the batch's events; what both DecisionLog clients confirm an outbox's rows with. A receipt
    without one (a node that lies or breaks: a mined recordDecisions always logs) is refused in words; a
    LookupError or IndexError there was a traceback at every run, the rows in flight for ever."""
    wanted = keccak(DECISION_RECORDED.encode())
    try:
        for log in mined.receipt.iter_logs() if mined.receipt is not None else ():
            if log.address == address and len(log.topics) > 1 and log.topics[0] == wanted:
                return int.from_bytes(log.topics[1], "big")
    except (KeyError, TypeError, ValueError, AttributeError):
        raise BackendError(f"the node answered a malformed log in the receipt of {mined.tx_hash}") from None
    raise BackendError(
        f"the node's receipt of {mined.tx_hash} holds no DecisionRecorded of the DecisionLog at {address}"
    )
