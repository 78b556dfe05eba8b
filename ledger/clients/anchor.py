from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from eth_account.signers.local import LocalAccount
from eth_typing import ChecksumAddress

from ledger.chain import SignedTx, TxResult
from ledger.clients.base import ContractClient, as_bytes32


@dataclass(frozen=True)
class AnchoredBatch:
    batch_id: int
    block_number: int
    tx: TxResult


@dataclass(frozen=True)
class BatchInfo:
    batch_id: int
    root: bytes
    size: int
    partner: ChecksumAddress
    block_number: int


# An anchor costs 101,530 gas (benchmarks/ledger_gas.py) whatever the batch size; the bound spares a gas
# estimate per batch (eth-tester's estimator executes the call many times), and the simulation runs with it.
ANCHOR_GAS = 160_000


class AnchorClient(ContractClient):
    def anchor(self, sender: LocalAccount, root: bytes, size: int) -> AnchoredBatch:
        """Anchor one batch root: one transaction, whatever the batch size."""
        return self._anchored(self._send(sender, self.contract.functions.anchor(as_bytes32(root), size)))

    def prepare_anchor(self, sender: LocalAccount, root: bytes, size: int) -> SignedTx:
        """Sign an anchor transaction without sending it (for an outbox that records the hash first)."""
        fn = self.contract.functions.anchor(as_bytes32(root), size)
        return self.chain.prepare(fn, sender, gas=ANCHOR_GAS)

    def send_anchor(self, signed: SignedTx) -> AnchoredBatch:
        return self._anchored(self.chain.send(self.contract, signed))

    def broadcast_anchor(self, signed: SignedTx) -> None:
        """Send a prepared anchor without waiting (`lookup_anchor` / `wait_anchor` learn the batch id)."""
        self.chain.broadcast(signed)

    def lookup_anchor(self, tx_hash: str) -> AnchoredBatch | Literal["pending"] | None:
        """The batch a previously prepared anchor transaction created; "pending" while the node holds it
        unmined; None if the node never saw it."""
        found = self.chain.lookup(self.contract, tx_hash)
        return found if found is None or found == "pending" else self._anchored(found)

    def wait_anchor(self, tx_hash: str) -> AnchoredBatch:
        """Wait for an anchor transaction the node holds unmined."""
        return self._anchored(self.chain.wait(self.contract, tx_hash))

    def onchain_id(self, mined: TxResult) -> int:
        return self._anchored(mined).batch_id

    @staticmethod
    def _anchored(tx: TxResult) -> AnchoredBatch:
        return AnchoredBatch(tx.event("BatchAnchored")["args"]["batchId"], tx.block_number, tx)

    def batch(self, batch_id: int) -> BatchInfo:
        root, size, partner, block_number = self._call(self.contract.functions.batch(batch_id))
        return BatchInfo(batch_id, root, size, partner, block_number)

    def batch_count(self) -> int:
        return int(self._call(self.contract.functions.batchCount()))

    def verify_inclusion(
        self, batch_id: int, leaf_index: int, leaf_hash: bytes, proof: Sequence[bytes]
    ) -> bool:
        """The contract's own answer (RFC 9162 verification on chain, sha256 precompile)."""
        if not 0 <= leaf_index < 2**64:
            return False  # not representable as uint64, so not a leaf of any anchored batch
        fn = self.contract.functions.verifyInclusion(batch_id, leaf_index, as_bytes32(leaf_hash), list(proof))
        return bool(self._call(fn))

    def verify_against(
        self, root: bytes, size: int, leaf_index: int, leaf_hash: bytes, proof: Sequence[bytes]
    ) -> bool:
        if not (0 <= leaf_index < 2**64 and 0 <= size < 2**64):
            return False
        fn = self.contract.functions.verifyAgainst(
            as_bytes32(root), size, leaf_index, as_bytes32(leaf_hash), list(proof)
        )
        return bool(self._call(fn))
