"""Verifying interactions against the chain, one at a time or all of them.

One interaction verifies when: its payload decrypts; the decrypted document is the one its row says
(member, kind, time, external key); the HMAC commitment over it gives the stored leaf hash; and the
leaf's proof leads to the root the chain holds for its batch (checked in Python and, for a single
interaction, by the contract's own `verifyInclusion` as well).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC
from enum import StrEnum

from sqlalchemy import func
from sqlmodel import Session, col, select

from api.usecases.context import Crm
from api.usecases.errors import NotFound
from api.usecases.interactions import PAYLOAD_FIELD
from ledger.clients import BatchInfo
from ledger.errors import AnchorUnknownBatch
from ledger.merkle import leaf_hash, verify_inclusion
from offchain.errors import CustomerErased, DecryptionFailed
from offchain.models import AnchorStatus, Batch, ErasureReceipt, Interaction, Partner

PROOF_HASH = 32


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


def verify_interaction(crm: Crm, partner_name: str, interaction_id: int) -> Verification:
    """Verify one of the partner's interactions, in Python and through the contract."""
    with crm.unit_of_work() as db:
        partner = crm.partner(db, partner_name)
        row = db.get(Interaction, interaction_id)
        if row is None or row.partner_id != partner.id:
            raise NotFound(f"partner {partner_name!r} has no interaction {interaction_id}")
        batch = db.get(Batch, row.batch_id) if row.batch_id is not None else None
    result = _check_row(crm, partner_name, row, batch, {})
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
    roots: dict[int, BatchInfo | None] = {}
    with crm.unit_of_work() as db:
        partners = [crm.partner(db, partner_name)] if partner_name else list(db.exec(select(Partner)))
        for partner in partners:
            batches = {b.id: b for b in db.exec(select(Batch).where(Batch.partner_id == partner.id))}
            query = select(Interaction).where(Interaction.partner_id == partner.id)
            if member is not None:
                query = query.where(Interaction.member_id == member)
            for row in db.exec(query.order_by(col(Interaction.id))):
                batch = batches.get(row.batch_id) if row.batch_id is not None else None
                report.results.append(_check_row(crm, partner.name, row, batch, roots))
            if member is None:
                report.results.extend(_missing_leaves(crm, db, batches.values(), roots))
    return report


def _check_row(
    crm: Crm, partner: str, row: Interaction, batch: Batch | None, roots: dict[int, BatchInfo | None]
) -> Verification:
    if batch is None or batch.status is not AnchorStatus.ANCHORED or batch.onchain_batch_id is None:
        return Verification(row.id, Outcome.UNANCHORED, f"status {row.status}")
    if row.leaf_index is None or row.proof is None or len(row.proof) % PROOF_HASH:
        return Verification(row.id, Outcome.TAMPERED, "the row has no usable leaf index or proof")
    onchain = _onchain_batch(crm, batch.onchain_batch_id, roots)
    if onchain is None:
        return Verification(row.id, Outcome.TAMPERED, f"the chain has no batch {batch.onchain_batch_id}")
    proven = verify_inclusion(row.leaf_hash, row.leaf_index, onchain.size, _split(row.proof), onchain.root)
    if not proven.ok:
        return Verification(row.id, Outcome.TAMPERED, f"the leaf is not in the anchored batch: {proven}")
    if row.payload_ciphertext is None:
        return Verification(row.id, Outcome.ERASED, "content erased; the leaf is still proven on chain")
    try:
        document = crm.vault.decrypt(partner, row.member_id, PAYLOAD_FIELD, row.payload_ciphertext)
    except CustomerErased:
        return Verification(row.id, Outcome.ERASED, "the customer's key is erased")
    except DecryptionFailed:
        return Verification(row.id, Outcome.TAMPERED, "the payload does not decrypt under the customer's key")
    if leaf_hash(crm.vault.commit(partner, row.member_id, document)) != row.leaf_hash:
        return Verification(row.id, Outcome.TAMPERED, "the payload does not match its committed leaf hash")
    mismatch = _row_disagrees(row, json.loads(document))
    if mismatch:
        return Verification(row.id, Outcome.TAMPERED, f"the row's {mismatch} differs from the committed one")
    return Verification(row.id, Outcome.VERIFIED)


def _row_disagrees(row: Interaction, document: dict[str, object]) -> str | None:
    occurred = row.occurred_at.astimezone(UTC).isoformat(timespec="microseconds")
    expected = {
        "member": "0x" + row.member_id.hex(),
        "kind": str(row.kind),
        "occurredAt": occurred,
        "externalKey": row.external_key,
    }
    for name, value in expected.items():
        if document.get(name) != value:
            return name
    return None


def _missing_leaves(
    crm: Crm, db: Session, batches: Iterable[Batch], roots: dict[int, BatchInfo | None]
) -> list[Verification]:
    receipts = {
        r.anchored_batch_id: r.receipt_hash
        for r in db.exec(select(ErasureReceipt).where(col(ErasureReceipt.anchored_batch_id).is_not(None)))
    }
    missing = []
    for batch in batches:
        if batch.status is not AnchorStatus.ANCHORED or batch.onchain_batch_id is None:
            continue
        onchain = _onchain_batch(crm, batch.onchain_batch_id, roots)
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


def _onchain_batch(crm: Crm, onchain_id: int, roots: dict[int, BatchInfo | None]) -> BatchInfo | None:
    if onchain_id not in roots:
        try:
            roots[onchain_id] = crm.coalition.anchor.batch(onchain_id)
        except AnchorUnknownBatch:
            roots[onchain_id] = None
    return roots[onchain_id]


def _split(proof: bytes) -> list[bytes]:
    return [proof[i : i + PROOF_HASH] for i in range(0, len(proof), PROOF_HASH)]
