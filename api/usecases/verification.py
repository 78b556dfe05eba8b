"""Verifying what the store holds against the chain, for the partners in scope."""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import nullcontext
from functools import partial

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
    whole = who.role in (Role.OPERATOR, Role.AUDITOR)
    scopes: list[str | None] = [None] if whole else list(names)
    # A whole run's checks of the records against the chain's events and its reconciliation wait on the
    # node most of their time (its eth_getLogs and eth_calls): against a node of its own (a process, or
    # another machine) they run on a thread of their own while this one checks the logs and rows, and
    # their results are added where they always were. In process (eth-tester) the node is this process:
    # one after the other, as before. Every check runs either way; only when.
    beside = member is None and crm.coalition.remote
    # The rows' content checks of a whole run share the machine's second core with a process of their
    # own (api/evidence/helper.py), forked here, once the keys are read and before the run starts its thread.
    # Against a node of its own, the checks against the chain's events go to that process too, on a
    # thread of its own there: here they took the interpreter's lock from the rows' checks.
    second = (
        verification.start_helper(
            crm,
            names,
            content=content,
            also=partial(_against_events_and_reconciled, crm, names, scopes, content) if beside else None,
        )
        if member is None
        else None
    )
    try:
        return _run(crm, report, names, scopes, member, content, whole, beside, second)
    finally:
        if second is not None:
            second.close()


def _run(
    crm: Crm,
    report: VerificationReport,
    names: list[str],
    scopes: list[str | None],
    member: bytes | None,
    content: bool,
    whole: bool,
    beside: bool,
    second: verification.Beside | None,
) -> VerificationReport:
    with (
        ThreadPoolExecutor(max_workers=1, thread_name_prefix="verify-chain")
        if beside and (second is None or second.also is None)
        else nullcontext() as pool
    ):
        later: Future[tuple[list[Verification], list[Verification]]] | None = None
        if pool is not None:
            later = pool.submit(_against_events_and_reconciled, crm, names, scopes, content)
        for name in names:
            part = verification.verify_all(crm, name, member=member, content=content, beside=second)
            report.results.extend(part.results)
            report.ran(*part.checks)
        if member is not None:
            return report
        report.ran(Check.CONSENT, Check.POINTS, Check.DECISIONS)
        if second is not None and second.also is not None:
            against_events, reconciled = second.also_result()
        elif later is not None:
            against_events, reconciled = later.result()
        else:
            against_events, reconciled = _against_events(crm, names, content), []
    report.results.extend(against_events)
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
    if whole:
        report.results.extend(verification.unknown_logs(crm))
    in_helper = second is not None and second.also is not None
    report.results.extend(reconciled if later is not None or in_helper else _reconciled(crm, scopes))
    return report


def _against_events(crm: Crm, names: list[str], content: bool) -> list[Verification]:
    """Each partner's consent receipts, point events, models and decisions against the chain's."""
    found: list[Verification] = []
    with crm.unit_of_work() as db:
        for name in names:
            partner = crm.partner(db, name)
            found.extend(records.check_consents(crm, db, partner))
            found.extend(records.check_points(crm, db, partner))
            found.extend(records.check_models(crm, db, partner))
            found.extend(records.check_decisions(crm, db, partner, content=content))
    return found


def _reconciled(crm: Crm, scopes: list[str | None]) -> list[Verification]:
    found: list[Verification] = []
    for scope in scopes:
        found.extend(records.reconciliation(reconcile(crm, Principal.operator(), scope).mismatches))
    return found


def _against_events_and_reconciled(
    crm: Crm, names: list[str], scopes: list[str | None], content: bool
) -> tuple[list[Verification], list[Verification]]:
    """Both, on the worker thread: its own store transactions (a session per thread), the same node."""
    return _against_events(crm, names, content), _reconciled(crm, scopes)


def verify_interaction(crm: Crm, who: Principal, interaction_id: int) -> Verification:
    """One of the acting partner's interactions, in Python and through the contract."""
    return verification.verify_interaction(crm, who.acting_partner(), interaction_id)
