"""Recording customer interactions: sealed under the customer's key, committed to by a keyed hash.

The committed document is the RFC 8785 canonical JSON of the interaction (who, what, when, the data).
commitment = HMAC-SHA-256(key derived from the customer's data key, document); leaf = RFC 6962 leaf
hash of the commitment. Without the data key nobody can test a guess against a leaf, so once the key is
erased the on-chain roots say nothing about the person.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, insert, text
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from api.usecases.anchoring import new_batch
from api.usecases.context import Crm
from api.usecases.errors import CustomerIsErased, InvalidInput, NotFound
from ledger.merkle import leaf_hash
from offchain.canonical import Canonical, CanonicalizationError, canonical_object
from offchain.db import insert_rows
from offchain.models import Customer, CustomerStatus, Interaction, InteractionKind

PAYLOAD_FIELD = "interaction"
DOCUMENT_VERSION = 1


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


def interaction_kind(kind: InteractionKind | str) -> InteractionKind:
    try:
        return InteractionKind(kind)
    except ValueError:
        known = ", ".join(k.value for k in InteractionKind)
        raise InvalidInput(f"unknown interaction kind {kind!r} (expected one of {known})") from None


def interaction_document(partner: str, item: NewInteraction, occurred_at: datetime) -> bytes:
    """The exact bytes that are encrypted and committed to."""
    kind = interaction_kind(item.kind)
    try:
        return canonical_object(
            {
                "v": DOCUMENT_VERSION,
                "partner": partner,
                "member": "0x" + item.member.hex(),
                "kind": kind.value,
                "occurredAt": occurred_at.astimezone(UTC).isoformat(timespec="microseconds"),
                "externalKey": item.external_key,
                "data": item.data,
            }
        )
    except (CanonicalizationError, ValueError) as exc:
        raise InvalidInput(f"interaction is not valid JSON data: {exc}") from exc


def record_interaction(crm: Crm, partner_name: str, item: NewInteraction) -> int | None:
    """Record one interaction; its id, or None if its external key was already recorded."""
    result = record_interactions(crm, partner_name, [item])
    return result.recorded[0] if result.recorded else None


def record_interactions(
    crm: Crm, partner_name: str, items: Sequence[NewInteraction], *, batch: bool = False
) -> RecordResult:
    """Record many interactions in one transaction, with one query for the customers and one per 500
    external keys rather than one per interaction; all are validated before anything is written.

    Every member must be the partner's and not erased (NotFound / CustomerIsErased otherwise, and nothing
    is written). Re-recording an external key the partner already used is not an error: it is reported as
    a duplicate and skipped, which makes imports idempotent.

    With `batch`, the recorded interactions also go into pending anchoring batches (of at most
    `batch_max_leaves`, in this order) in the same transaction (`result.batches`), ready for
    `anchoring.submit`: an import thereby writes each row once, instead of again when it is batched."""
    result = RecordResult()
    if not items:
        return result
    now = datetime.now(UTC)
    with crm.unit_of_work() as db:
        partner = crm.partner(db, partner_name)
        keys = [i.external_key for i in items if i.external_key is not None]
        if len(keys) != len(set(keys)):
            raise InvalidInput("the same external key appears twice in one request")
        seen = _existing_keys(db, partner.id, keys)
        statuses = _statuses(db, crm.pid(partner), {i.member for i in items if i.external_key not in seen})
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
            document = interaction_document(partner_name, item, occurred_at)
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
                    "partner_id": crm.pid(partner),
                    "member_id": item.member,
                    "kind": interaction_kind(item.kind),
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
            size = crm.settings.batch_max_leaves
            for start in range(0, len(rows), size):
                part = rows[start : start + size]
                batch_id, placed = new_batch(db, crm.pid(partner), [row["leaf_hash"] for row in part])
                for row, (index, proof) in zip(part, placed, strict=True):
                    row.update(batch_id=batch_id, leaf_index=index, proof=proof)
                result.batches.append(batch_id)
        if rows:
            try:
                result.recorded = _insert(db, rows)
            except IntegrityError as exc:  # a concurrent import recorded one of these keys first
                raise InvalidInput(
                    f"an interaction with one of these external keys exists: {exc.orig}"
                ) from exc
    return result


def _insert(db: Session, rows: list[dict[str, Any]]) -> list[int]:
    """INSERT `rows`; their ids, in order."""
    table = Interaction.__table__  # type: ignore[attr-defined]
    connection = db.connection()
    if connection.dialect.name != "sqlite":
        # PostgreSQL: SQLAlchemy sends these as a few multi-row INSERT ... RETURNING statements
        statement = insert(table).returning(table.c.id, sort_by_parameter_order=True)
        return [int(row[0]) for row in connection.execute(statement, rows)]
    # On SQLite, asking for the ids in parameter order makes SQLAlchemy insert row by row (RETURNING
    # order is not guaranteed there); a plain executemany is one loop in C. This transaction holds the
    # write lock from its first write to its commit, and SQLite gives a new row the largest rowid plus
    # one, so the rows have consecutive ids ending at last_insert_rowid(); the count below checks it.
    insert_rows(connection, table, rows)
    last = int(connection.execute(text("SELECT last_insert_rowid()")).scalar_one())
    first = last - len(rows) + 1
    found = connection.execute(select(func.count()).where(table.c.id.between(first, last))).scalar_one()
    if found != len(rows):
        raise RuntimeError(f"expected ids {first}..{last} for {len(rows)} new interactions, found {found}")
    return list(range(first, last + 1))


def _statuses(db: Session, partner_id: int, members: set[bytes]) -> dict[bytes, CustomerStatus]:
    """The status of each of these members that is the partner's customer."""
    wanted = list(members)
    table = Customer.__table__  # type: ignore[attr-defined]
    query = select(table.c.member_id, table.c.status).where(table.c.partner_id == partner_id)
    found: dict[bytes, CustomerStatus] = {}
    for start in range(0, len(wanted), 500):
        # Core rows: the ORM's result machinery cost more than the query for a chunk's 800 members
        rows = db.connection().execute(query.where(table.c.member_id.in_(wanted[start : start + 500])))
        found.update((member, status) for member, status in rows)
    return found


def _existing_keys(db: Session, partner_id: int | None, keys: list[str]) -> set[str]:
    found: set[str] = set()
    for start in range(0, len(keys), 500):  # stay under SQLite's bound-parameter limit
        chunk = keys[start : start + 500]
        found.update(
            k
            for k in db.exec(
                select(Interaction.external_key).where(
                    Interaction.partner_id == partner_id, col(Interaction.external_key).in_(chunk)
                )
            )
            if k is not None
        )
    return found
