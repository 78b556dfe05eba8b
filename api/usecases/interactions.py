"""A partner records its customers' interactions (the evidence core seals, commits and anchors them)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from api.context import Crm
from api.errors import Conflict, InvalidInput
from api.evidence import anchoring, recording
from api.evidence.anchoring import AnchorOutcome
from api.evidence.documents import interaction_document
from api.evidence.recording import NewInteraction, RecordResult
from api.principal import Principal
from api.usecases.customers import owned_customer
from offchain.models import AnchorStatus, InteractionKind
from offchain.repositories import batches, interactions

__all__ = ["AddedInteraction", "NewInteraction", "add_interaction", "record_interactions"]

MAX_DATA_BYTES = 64 * 1024  # an interaction is a record, not a file store: its data, as JSON, at most this


def _same_as_recorded(crm: Crm, partner: str, item: NewInteraction) -> None:
    """Conflict unless the interaction recorded under the item's external key says the same (member,
    kind, data, and the time if the item gives one): a repeat is harmless, a different record is not."""
    assert item.external_key is not None
    recorded = recording.recorded_document(crm, partner, item.external_key)
    if recorded is None:
        raise Conflict(f"interaction {item.external_key} was recorded before and its content is erased")
    when = item.occurred_at or datetime.now(UTC)
    wanted = json.loads(
        interaction_document(partner, item.member, item.kind, item.data, when, item.external_key)
    )
    compared = ("member", "kind", "data") + (("occurredAt",) if item.occurred_at is not None else ())
    differs = [name for name in compared if wanted[name] != recorded.get(name)]
    if differs:
        raise Conflict(
            f"interaction {item.external_key} was already recorded with a different {' and '.join(differs)};"
            " nothing was changed (give a new --external-key for a new interaction)"
        )


def _not_record_updates(items: Sequence[NewInteraction]) -> None:
    """A record update is written with the change it commits to (`update_customer`), never on its own:
    one recorded by hand would claim a change of personal data that never happened."""
    for item in items:
        if str(getattr(item.kind, "value", item.kind)) == InteractionKind.RECORD_UPDATE:
            raise InvalidInput(
                "kind record_update is recorded by `customer update` with the change itself, not on its own"
            )


def record_interactions(crm: Crm, who: Principal, items: Sequence[NewInteraction]) -> RecordResult:
    """Record many interactions of the acting partner's customers (see `recording.record_interactions`)."""
    _not_record_updates(items)
    return recording.record_interactions(crm, who.acting_partner(), items)


@dataclass(frozen=True)
class AddedInteraction:
    interaction_id: int | None  # None: its external key was already recorded (with the same data or not)
    anchored: list[AnchorOutcome] = field(default_factory=list)  # batches this call anchored


def add_interaction(crm: Crm, who: Principal, item: NewInteraction) -> AddedInteraction:
    """Record one interaction, and anchor the partner's pending leaves if the size or age threshold
    says a batch is due."""
    partner = who.acting_partner()
    if isinstance(item.data, dict):
        size = len(json.dumps(item.data, separators=(",", ":"), ensure_ascii=False).encode())
        if size > MAX_DATA_BYTES:
            raise InvalidInput(f"data: at most {MAX_DATA_BYTES // 1024} KiB of JSON, not {size:,} bytes")
    _not_record_updates([item])
    result = recording.record_interactions(crm, partner, [item])
    if not result.recorded:
        assert item.external_key is not None  # only a known external key makes a duplicate
        _same_as_recorded(crm, partner, item)
        return AddedInteraction(None)
    anchored = anchoring.anchor_pending(crm, partner) if anchoring.anchor_due(crm, partner) else []
    return AddedInteraction(result.recorded[0], anchored)


@dataclass(frozen=True)
class InteractionLine:
    interaction_id: int
    kind: str
    external_key: str | None
    occurred_at: datetime
    anchoring: str  # "pending", "submitted", or "anchored in batch N"
    erased: bool


def list_interactions(crm: Crm, who: Principal, member: bytes) -> list[InteractionLine]:
    """The acting partner's interactions of one of its customers, oldest first, with how far each got
    towards the chain (no content: that is `export`)."""
    partner_name = who.acting_partner()
    with crm.unit_of_work() as db:
        owned_customer(crm, db, partner_name, member)  # NotFound for anyone else's
        partner = crm.partner(db, partner_name)
        rows = interactions.of_member(db, partner.id, member)
        states = batches.statuses(db, {r.batch_id for r in rows if r.batch_id is not None})
    lines = []
    for row in rows:
        status, onchain = states.get(row.batch_id, (None, None)) if row.batch_id is not None else (None, None)
        if status is AnchorStatus.ANCHORED:
            anchoring = f"anchored in batch {onchain}"
        else:
            anchoring = "submitted" if status is AnchorStatus.SUBMITTED else "pending"
        lines.append(
            InteractionLine(
                row.id,
                row.kind.value,
                row.external_key,
                row.occurred_at,
                anchoring,
                row.payload_ciphertext is None,
            )
        )
    return lines
