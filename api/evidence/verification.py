"""Verifying interactions against the chain, one at a time or all of them.

One interaction verifies when: its payload decrypts; the decrypted document is the one its row says
(member, kind, time, external key); the HMAC commitment over it gives the stored leaf hash; and the
leaf's proof leads to the root the chain holds for its batch (checked in Python and, for a single
interaction, by the contract's own `verifyInclusion` as well).

`verify_all` and `verified_interactions` give the same outcomes as checking each row on its own
(`_check_row`), only faster: rows are read as plain tuples, in chunks; the keys of a chunk's customers
come from the key store in one query (`Vault.bulk_keys`) and are reused while the vault's rules allow
(see `CustomerKeys`); each batch's Merkle tree is built once, so a row's proof is compared with the
tree's instead of being hashed up to the root; a document whose commitment matches is parsed only if
its tail is not exactly what the row says; and the chain's roots are read in background threads while
rows are being decrypted.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from sqlmodel import Session

from api.context import Crm
from api.errors import NotFound
from api.evidence import documents
from api.evidence.documents import PAYLOAD_FIELD
from ledger.clients import BatchInfo
from ledger.errors import AnchorUnknownBatch
from ledger.merkle import MerkleTree, leaf_hash, verify_inclusion
from offchain.errors import CustomerErased, DecryptionFailed
from offchain.models import AnchorStatus, Batch
from offchain.repositories import batches as batch_rows
from offchain.repositories import erasures, interactions, partners
from offchain.repositories.interactions import InteractionRow
from offchain.vault import CustomerKeys

PROOF_HASH = 32

# Interactions per chunk of a run: one key-store query per chunk, and a bound on the memory it holds.
ROWS_PER_CHUNK = 2000
# Threads reading batch roots from a JSON-RPC node during `verify_all`.
CHAIN_READERS = 4


class Outcome(StrEnum):
    VERIFIED = "verified"
    TAMPERED = "tampered"  # the store disagrees with itself or with the chain
    UNANCHORED = "unanchored"  # not yet on chain (pending or submitted)
    ERASED = "erased"  # existing-but-erased: leaf still proven on chain, content gone with the key
    MISSING = "missing"  # the chain has a leaf the store has no row for


@dataclass(frozen=True)
class Verification:
    interaction_id: int | None
    outcome: Outcome
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.outcome in (Outcome.VERIFIED, Outcome.ERASED)


@dataclass
class VerificationReport:
    results: list[Verification] = field(default_factory=list)

    @property
    def counts(self) -> Counter[Outcome]:
        return Counter(r.outcome for r in self.results)

    @property
    def problems(self) -> list[Verification]:
        return [
            r for r in self.results if r.outcome in (Outcome.TAMPERED, Outcome.MISSING, Outcome.UNANCHORED)
        ]

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass(frozen=True)
class VerifiedInteraction:
    """An interaction and its verification outcome; `document` is the committed document, decrypted
    and parsed, of a verified interaction only (None for every other outcome)."""

    interaction_id: int
    member: bytes
    outcome: Outcome
    detail: str
    document: dict[str, Any] | None


def verify_interaction(crm: Crm, partner_name: str, interaction_id: int) -> Verification:
    """Verify one of the partner's interactions, in Python and through the contract."""
    with crm.unit_of_work() as db:
        partner = crm.partner(db, partner_name)
        row = interactions.row(db, interaction_id)
        if row is None or row.partner_id != partner.id:
            raise NotFound(f"partner {partner_name!r} has no interaction {interaction_id}")
        batch = batch_rows.get(db, row.batch_id) if row.batch_id is not None else None
    result = _check_row(crm, partner_name, row, batch, _Roots(crm))
    if result.outcome in (Outcome.VERIFIED, Outcome.ERASED) and batch is not None:
        assert batch.onchain_batch_id is not None and row.leaf_index is not None and row.proof is not None
        if not crm.coalition.anchor.verify_inclusion(
            batch.onchain_batch_id, row.leaf_index, row.leaf_hash, _split(row.proof)
        ):
            return Verification(row.id, Outcome.TAMPERED, "the contract's verifyInclusion rejects the proof")
    return result


def verify_all(crm: Crm, partner_name: str | None = None, member: bytes | None = None) -> VerificationReport:
    """Every interaction (of one partner, or of all), plus leaves the chain has and the store lacks.

    With `member`, only that member's interactions (and no search for missing leaves, which belong to
    nobody the store knows)."""
    report = VerificationReport()
    with _Run(crm) as run, crm.unit_of_work() as db:
        names = [p.name for p in partners.every(db)] if partner_name is None else [partner_name]
        for name in names:
            members = None if member is None else [member]
            for checked, _ in run.partner(db, name, members):
                report.results.append(checked)
            if member is None:
                report.results.extend(run.missing_leaves(db, name))
    return report


def verified_interactions(
    crm: Crm, partner_name: str, members: Collection[bytes] | None = None
) -> list[VerifiedInteraction]:
    """The partner's interactions (of these members, or all), each with its outcome and, where it
    verified, its committed document: what a caller that may use only verified inputs (scoring, an
    export) reads, and reports the rest of. The same checks as `verify_all`, row by row."""
    found: list[VerifiedInteraction] = []
    with _Run(crm) as run, crm.unit_of_work() as db:
        for checked, (row, document) in run.partner(db, partner_name, members):
            assert checked.interaction_id is not None
            found.append(
                VerifiedInteraction(
                    checked.interaction_id,
                    row.member_id,
                    checked.outcome,
                    checked.detail,
                    json.loads(document) if document is not None else None,
                )
            )
    return found


Checked = tuple[Verification, tuple[InteractionRow, bytes | None]]
"""An interaction's outcome, its row, and its decrypted document if it verified."""


class _Run:
    """One verification run: the chain's roots read once (in background threads when the node is
    remote), each partner's customers' keys read about once."""

    def __init__(self, crm: Crm) -> None:
        self.crm = crm
        # The chain answers in threads (one for an in-process chain, which they would only contend
        # for): the node's latency then overlaps decryption instead of adding to it, once per batch.
        workers = CHAIN_READERS if crm.coalition.remote else 1
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="verify-chain")
        self.roots = _Roots(crm, self.pool)
        self.batches: dict[str, dict[int, Batch]] = {}

    def __enter__(self) -> _Run:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)  # after an error, no reads nobody waits for

    def partner(self, db: Session, name: str, members: Collection[bytes] | None) -> Iterator[Checked]:
        partner = self.crm.partner(db, name)
        batches = self.batches[name] = batch_rows.of_partner(db, partner.id)
        if members is None:  # then every anchored batch is read (for its rows or its missing leaves)
            self.roots.prefetch(
                b.onchain_batch_id
                for b in batches.values()
                if b.status is AnchorStatus.ANCHORED and b.onchain_batch_id is not None
            )
        # Whole batches are checked when all of a partner's rows are; a few members' rows are cheaper
        # to check proof by proof than by building the trees of every batch they are in.
        trees = _BatchTrees(db) if members is None else None
        keys: dict[bytes, CustomerKeys] = {}  # the partner's customers' keys, for this run only
        for rows in interactions.rows_in_chunks(db, partner.id, members, ROWS_PER_CHUNK):
            yield from _check_rows(self.crm, name, rows, batches, self.roots, trees, keys)

    def missing_leaves(self, db: Session, name: str) -> list[Verification]:
        return _missing_leaves(db, self.batches[name].values(), self.roots)


def _check_rows(
    crm: Crm,
    partner: str,
    rows: Sequence[InteractionRow],
    batches: Mapping[int, Batch],
    roots: _Roots,
    trees: _BatchTrees | None,
    keys: dict[bytes, CustomerKeys],
) -> list[Checked]:
    """`_check_row` of each row, in order. The keys of the chunk's customers that `keys` does not hold
    fresh are read in one go and kept in `keys` for later chunks, as long as they stay fresh (no shred
    since, the vault's TTL not past: see CustomerKeys), so a customer's key is read about once a run."""
    results: list[Checked | None] = []
    readable: list[int] = []  # positions of the rows that get as far as decryption
    for row in rows:
        batch = batches.get(row.batch_id) if row.batch_id is not None else None
        early = _check_anchoring(crm, row, batch, roots, trees)
        if early is None:
            readable.append(len(results))
            results.append(None)
        else:
            results.append((early, (row, None)))
    if readable:
        wanted = {rows[i].member_id for i in readable}
        unread = [m for m in wanted if m not in keys or not keys[m].fresh]
        if unread:
            for m in unread:
                keys.pop(m, None)
            keys.update(crm.vault.bulk_keys(partner, unread))
        for i in readable:
            checked, document = _check_content(crm, partner, rows[i], keys.get(rows[i].member_id))
            results[i] = (checked, (rows[i], document))
    return [r for r in results if r is not None]


def _check_row(
    crm: Crm, partner: str, row: InteractionRow, batch: Batch | None, roots: _Roots
) -> Verification:
    """The reference check of one row: what `verify_all` must report for it."""
    return _check_anchoring(crm, row, batch, roots, None) or _check_content(crm, partner, row, None)[0]


def _check_anchoring(
    crm: Crm, row: InteractionRow, batch: Batch | None, roots: _Roots, trees: _BatchTrees | None
) -> Verification | None:
    """The outcome decided by the row and the chain alone, or None if the content must be read."""
    if batch is None or batch.status is not AnchorStatus.ANCHORED or batch.onchain_batch_id is None:
        return Verification(
            row.id, Outcome.UNANCHORED, f"status {AnchorStatus.PENDING if batch is None else batch.status}"
        )
    if row.leaf_index is None or row.proof is None or len(row.proof) % PROOF_HASH:
        return Verification(row.id, Outcome.TAMPERED, "the row has no usable leaf index or proof")
    onchain = roots.get(batch.onchain_batch_id)
    if onchain is None:
        return Verification(row.id, Outcome.TAMPERED, f"the chain has no batch {batch.onchain_batch_id}")
    if trees is None or not trees.vouches(batch, onchain, row):
        proven = verify_inclusion(
            row.leaf_hash, row.leaf_index, onchain.size, _split(row.proof), onchain.root
        )
        if not proven.ok:
            return Verification(row.id, Outcome.TAMPERED, f"the leaf is not in the anchored batch: {proven}")
    if row.payload_ciphertext is None:
        return Verification(row.id, Outcome.ERASED, "content erased; the leaf is still proven on chain")
    return None


def _check_content(
    crm: Crm, partner: str, row: InteractionRow, keys: CustomerKeys | None
) -> tuple[Verification, bytes | None]:
    """Decrypt, recompute the commitment, compare the document with the row; the outcome, and the
    document if it verified. `keys` None: the customer was not among those `bulk_keys` found, so ask
    the vault, which says why (erased or unknown)."""
    assert row.payload_ciphertext is not None
    try:
        if keys is None:
            document = crm.vault.decrypt(partner, row.member_id, PAYLOAD_FIELD, row.payload_ciphertext)
        else:
            document = keys.decrypt(PAYLOAD_FIELD, row.payload_ciphertext)
    except CustomerErased:
        return Verification(row.id, Outcome.ERASED, "the customer's key is erased"), None
    except DecryptionFailed:
        return Verification(
            row.id, Outcome.TAMPERED, "the payload does not decrypt under the customer's key"
        ), None
    commitment = crm.vault.commit(partner, row.member_id, document) if keys is None else keys.commit(document)
    if leaf_hash(commitment) != row.leaf_hash:
        unmatched = "the payload does not match its committed leaf hash"
        return Verification(row.id, Outcome.TAMPERED, unmatched), None
    if document.endswith(documents.tail(partner, row)):
        return Verification(row.id, Outcome.VERIFIED), document
    mismatch = documents.disagreement(partner, row, json.loads(document))
    if mismatch:
        return Verification(
            row.id, Outcome.TAMPERED, f"the row's {mismatch} differs from the committed one"
        ), None
    return Verification(row.id, Outcome.VERIFIED), document


class _BatchTrees:
    """Each anchored batch's Merkle tree, built once from the store's leaves, so that a row is proven by
    comparing its stored proof with the tree's audit path instead of hashing its way up to the root.

    A tree is only used when the store holds exactly the leaves 0..size-1 of the on-chain batch and its
    root is the on-chain root. Then a row whose leaf hash and proof equal the tree's at its index is
    what `verify_inclusion` accepts (the audit path of a tree leads to that tree's root). Any other row,
    and every row of a batch without such a tree, goes through `verify_inclusion`, which also gives the
    reason it fails."""

    def __init__(self, db: Session) -> None:
        self._db = db
        # batch id -> leaf index -> (leaf hash, proof bytes); None: no usable tree for that batch
        self._paths: dict[int, dict[int, tuple[bytes, bytes]] | None] = {}

    def vouches(self, batch: Batch, onchain: BatchInfo, row: InteractionRow) -> bool:
        assert batch.id is not None
        if batch.id not in self._paths:
            self._paths[batch.id] = self._build(batch.id, onchain)
        paths = self._paths[batch.id]
        if paths is None or row.leaf_index is None:
            return False
        return paths.get(row.leaf_index) == (row.leaf_hash, row.proof)

    def _build(self, batch_id: int, onchain: BatchInfo) -> dict[int, tuple[bytes, bytes]] | None:
        leaves = interactions.leaves_of_batch(self._db, batch_id)
        if sorted(leaves) != list(range(onchain.size)):
            return None
        tree = MerkleTree([leaves[i] for i in range(onchain.size)])
        if tree.root != onchain.root:
            return None
        return {i: (tree.leaf(i), b"".join(tree.proof(i))) for i in range(tree.size)}


def _missing_leaves(db: Session, batches: Iterable[Batch], roots: _Roots) -> list[Verification]:
    receipts = erasures.anchored_hashes(db)
    missing = []
    for batch in batches:
        if batch.status is not AnchorStatus.ANCHORED or batch.onchain_batch_id is None:
            continue
        onchain = roots.get(batch.onchain_batch_id)
        if onchain is None:
            continue
        if batch.id in receipts:
            # an erasure receipt's own one-leaf batch: its root is the receipt hash's leaf hash
            if onchain.root != leaf_hash(receipts[batch.id]):
                missing.append(Verification(None, Outcome.TAMPERED, f"erasure receipt of batch {batch.id}"))
            continue
        assert batch.id is not None
        stored = interactions.count_in_batch(db, batch.id)
        for _ in range(onchain.size - stored):
            missing.append(
                Verification(None, Outcome.MISSING, f"batch {batch.onchain_batch_id} has a leaf with no row")
            )
    return missing


class _Roots:
    """What the chain holds for each batch (None: no such batch), read once per run.

    With a `pool`, every read runs in it, including those nobody prefetched, so that the chain client
    is never used from two threads where the pool has one; `prefetch` queues reads before they are
    needed. A read's answer, or its error, is the same as reading on demand and comes out of `get`."""

    def __init__(self, crm: Crm, pool: Executor | None = None) -> None:
        self._crm = crm
        self._pool = pool
        self._reads: dict[int, Future[BatchInfo | None]] = {}
        self._known: dict[int, BatchInfo | None] = {}

    def prefetch(self, onchain_ids: Iterable[int]) -> None:
        if self._pool is None:
            return
        for onchain_id in onchain_ids:
            if onchain_id not in self._known and onchain_id not in self._reads:
                self._reads[onchain_id] = self._pool.submit(self._read, onchain_id)

    def get(self, onchain_id: int) -> BatchInfo | None:
        if onchain_id not in self._known:
            if self._pool is None:
                self._known[onchain_id] = self._read(onchain_id)
            else:
                self.prefetch([onchain_id])
                self._known[onchain_id] = self._reads.pop(onchain_id).result()
        return self._known[onchain_id]

    def _read(self, onchain_id: int) -> BatchInfo | None:
        try:
            return self._crm.coalition.anchor.batch(onchain_id)
        except AnchorUnknownBatch:
            return None


def _split(proof: bytes) -> list[bytes]:
    return [proof[i : i + PROOF_HASH] for i in range(0, len(proof), PROOF_HASH)]
