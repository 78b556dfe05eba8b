"""The store against the chain for everything with an on-chain counterpart besides interactions (which
`verify` checks): point events against balances, positions and the chain's events, consent receipts
against the chain's consent events (the same checks `verify --all` runs, without the log)."""

from __future__ import annotations

from dataclasses import dataclass

from api.context import Crm
from api.evidence import records
from api.evidence.verification import Outcome, Verification
from api.principal import Principal
from api.usecases.loyalty import Reconciliation, reconcile
from api.usecases.partners import partner_names


@dataclass(frozen=True)
class StoreReconciliation:
    points: Reconciliation
    pending: int  # of those, still waiting in the outbox: named, not failed
    record_mismatches: list[str]

    @property
    def mismatches(self) -> list[str]:
        return self.points.mismatches + self.record_mismatches

    @property
    def ok(self) -> bool:
        return not self.mismatches


def reconcile_store(crm: Crm, who: Principal, partner: str | None = None) -> StoreReconciliation:
    """Points and consent of one partner (or of the whole store, for its operator) against the chain."""
    who.may_reconcile(partner)
    points = reconcile(crm, who, partner)
    names = [partner] if partner is not None else partner_names(crm, who)
    found: list[Verification] = []
    with crm.unit_of_work() as db:
        for name in names:
            record = crm.partner(db, name)
            found += records.check_consents(crm, db, record) + records.check_points(crm, db, record)
    # signed on chain and relayed by another partner (PROVEN) agrees with the chain; pending is named
    failed = [f"{v.record}: {v.detail}" for v in found if not v.ok and v.outcome is not Outcome.UNANCHORED]
    pending = sum(1 for v in found if v.outcome is Outcome.UNANCHORED)
    return StoreReconciliation(points, pending, failed)
