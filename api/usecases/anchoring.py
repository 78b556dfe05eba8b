"""Anchoring on demand: every pending leaf of the partners in scope, now."""

from __future__ import annotations

from dataclasses import dataclass, field

from api.context import Crm
from api.errors import NotAllowed
from api.evidence import anchoring
from api.evidence.anchoring import AnchorOutcome
from api.evidence.outbox import FailedTransaction
from api.principal import Principal
from api.usecases.partners import partner_names


@dataclass
class AnchorRun:
    """What `anchor_now` did: each batch anchored, and each anchor transaction found failed on chain
    (its batch went back to pending and was signed anew), with its partner's name."""

    anchored: list[tuple[str, AnchorOutcome]] = field(default_factory=list)
    failed: list[tuple[str, FailedTransaction]] = field(default_factory=list)


def anchor_now(crm: Crm, who: Principal, partner: str | None = None) -> AnchorRun:
    """Anchor every pending leaf of `partner` (default: of every partner `who` acts for), after putting
    back in the queue (and so re-checking against the chain) any anchor transaction that failed."""
    names = partner_names(crm, who)
    if partner is not None:
        if partner not in names:
            with crm.unit_of_work() as db:
                crm.partner(db, partner)  # UnknownPartner if there is none
            raise NotAllowed(f"{who} may not anchor for partner {partner}")
        names = [partner]
    run = AnchorRun()
    for name in names:
        outcomes, failed = anchoring.anchor_pending_report(crm, name)
        run.anchored += [(name, outcome) for outcome in outcomes]
        run.failed += [(name, failure) for failure in failed]
    return run
