"""Anchoring on demand: every pending leaf of the partners in scope, now."""

from __future__ import annotations

from api.context import Crm
from api.errors import NotAllowed
from api.evidence import anchoring
from api.evidence.anchoring import AnchorOutcome
from api.principal import Principal
from api.usecases.partners import partner_names


def anchor_now(crm: Crm, who: Principal, partner: str | None = None) -> list[tuple[str, AnchorOutcome]]:
    """Anchor every pending leaf of `partner` (default: of every partner `who` acts for); each batch
    anchored, with its partner's name."""
    names = partner_names(crm, who)
    if partner is not None:
        if partner not in names:
            with crm.unit_of_work() as db:
                crm.partner(db, partner)  # UnknownPartner if there is none
            raise NotAllowed(f"{who} may not anchor for partner {partner}")
        names = [partner]
    return [(name, outcome) for name in names for outcome in anchoring.anchor_pending(crm, name)]
