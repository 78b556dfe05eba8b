"""Verifying what the store holds against the chain, for the partners in scope."""

from __future__ import annotations

from eth_utils import is_address

from api.context import Crm
from api.errors import MalformedInput
from api.evidence import records, verification
from api.evidence.verification import Check, Outcome, Verification, VerificationReport
from api.principal import Principal, Role
from api.usecases.loyalty import reconcile
from api.usecases.partners import partner_names
from offchain.db import streaming_reads


def verify(
    crm: Crm,
    who: Principal,
    member: bytes | None = None,
    *,
    auditor: bool = False,
    consortium: str | None = None,
) -> VerificationReport:
    """Every partner `who` acts for, from the chain down: each log's heads and leaves, every
    interaction (only `member`'s, if given) and erasure receipt; for a whole run (no `member`) also
    consent receipts, point events, registered models and decisions against the chain's events, the
    points reconciliation, and logs on chain of partners the store does not know. Content is re-hashed
    with the partners' keys unless `auditor` (or `who` is an auditor): then no key is opened, and the
    report says which checks ran.
    Exit code material: `report.failures`.

    It starts from the trust anchor: the Consortium (`consortium`, if given out of band, else the
    home's), whose record of the other contracts is read again and checked against the ones in use,
    with their code (DeploymentMismatch, naming the contract, otherwise). The report says which chain id
    and Consortium it trusted."""
    if consortium is not None and not is_address(consortium):
        raise MalformedInput(
            f"--consortium takes a contract address (0x + 40 hex digits), not {consortium!r}"
        )
    # one pass over the store from end to end: no page is read twice, so a large page cache only grows
    with streaming_reads(crm.engine):
        return _verify(crm, who, member, auditor=auditor, consortium=consortium)


def _verify(
    crm: Crm, who: Principal, member: bytes | None, *, auditor: bool, consortium: str | None
) -> VerificationReport:
    deployment = crm.coalition.check_trust(consortium)
    content = not auditor and who.role is not Role.AUDITOR
    report = VerificationReport(chain_id=deployment.chain_id, consortium=deployment.contracts["Consortium"])
    names = partner_names(crm, who)
    for name in names:
        part = verification.verify_all(crm, name, member=member, content=content)
        report.results.extend(part.results)
        report.ran(*part.checks)
    if member is not None:
        return report
    report.ran(Check.CONSENT, Check.POINTS, Check.DECISIONS)
    with crm.unit_of_work() as db:
        for name in names:
            partner = crm.partner(db, name)
            report.results.extend(records.check_consents(crm, db, partner))
            report.results.extend(records.check_points(crm, db, partner))
            report.results.extend(records.check_models(crm, db, partner))
            report.results.extend(records.check_decisions(crm, db, partner, content=content))
    for holder, shredded, block in crm.reshredded:
        if holder in names:
            report.results.append(
                Verification(
                    None,
                    Outcome.TAMPERED,
                    f"the key store held a data key of a member the chain erased in block {block} (a key"
                    " store restored from a backup?); it was shredded again when the home was opened",
                    record=f"key of 0x{shredded.hex()} of {holder}",
                )
            )
    whole = who.role in (Role.OPERATOR, Role.AUDITOR)
    if whole:
        report.results.extend(verification.unknown_logs(crm))
    scopes: list[str | None] = [None] if whole else list(names)
    for scope in scopes:
        report.results.extend(records.reconciliation(reconcile(crm, Principal.operator(), scope).mismatches))
    return report


def verify_interaction(crm: Crm, who: Principal, interaction_id: int) -> Verification:
    """One of the acting partner's interactions, in Python and through the contract."""
    return verification.verify_interaction(crm, who.acting_partner(), interaction_id)
