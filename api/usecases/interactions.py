"""A partner records its customers' interactions (the evidence core seals, commits and anchors them)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from api.context import Crm
from api.evidence import anchoring, recording
from api.evidence.anchoring import AnchorOutcome
from api.evidence.recording import NewInteraction, RecordResult
from api.principal import Principal

__all__ = ["AddedInteraction", "NewInteraction", "add_interaction", "record_interactions"]


def record_interactions(crm: Crm, who: Principal, items: Sequence[NewInteraction]) -> RecordResult:
    """Record many interactions of the acting partner's customers (see `recording.record_interactions`)."""
    return recording.record_interactions(crm, who.acting_partner(), items)


@dataclass(frozen=True)
class AddedInteraction:
    interaction_id: int | None  # None: its external key was already recorded (with the same data or not)
    anchored: list[AnchorOutcome] = field(default_factory=list)  # batches this call anchored


def add_interaction(crm: Crm, who: Principal, item: NewInteraction) -> AddedInteraction:
    """Record one interaction, and anchor the partner's pending leaves if the size or age threshold
    says a batch is due."""
    partner = who.acting_partner()
    result = recording.record_interactions(crm, partner, [item])
    if not result.recorded:
        return AddedInteraction(None)
    anchored = anchoring.anchor_pending(crm, partner) if anchoring.anchor_due(crm, partner) else []
    return AddedInteraction(result.recorded[0], anchored)
