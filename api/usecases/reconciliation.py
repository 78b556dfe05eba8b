"""The store against the chain, everything that has an on-chain counterpart besides interactions
(which `verify` checks): point events against balances and positions, consent receipts against the
chain's consent histories."""

from __future__ import annotations

from dataclasses import dataclass

from api.context import Crm
from api.principal import Principal
from api.usecases.consent import reconcile_consents
from api.usecases.loyalty import Reconciliation, reconcile


@dataclass(frozen=True)
class StoreReconciliation:
    points: Reconciliation
    consent_groups_checked: int  # (member, partner, purpose) histories compared
    consent_mismatches: list[str]

    @property
    def mismatches(self) -> list[str]:
        return self.points.mismatches + self.consent_mismatches

    @property
    def ok(self) -> bool:
        return not self.mismatches


def reconcile_store(crm: Crm, who: Principal, partner: str | None = None) -> StoreReconciliation:
    """Points and consent of one partner (or of the whole store, for its operator) against the chain."""
    points = reconcile(crm, who, partner)
    groups, mismatches = reconcile_consents(crm, who, partner)
    return StoreReconciliation(points, groups, mismatches)
