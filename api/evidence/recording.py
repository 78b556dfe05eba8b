"""Recording interactions: sealed under the customer's key, committed to by a keyed hash.

commitment = HMAC-SHA-256(key derived from the customer's data key, document); leaf = RFC 6962 leaf
hash of the commitment. Without the data key nobody can test a guess against a leaf, so once the key is
erased the on-chain roots say nothing about the person. The document is `documents.interaction_document`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from api.context import Crm
from api.errors import CustomerIsErased, InvalidInput, NotFound
from api.evidence.anchoring import log_start, new_batch
from api.evidence.documents import PAYLOAD_FIELD, interaction_document, interaction_kind
from ledger.merkle import leaf_hash
from offchain.canonical import Canonical
from offchain.errors import VaultError
from offchain.models import CustomerStatus, InteractionKind
from offchain.repositories import customers, interactions


@dataclass(frozen=True)
class NewInteraction:
    member: bytes
    kind: InteractionKind | str
    data: dict[str, Any] | Canonical  # Canonical: serialized ahead (imports do it in their reader process)
    occurred_at: datetime | None = None
    external_key: str | None = None  # idempotency key from the partner's system (e.g. invoice number)


@dataclass
class RecordResult:
    recorded: list[int] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)  # external keys already recorded
    batches: list[int] = field(default_factory=list)  # pending anchoring batches made (`batch=True`)


def record_interactions(
    crm: Crm,
    partner_name: str,
    items: Sequence[NewInteraction],
    *,
    batch: bool = False,
    batch_leaves: int | None = None,
    db: Session | None = None,
) -> RecordResult:
    """Record many interactions of one partner in one transaction, with one query for the customers and
    one per few hundred external keys rather than one per interaction; all are validated before
    anything is written.

    Every member must be the partner's and not erased (NotFound / CustomerIsErased otherwise, and nothing
    is written). Re-recording an external key the partner already used is not an error: it is reported as
    a duplicate and skipped, which makes imports idempotent.

    With `batch`, the recorded interactions also go into pending anchoring batches (of at most
    `batch_leaves`, by default the settings' `batch_max_leaves`, in this order) in the same transaction
    (`result.batches`), ready for `anchoring.submit`: an import thereby writes each row once, instead
    of again when it is batched.

    With `db`, the rows are written in the caller's transaction (a change recorded with its leaf)."""
    result = RecordResult()
    if not items:
        return result
    now = datetime.now(UTC)
    with _session(crm, db) as db:
        partner = crm.partner(db, partner_name)
        keys = [i.external_key for i in items if i.external_key is not None]
        if len(keys) != len(set(keys)):
            raise InvalidInput("the same external key appears twice in one request")
        seen = interactions.existing_keys(db, partner.id, keys)
        statuses = customers.statuses(
            db, {i.member for i in items if i.external_key not in seen}, partner_id=partner.id
        )
        customer_keys = crm.vault.customer_keys(partner_name, statuses)
        rows: list[dict[str, Any]] = []
        for item in items:
            if item.external_key in seen:
                result.duplicates.append(item.external_key)
                continue
            status = statuses.get(item.member)
            if status is None:
                raise NotFound(f"partner {partner_name!r} has no member 0x{item.member.hex()}")
            if status is CustomerStatus.ERASED:
                raise CustomerIsErased(f"member 0x{item.member.hex()} was erased")
            occurred_at = item.occurred_at or now
            if occurred_at.tzinfo is None:
                raise InvalidInput("occurred_at needs a time zone")
            kind = interaction_kind(item.kind)
            document = interaction_document(
                partner_name, item.member, kind, item.data, occurred_at, item.external_key
            )
            customer = customer_keys.get(item.member)
            if customer is None:  # no key: the vault's own calls raise why (erased meanwhile, unknown)
                payload = crm.vault.encrypt(partner_name, item.member, PAYLOAD_FIELD, document)
                leaf = leaf_hash(crm.vault.commit(partner_name, item.member, document))
            else:
                payload = customer.encrypt(PAYLOAD_FIELD, document)
                leaf = leaf_hash(customer.commit(document))
            # Plain rows for one executemany INSERT: building ORM objects cost more than all the
            # cryptography here. So every column the model would default is given explicitly.
            rows.append(
                {
                    "partner_id": partner.id,
                    "member_id": item.member,
                    "kind": kind,
                    "external_key": item.external_key,
                    "occurred_at": occurred_at,
                    "payload_ciphertext": payload,
                    "leaf_hash": leaf,
                    "batch_id": None,
                    "leaf_index": None,
                    "proof": None,
                    "created_at": now,
                }
            )
        if batch:
            size = batch_leaves or crm.settings.batch_max_leaves
            genesis = log_start(crm, partner.address)
            for start in range(0, len(rows), size):
                part = rows[start : start + size]
                batch_id, _, placed = new_batch(db, partner.id, [row["leaf_hash"] for row in part], genesis)
                for row, (index, proof) in zip(part, placed, strict=True):
                    row.update(batch_id=batch_id, leaf_index=index, proof=proof)
                result.batches.append(batch_id)
        if rows:
            try:
                result.recorded = interactions.insert_many(db, rows)
            except IntegrityError as exc:  # a concurrent import recorded one of these keys first
                raise InvalidInput(
                    f"an interaction with one of these external keys exists: {exc.orig}"
                ) from exc
    return result


@contextmanager
def _session(crm: Crm, db: Session | None) -> Iterator[Session]:
    """The caller's transaction, or one of our own."""
    if db is not None:
        yield db
    else:
        with crm.unit_of_work() as own:
            yield own


def record_interaction(crm: Crm, partner_name: str, item: NewInteraction) -> int | None:
    """Record one interaction; its id, or None if its external key was already recorded."""
    result = record_interactions(crm, partner_name, [item])
    return result.recorded[0] if result.recorded else None


def recorded_document(crm: Crm, partner_name: str, external_key: str) -> dict[str, Any] | None:
    """The committed document the partner recorded under `external_key`, decrypted; None if there is no
    such interaction, or its content is gone with an erasure."""
    with crm.unit_of_work() as db:
        partner = crm.partner(db, partner_name)
        row = interactions.by_external_key(db, partner.id, external_key)
    if row is None or row.payload_ciphertext is None:
        return None
    try:
        document = crm.vault.decrypt(partner_name, row.member_id, PAYLOAD_FIELD, row.payload_ciphertext)
    except VaultError:
        return None
    parsed: dict[str, Any] = json.loads(document)
    return parsed


def stored_documents(crm: Crm, partner_name: str, member: bytes) -> dict[int, dict[str, Any]]:
    """Every document the store holds for one of the partner's customers, decrypted, by interaction id,
    whatever its verification says (what an access request must return); erased content is absent."""
    with crm.unit_of_work() as db:
        partner = crm.partner(db, partner_name)
        rows = interactions.of_member(db, partner.id, member)
    found: dict[int, dict[str, Any]] = {}
    for row in rows:
        if row.payload_ciphertext is None:
            continue
        try:
            document = crm.vault.decrypt(partner_name, member, PAYLOAD_FIELD, row.payload_ciphertext)
        except VaultError:
            continue  # the key is gone with an erasure
        found[row.id] = json.loads(document)
    return found
