"""Verifying interactions against the chain, one at a time or all of them.

One interaction verifies when: its payload decrypts; the decrypted document is the one its row says
(member, kind, time, external key); the HMAC commitment over it gives the stored leaf hash; and the
leaf's proof leads to the root the chain holds for its batch (checked in Python and, for a single
interaction, by the contract's own `verifyInclusion` as well).

`verify_all` gives the same outcomes as checking each row on its own (`_check_row`), only faster: rows
are read as plain tuples, in chunks; the keys of a chunk's customers come from the key store in one
query (`Vault.bulk_keys`) and are reused while the vault's rules allow (see `CustomerKeys`); each
batch's Merkle tree is built once, so a row's proof is compared with the tree's instead of being hashed
up to the root; a document whose commitment matches is parsed only if its tail is not exactly what the
row says; and the chain's roots are read in background threads while rows are being decrypted.
"""

from __future__ import annotations

import functools
import json
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import NamedTuple

from sqlalchemy import Select, func
from sqlalchemy import select as core_select
from sqlmodel import Session, col, select

from api.usecases.context import Crm
from api.usecases.errors import NotFound
from api.usecases.interactions import DOCUMENT_VERSION, PAYLOAD_FIELD
from ledger.clients import BatchInfo
from ledger.errors import AnchorUnknownBatch
from ledger.merkle import MerkleTree, leaf_hash, verify_inclusion
from offchain.errors import CustomerErased, DecryptionFailed
from offchain.models import AnchorStatus, Batch, ErasureReceipt, Interaction, InteractionKind, Partner
from offchain.models import metadata as store_metadata
from offchain.vault import CustomerKeys

PROOF_HASH = 32

# Rows per chunk of `verify_all`: one key-store query per chunk, and a bound on the memory it holds.
CHUNK_ROWS = 2000
# Ids per `IN (...)` query: under SQLite's bound-parameter limit (999 in older builds).
_IDS_PER_QUERY = 500
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


class _Row(NamedTuple):
    """The columns of an interaction that verification reads, in `_ROW_COLUMNS` order. A plain tuple
    from a Core select: building ORM objects cost more than decrypting and hashing the rows."""

    id: int
    partner_id: int
    member_id: bytes
    kind: InteractionKind
    external_key: str | None
    occurred_at: datetime
    payload_ciphertext: bytes | None
    leaf_hash: bytes
    batch_id: int | None
    leaf_index: int | None
    proof: bytes | None


_INTERACTIONS = store_metadata.tables[Interaction.__tablename__]
_ROW_COLUMNS = [_INTERACTIONS.c[name] for name in _Row._fields]


def _rows() -> Select[tuple[object, ...]]:
    return core_select(*_ROW_COLUMNS)


def verify_interaction(crm: Crm, partner_name: str, interaction_id: int) -> Verification:
    """Verify one of the partner's interactions, in Python and through the contract."""
    with crm.unit_of_work() as db:
        partner = crm.partner(db, partner_name)
        found = db.connection().execute(_rows().where(_INTERACTIONS.c.id == interaction_id)).first()
        row = None if found is None else _Row._make(found)
        if row is None or row.partner_id != partner.id:
            raise NotFound(f"partner {partner_name!r} has no interaction {interaction_id}")
        batch = db.get(Batch, row.batch_id) if row.batch_id is not None else None
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
    # The chain answers in threads (one for an in-process chain, which they would only contend for):
    # the node's latency then overlaps decryption instead of adding to it, once per anchored batch.
    workers = CHAIN_READERS if crm.coalition.chain.backend.rpc_url is not None else 1
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="verify-chain")
    try:
        with crm.unit_of_work() as db:
            _verify_partners(crm, db, report, _Roots(crm, pool), partner_name, member)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)  # after an error, no reads nobody waits for
    return report


def _verify_partners(
    crm: Crm,
    db: Session,
    report: VerificationReport,
    roots: _Roots,
    partner_name: str | None,
    member: bytes | None,
) -> None:
    partners = [crm.partner(db, partner_name)] if partner_name else list(db.exec(select(Partner)))
    for partner in partners:
        batches = {b.id: b for b in db.exec(select(Batch).where(Batch.partner_id == partner.id))}
        if member is None:  # then every anchored batch is read (for its rows or its missing leaves)
            roots.prefetch(
                b.onchain_batch_id
                for b in sorted(batches.values(), key=lambda b: b.id or 0)
                if b.status is AnchorStatus.ANCHORED and b.onchain_batch_id is not None
            )
        # Whole batches are checked when all of a partner's rows are; one member's few rows are
        # cheaper to check proof by proof than by building the trees of every batch they are in.
        trees = _BatchTrees(db) if member is None else None
        keys: dict[bytes, CustomerKeys] = {}  # the partner's customers' keys, for this run only
        for rows in _chunks_of_rows(db, crm.pid(partner), member):
            report.results.extend(_check_rows(crm, partner.name, rows, batches, roots, trees, keys))
        if member is None:
            report.results.extend(_missing_leaves(crm, db, batches.values(), roots))


def _chunks_of_rows(db: Session, partner_id: int, member: bytes | None) -> Iterator[list[_Row]]:
    """The partner's interactions (only `member`'s, if given) in id order, `CHUNK_ROWS` at a time.

    First their ids, through an index, then the rows by primary key: one query for the rows, ordered
    by id, made SQLite copy every row, payloads and all, into a temporary B-tree to sort them before it
    returned the first one."""
    conn = db.connection()
    columns = _INTERACTIONS.c
    query = core_select(columns.id).where(columns.partner_id == partner_id)
    if member is not None:
        query = query.where(columns.member_id == member)
    ids = conn.execute(query.order_by(columns.id)).scalars().all()
    for start in range(0, len(ids), CHUNK_ROWS):
        chunk = ids[start : start + CHUNK_ROWS]
        rows: list[_Row] = []
        for at in range(0, len(chunk), _IDS_PER_QUERY):
            wanted = columns.id.in_(chunk[at : at + _IDS_PER_QUERY])
            found = conn.execute(_rows().where(wanted).order_by(columns.id)).all()  # fetchall, not fetchone
            rows.extend(_Row._make(row) for row in found)
        # Where the two reads are not one snapshot (PostgreSQL's read committed), a row may have changed
        # in between: keep only what the first query asked for.
        yield [r for r in rows if r.partner_id == partner_id and (member is None or r.member_id == member)]


def _check_rows(
    crm: Crm,
    partner: str,
    rows: Sequence[_Row],
    batches: Mapping[int | None, Batch],
    roots: _Roots,
    trees: _BatchTrees | None,
    keys: dict[bytes, CustomerKeys],
) -> list[Verification]:
    """`_check_row` of each row, in order. The keys of the chunk's customers that `keys` does not hold
    fresh are read in one go and kept in `keys` for later chunks, as long as they stay fresh (no shred
    since, the vault's TTL not past: see CustomerKeys), so a customer's key is read about once a run."""
    results: list[Verification | None] = []
    readable: list[int] = []  # positions of the rows that get as far as decryption
    for row in rows:
        batch = batches.get(row.batch_id) if row.batch_id is not None else None
        early = _check_anchoring(crm, row, batch, roots, trees)
        if early is None:
            readable.append(len(results))
        results.append(early)
    if readable:
        wanted = {rows[i].member_id for i in readable}
        unread = [m for m in wanted if m not in keys or not keys[m].fresh]
        if unread:
            for m in unread:
                keys.pop(m, None)
            keys.update(crm.vault.bulk_keys(partner, unread))
        for i in readable:
            results[i] = _check_content(crm, partner, rows[i], keys.get(rows[i].member_id))
    return [r for r in results if r is not None]


def _check_row(crm: Crm, partner: str, row: _Row, batch: Batch | None, roots: _Roots) -> Verification:
    """The reference check of one row: what `verify_all` must report for it."""
    return _check_anchoring(crm, row, batch, roots, None) or _check_content(crm, partner, row, None)


def _check_anchoring(
    crm: Crm, row: _Row, batch: Batch | None, roots: _Roots, trees: _BatchTrees | None
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


def _check_content(crm: Crm, partner: str, row: _Row, keys: CustomerKeys | None) -> Verification:
    """Decrypt, recompute the commitment, compare the document with the row. `keys` None: the customer
    was not among those `bulk_keys` found, so ask the vault, which says why (erased or unknown)."""
    assert row.payload_ciphertext is not None
    try:
        if keys is None:
            document = crm.vault.decrypt(partner, row.member_id, PAYLOAD_FIELD, row.payload_ciphertext)
        else:
            document = keys.decrypt(PAYLOAD_FIELD, row.payload_ciphertext)
    except CustomerErased:
        return Verification(row.id, Outcome.ERASED, "the customer's key is erased")
    except DecryptionFailed:
        return Verification(row.id, Outcome.TAMPERED, "the payload does not decrypt under the customer's key")
    commitment = crm.vault.commit(partner, row.member_id, document) if keys is None else keys.commit(document)
    if leaf_hash(commitment) != row.leaf_hash:
        return Verification(row.id, Outcome.TAMPERED, "the payload does not match its committed leaf hash")
    if document.endswith(_document_tail(partner, row)):
        return Verification(row.id, Outcome.VERIFIED)
    mismatch = _row_disagrees(row, json.loads(document))
    if mismatch:
        return Verification(row.id, Outcome.TAMPERED, f"the row's {mismatch} differs from the committed one")
    return Verification(row.id, Outcome.VERIFIED)


def _expected(row: _Row) -> dict[str, str | None]:
    """The document's fields that the row repeats, as the document holds them."""
    return {
        "member": "0x" + row.member_id.hex(),
        "kind": str(row.kind),
        "occurredAt": row.occurred_at.astimezone(UTC).isoformat(timespec="microseconds"),
        "externalKey": row.external_key,
    }


def _row_disagrees(row: _Row, document: dict[str, object]) -> str | None:
    for name, value in _expected(row).items():
        if document.get(name) != value:
            return name
    return None


def _document_tail(partner: str, row: _Row) -> bytes:
    """How the canonical document of `row` ends: every top-level member after "data" (RFC 8785 sorts
    the keys, and "data" comes first), with the values the row says.

    If an authenticated document (it decrypted, and its HMAC is the leaf hash) ends with these bytes,
    parsing it would find exactly these values: the tail starts with a comma followed by a quote and a
    letter, which cannot be inside a JSON string, so it is the document's own top-level members, the
    last ones (which win over any duplicate). So `_row_disagrees` would find nothing. When the tail
    differs in any way, even just in how a string is escaped, the document is parsed after all; this
    only decides how fast an agreeing row is found to agree.

    The kind (an enum value), the member (hex) and the ISO time never hold a character JSON escapes,
    so only the external key and the partner go through the encoder."""
    occurred = row.occurred_at.astimezone(UTC).isoformat(timespec="microseconds")
    external = "null" if row.external_key is None else json.dumps(row.external_key, ensure_ascii=False)
    return (
        f',"externalKey":{external},"kind":"{row.kind.value}","member":"0x{row.member_id.hex()}"'
        f',"occurredAt":"{occurred}","partner":{_json_string(partner)},"v":{DOCUMENT_VERSION}}}'
    ).encode()


@functools.cache
def _json_string(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)


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

    def vouches(self, batch: Batch, onchain: BatchInfo, row: _Row) -> bool:
        assert batch.id is not None
        if batch.id not in self._paths:
            self._paths[batch.id] = self._build(batch.id, onchain)
        paths = self._paths[batch.id]
        if paths is None or row.leaf_index is None:
            return False
        return paths.get(row.leaf_index) == (row.leaf_hash, row.proof)

    def _build(self, batch_id: int, onchain: BatchInfo) -> dict[int, tuple[bytes, bytes]] | None:
        query = core_select(_INTERACTIONS.c.leaf_index, _INTERACTIONS.c.leaf_hash).where(
            _INTERACTIONS.c.batch_id == batch_id
        )
        leaves: dict[int, bytes] = {index: leaf for index, leaf in self._db.connection().execute(query).all()}
        if sorted(leaves) != list(range(onchain.size)):
            return None
        tree = MerkleTree([bytes(leaves[i]) for i in range(onchain.size)])
        if tree.root != onchain.root:
            return None
        return {i: (tree.leaf(i), b"".join(tree.proof(i))) for i in range(tree.size)}


def _missing_leaves(crm: Crm, db: Session, batches: Iterable[Batch], roots: _Roots) -> list[Verification]:
    receipts = {
        r.anchored_batch_id: r.receipt_hash
        for r in db.exec(select(ErasureReceipt).where(col(ErasureReceipt.anchored_batch_id).is_not(None)))
    }
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
        stored = db.exec(select(func.count()).where(Interaction.batch_id == batch.id)).one()
        for _ in range(onchain.size - int(stored)):
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
