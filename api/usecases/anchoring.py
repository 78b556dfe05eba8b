"""Anchoring on demand: every pending leaf of the partners in scope, now, and whatever else waits in
their outboxes."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from api.context import Crm
from api.errors import NotAllowed
from api.evidence import anchoring
from api.evidence.anchoring import AnchorOutcome
from api.evidence.outbox import FailedTransaction
from api.principal import Principal
from api.usecases.consent import send_staged_consents
from api.usecases.customers import send_staged_enrolments
from api.usecases.decisions import send_staged_decisions
from api.usecases.loyalty import send_staged_points
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


@dataclass(frozen=True)
class Sent:
    """What `send_waiting` put on chain, by outbox."""

    enrolments: int
    consents: int
    points: int
    decisions: int

    @property
    def total(self) -> int:
        return self.enrolments + self.consents + self.points + self.decisions


def send_waiting(crm: Crm, who: Principal, partner: str | None = None) -> Sent:
    """Send what waits in the outboxes of `partner` (default: of every partner `who` acts for), in the
    order the chain needs it: enrolments (customers the chain does not know yet), consent, points,
    decisions. An import or a score stopped part-way leaves them there; `verify` counts them pending and
    points here (`ledgercrm anchor`), so its advice works whatever is waiting."""
    names = partner_names(crm, who) if partner is None else [partner]
    counts = [0, 0, 0, 0]
    for name in names:
        acting = Principal.of_partner(name)
        counts[0] += len(send_staged_enrolments(crm, acting))
        counts[1] += len(send_staged_consents(crm, acting))
        counts[2] += len(send_staged_points(crm, acting))
        counts[3] += len(send_staged_decisions(crm, acting))
    return Sent(*counts)


@dataclass(frozen=True)
class LogState:
    """Where the acting partner's log stands: leaves waiting for a batch, and its last head on chain."""

    partner: str
    pending: int
    oldest_pending: datetime | None  # when the longest-waiting leaf was recorded
    heads: int  # heads anchored on chain
    size: int  # leaves under the last head (the genesis leaf alone before the first)
    root: bytes
    block_number: int | None  # of the last head; None before the first


def log_state(crm: Crm, who: Principal) -> LogState:
    """The acting partner's pending leaves and last anchored head (its size, root and block)."""
    partner = who.acting_partner()
    pending, oldest = anchoring.pending_leaves(crm, partner)
    address = crm.signer(partner).address
    heads = crm.coalition.anchor.heads(address)
    head = crm.coalition.anchor.head(address)
    last = heads[-1] if heads else None
    return LogState(
        partner,
        pending,
        oldest,
        len(heads),
        head.size,
        head.root,
        None if last is None else last.block_number,
    )
