"""Verifying what the store holds against the chain, for the partners in scope."""

from __future__ import annotations

from api.context import Crm
from api.evidence import verification
from api.evidence.verification import Verification, VerificationReport
from api.principal import Principal
from api.usecases.partners import partner_names


def verify(crm: Crm, who: Principal, member: bytes | None = None) -> VerificationReport:
    """Every interaction of the partners `who` acts for (only `member`'s, if given), plus the leaves the
    chain has and the store lacks; exit code material: `report.ok`."""
    report = VerificationReport()
    for name in partner_names(crm, who):
        report.results.extend(verification.verify_all(crm, name, member=member).results)
    return report


def verify_interaction(crm: Crm, who: Principal, interaction_id: int) -> Verification:
    """One of the acting partner's interactions, in Python and through the contract."""
    return verification.verify_interaction(crm, who.acting_partner(), interaction_id)
