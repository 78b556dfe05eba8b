from __future__ import annotations

from typing import Any, Literal

from eth_account.signers.local import LocalAccount
from eth_typing import ChecksumAddress
from web3.contract import Contract
from web3.contract.contract import ContractFunction
from web3.types import BlockIdentifier

from ledger.chain import Chain, SignedTx, TxResult
from ledger.records import ZERO32 as ZERO32  # where the clients and their callers took it from
from ledger.records import as_bytes32 as as_bytes32


class ContractClient:
    """What every client shares: its contract, and sending/calling through the chain."""

    # Whether an outbox's lookups of this client's transactions read their receipts' logs. False where
    # `onchain_id` reads none: the chain then tells a mined transaction's status and block from block
    # headers where it can (`Chain.lookup`), without the ~1,100 logs of an earnBatch's receipt.
    receipt_logs = True

    def __init__(self, chain: Chain, contract: Contract) -> None:
        self.chain = chain
        self.contract = contract

    @property
    def address(self) -> ChecksumAddress:
        return self.contract.address

    # --- what an outbox needs: send a transaction prepared earlier, and learn its fate later ---

    def broadcast(self, signed: SignedTx) -> None:
        """Send a prepared transaction without waiting for it."""
        self.chain.broadcast(signed)

    def lookup(self, tx_hash: str) -> TxResult | Literal["pending"] | None:
        """What became of a transaction sent earlier: mined (its result), "pending" while the node
        holds it, None if the node never saw it."""
        return self.chain.lookup(self.contract, tx_hash, logs=self.receipt_logs)

    def wait(self, tx_hash: str) -> TxResult:
        """Wait for a transaction the node holds until it is mined."""
        return self.chain.wait(self.contract, tx_hash, logs=self.receipt_logs)

    # A node packs a block by its transactions' gas limits, and each batch (enrolBatch, recordBatch,
    # earnBatch) fills a block of its own: fewer, fuller ones are what keeps a large import's block count,
    # and anvil's time, down. 29M under a 30M block (anvil 1.7's default, py-evm's), 59M under the
    # devnet's 60M.
    def batch_gas_budget(self) -> int:
        """The most gas one batch's bound may reach on this node: its block gas limit less
        BATCH_GAS_MARGIN (the limit the last simulation saw: a caller reads it once per run)."""
        return self.chain.batch_gas_budget()

    def onchain_id(self, mined: TxResult) -> int | None:
        """What the contract numbered the record a mined transaction created, where it numbers them."""
        return None

    def _send(self, sender: LocalAccount, fn: ContractFunction) -> TxResult:
        return self.chain.transact(self.contract, fn, sender)

    def _call(self, fn: ContractFunction, block: BlockIdentifier = "latest") -> Any:
        return self.chain.call(fn, block)
