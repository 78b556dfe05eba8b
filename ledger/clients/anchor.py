from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from eth_account.signers.local import LocalAccount
from eth_typing import ChecksumAddress
from eth_utils import event_abi_to_log_topic, to_checksum_address
from web3.contract import Contract

from ledger.chain import Chain, SignedTx, TxResult
from ledger.clients.base import ContractClient, as_bytes32
from ledger.reader import GENESIS_TAG as GENESIS_TAG  # one tag: ledger.reader computes the leaf too
from ledger.records import BatchInfo as BatchInfo


@dataclass(frozen=True)
class AnchoredBatch:
    batch_id: int
    block_number: int
    tx: TxResult


@dataclass(frozen=True)
class Head:
    """A partner's latest tree head and how many heads it anchored; before its first, its log of the
    genesis leaf alone (size 1, count 0)."""

    size: int
    root: bytes
    count: int


@dataclass(frozen=True)
class AnchorEvent:
    """One `BatchAnchored` event, as the chain logged it: the head's batch id, partner, root, size and
    the size of the partner's head before it."""

    batch_id: int
    partner: ChecksumAddress
    root: bytes
    size: int
    previous_size: int
    block_number: int
    tx_hash: str = ""


# An anchor costs ~227k-242k gas for a partner's first head (its consistency proof from the genesis
# leaf: 10-20 hashes) and ~176k-181k for a head after it, the proof's sha256 calls included, at logs of
# 10^3-10^6 leaves (benchmarks/log_gas.py); the bound leaves room for longer proofs and spares a gas
# estimate per batch (eth-tester's estimator executes the call many times).
ANCHOR_GAS = 400_000
HEADS_PAGE = 1000  # InteractionAnchor.headsOf's page
MAX_HEADS_PER_CALL = 32  # InteractionAnchor.MAX_HEADS_PER_CALL: heads one anchorMany takes
# The most leaves one head may add (InteractionAnchor.MAX_GROWTH): checked here too, before signing.
MAX_GROWTH = 1 << 20


def genesis_leaf(chain_id: int, anchor_address: str, partner: str) -> bytes:
    """Leaf 0 of `partner`'s log at the InteractionAnchor `anchor_address` on chain `chain_id`, as the
    contract's `genesisLeaf` computes it: what binds every root of the log to its partner."""
    data = (
        GENESIS_TAG
        + chain_id.to_bytes(32, "big")
        + bytes.fromhex(to_checksum_address(anchor_address)[2:])
        + bytes.fromhex(to_checksum_address(partner)[2:])
    )
    return hashlib.sha256(b"\x00" + data).digest()


class AnchorClient(ContractClient):
    def __init__(self, chain: Chain, contract: Contract) -> None:
        super().__init__(chain, contract)
        # partner -> its log size at the head of the anchor receipt decoded last (`size_seen`)
        self._sizes_seen: dict[ChecksumAddress, int] = {}

    def genesis_leaf(self, partner: str) -> bytes:
        """Leaf 0 of `partner`'s log here (computed as the contract does; no call)."""
        return genesis_leaf(self.chain.chain_id, self.address, partner)

    def anchor(
        self, sender: LocalAccount, root: bytes, size: int, consistency: Sequence[bytes] = ()
    ) -> AnchoredBatch:
        """Anchor the sender's new tree head (`size` leaves, `root`), `consistency` proving that it
        extends the previous one (for a first head: the log of the genesis leaf alone, size 1): one
        transaction, whatever the batch size."""
        return self.send_anchor(self.prepare_anchor(sender, root, size, consistency))

    def prepare_anchor(
        self, sender: LocalAccount, root: bytes, size: int, consistency: Sequence[bytes] = ()
    ) -> SignedTx:
        """Sign an anchor transaction without sending it (for an outbox that records the hash first).
        The call is simulated on the pending state: the previous head must be sent by then."""
        fn = self.contract.functions.anchor(as_bytes32(root), size, [as_bytes32(c) for c in consistency])
        return self.chain.prepare(fn, sender, gas=ANCHOR_GAS)

    def prepare_anchor_many(
        self, sender: LocalAccount, heads: Sequence[tuple[bytes, int, Sequence[bytes]]]
    ) -> SignedTx:
        """Sign one transaction anchoring several of the sender's heads in order ((root, size,
        consistency from the head before), the first from the chain's current head): `anchorMany`, each
        head checked as `anchor` checks it, all or none. One head is sent as `anchor`."""
        if len(heads) == 1:
            ((root, size, consistency),) = heads
            return self.prepare_anchor(sender, root, size, consistency)
        if not 1 <= len(heads) <= MAX_HEADS_PER_CALL:
            raise ValueError(f"1 to {MAX_HEADS_PER_CALL} heads per transaction, not {len(heads)}")
        fn = self.contract.functions.anchorMany(
            [as_bytes32(root) for root, _, _ in heads],
            [size for _, size, _ in heads],
            [[as_bytes32(c) for c in consistency] for _, _, consistency in heads],
        )
        return self.chain.prepare(fn, sender, gas=ANCHOR_GAS * len(heads))

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

    def size_seen(self, partner: str) -> int | None:
        """The partner's log size at the head of the anchor receipt this client decoded last (looked up,
        waited for or sent here), or None: what the chain's head was when that block was mined, known
        without asking the node. Only a hint: a head anchored since by anyone else is not in it (nor is
        a chain reset), and an older receipt decoded later makes it smaller."""
        return self._sizes_seen.get(to_checksum_address(partner))

    def _anchored(self, tx: TxResult) -> AnchoredBatch:
        """The (first) batch a transaction anchored: `anchorMany`'s heads have consecutive ids."""
        found = tx.events_named("BatchAnchored")
        if not found:
            raise LookupError("expected a BatchAnchored event, found none")
        last = found[-1]["args"]
        self._sizes_seen[to_checksum_address(last["partner"])] = int(last["size"])
        return AnchoredBatch(found[0]["args"]["batchId"], tx.block_number, tx)

    def batch(self, batch_id: int) -> BatchInfo:
        root, size, partner, block_number = self._call(self.contract.functions.batch(batch_id))
        return BatchInfo(batch_id, root, size, partner, block_number)

    def batch_count(self) -> int:
        return int(self._call(self.contract.functions.batchCount()))

    def head(self, partner: str) -> Head:
        size, root, count = self._call(self.contract.functions.head(to_checksum_address(partner)))
        return Head(int(size), bytes(root), int(count))

    def heads(self, partner: str) -> list[BatchInfo]:
        """Every head the partner anchored, oldest first (1,000 per call)."""
        address = to_checksum_address(partner)
        found: list[BatchInfo] = []
        while True:
            ids, roots, sizes, blocks = self._call(self.contract.functions.headsOf(address, len(found)))
            found += [
                BatchInfo(int(i), bytes(r), int(s), address, int(b))
                for i, r, s, b in zip(ids, roots, sizes, blocks, strict=True)
            ]
            if len(ids) < HEADS_PAGE:
                return found

    def anchored_events(
        self, partner: str | None = None, from_block: int = 0, to_block: int | str = "latest"
    ) -> list[AnchorEvent]:
        """Every `BatchAnchored` event (of `partner`, or of every partner; in blocks `from_block` to
        `to_block`), oldest first: what the chain logged, read independently of its storage (one
        eth_getLogs, decoded here: the fields are fixed-size words)."""
        event = self.contract.events.BatchAnchored
        topics: list[str | None] = ["0x" + bytes(event_abi_to_log_topic(event().abi)).hex()]
        if partner is not None:
            topics += [None, "0x" + bytes(12).hex() + to_checksum_address(partner)[2:].lower()]
        logs = self.chain.raw_logs(
            {"address": self.contract.address, "fromBlock": from_block, "toBlock": to_block, "topics": topics}
        )
        return [
            AnchorEvent(
                int.from_bytes(log.topics[1], "big"),
                to_checksum_address(log.topics[2][12:]),
                log.data[0:32],
                int.from_bytes(log.data[32:64], "big"),
                int.from_bytes(log.data[64:96], "big"),
                log.block_number,
                "0x" + log.tx_hash.hex(),
            )
            for log in logs
        ]

    def anchored_call(self, tx_hash: str, root: bytes) -> tuple[bytes, int, list[bytes]] | None:
        """The (root, size, consistency proof) an anchor transaction submitted for the head `root`, read
        from its calldata: the proof the contract checked, which a monitor re-checks against the head it
        saw before. An `anchorMany` holds several heads, each with its proof from the one before it (a
        root is anchored once, so it names its head); None if the transaction submitted no such head."""
        tx = self.chain.w3.eth.get_transaction(tx_hash)  # type: ignore[arg-type]
        try:
            function, args = self.contract.decode_function_input(tx["input"])
        except ValueError:
            return None  # not a call of this contract's functions
        if function.fn_name == "anchor":
            heads = [(args["root"], args["size"], args["consistency"])]
        elif function.fn_name == "anchorMany":
            heads = list(zip(args["roots"], args["sizes"], args["consistencies"], strict=True))
        else:
            return None
        for found, size, consistency in heads:
            if bytes(found) == root:
                return bytes(found), int(size), [bytes(c) for c in consistency]
        return None

    def partners(self) -> list[ChecksumAddress]:
        """Every address that ever anchored a head."""
        return [to_checksum_address(a) for a in self._call(self.contract.functions.partners())]

    def batch_of_root(self, root: bytes) -> int | None:
        """The batch id of the head that anchored `root`, if any did."""
        anchored, batch_id = self._call(self.contract.functions.batchOfRoot(as_bytes32(root)))
        return int(batch_id) if anchored else None

    def verify_consistency(
        self, old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
    ) -> bool:
        """The contract's own answer to an RFC 9162 consistency proof (sha256 precompile)."""
        if not (0 <= old_size < 2**64 and 0 <= new_size < 2**64):
            return False
        fn = self.contract.functions.verifyConsistency(
            old_size, new_size, as_bytes32(old_root), as_bytes32(new_root), [as_bytes32(p) for p in proof]
        )
        return bool(self._call(fn))

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
