"""The auditor's console (`/audit`, signed in with the auditor's own key): each partner's log heads over
time, a leaf's inclusion proof and the consistency of two heads (each with the contract's own verdict),
a verification run in auditor mode with its findings, and the erasure receipts. Hashes, sizes and
findings only: no page here shows personal data (no key is opened for an auditor)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse

from api.errors import CrmError
from api.evidence.verification import Outcome
from api.http import charts
from api.http.pages.base import STATIC, as_role, crm_of, job_findings_page, render, sign_in_page
from api.principal import Principal, Role
from api.usecases import logs
from api.usecases.decisions import verify_decision
from api.usecases.verification import verify

router = APIRouter()
LATEST_DECISIONS = 50  # listed on the decisions page; any other is reached by its number


@router.get("/audit", response_model=None)
def logs_page(request: Request) -> HTMLResponse:
    who = as_role(request, Role.AUDITOR)
    if who is None:
        return sign_in_page(request, Role.AUDITOR)
    found = logs.log_heads(crm_of(request), who)
    chart = charts.heads_over_time(
        {
            log.partner or log.address: [(h.block_number, h.size) for h in log.heads]
            for log in found
            if log.heads
        }
    )
    return render(request, "pages/audit_logs.html", logs=found, chart=chart)


@router.get("/audit/proofs", response_model=None)
def proofs_page(
    request: Request,
    partner: str = Query("", max_length=63),
    leaf: int | None = Query(None, ge=0, le=2**62),
    first: int | None = Query(None, ge=1, le=2**62),
    second: int | None = Query(None, ge=1, le=2**62),
) -> HTMLResponse:
    """A leaf's inclusion proof (`partner`, `leaf`) or the consistency of two heads (`partner`, `first`,
    `second` leaves), as the contract checks them."""
    who = as_role(request, Role.AUDITOR)
    if who is None:
        return sign_in_page(request, Role.AUDITOR)
    crm = crm_of(request)
    names = [log.partner for log in logs.log_heads(crm, who) if log.partner]
    inclusion, steps, problem = None, None, None
    try:
        if partner and leaf is not None:
            inclusion = logs.inclusion(crm, who, partner, leaf)
        if partner and first is not None and second is not None:
            steps = logs.consistency(crm, who, partner, first, second)
    except CrmError as error:
        problem = str(error)
    return render(
        request,
        "pages/audit_proofs.html",
        status_code=422 if problem else 200,
        names=names,
        partner=partner,
        leaf=leaf,
        first=first,
        second=second,
        inclusion=inclusion,
        steps=steps,
        problem=problem,
    )


@router.get("/audit/erasures", response_model=None)
def erasures_page(request: Request) -> HTMLResponse:
    who = as_role(request, Role.AUDITOR)
    if who is None:
        return sign_in_page(request, Role.AUDITOR)
    return render(request, "pages/audit_erasures.html", erasures=logs.erasure_receipts(crm_of(request), who))


@router.get("/audit/report", response_model=None)
def report_page(request: Request, download: bool = Query(False)) -> HTMLResponse:
    """One self-contained HTML file (styles inline, charts as inline SVG): the logs' heads, a
    verification run in auditor mode, and the erasure receipts; it prints well, and `download` saves it."""
    who = as_role(request, Role.AUDITOR)
    if who is None:
        return sign_in_page(request, Role.AUDITOR)
    crm = crm_of(request)
    found = logs.log_heads(crm, who)
    chart = charts.heads_over_time(
        {
            log.partner or log.address: [(h.block_number, h.size) for h in log.heads]
            for log in found
            if log.heads
        }
    )
    response = render(
        request,
        "pages/audit_report.html",
        logs=found,
        chart=chart,
        report=verify(crm, who, auditor=True),
        outcomes=list(Outcome),
        erasures=logs.erasure_receipts(crm, who),
        styles=(STATIC / "css" / "pages.css").read_text(),
        made=datetime.now(UTC),
        auditor=who.address,
        chain_id=crm.coalition.deployment.chain_id,
        block=crm.coalition.block_number(),
    )
    if download:
        response.headers["Content-Disposition"] = 'attachment; filename="ledgercrm-audit-report.html"'
    return response


@router.get("/audit/verification/jobs/{job_id}", response_model=None)
def verification_job_findings(request: Request, job_id: str) -> HTMLResponse:
    """The findings of a verification job this auditor started through the API (the page's script
    follows the job's progress, then shows this)."""
    return job_findings_page(request, Role.AUDITOR, job_id, "pages/audit_job_findings.html")


@router.get("/audit/verification", response_model=None)
def verification_page(request: Request, run: bool = Query(False)) -> HTMLResponse:
    who = as_role(request, Role.AUDITOR)
    if who is None:
        return sign_in_page(request, Role.AUDITOR)
    # without the page's script, the form asks for a run here and the page comes back with it
    report = verify(crm_of(request), who, auditor=True) if run else None
    return render(request, "pages/audit_verification.html", report=report, outcomes=list(Outcome))


@router.get("/audit/decisions", response_model=None)
def decisions_page(request: Request, decision: int | None = Query(None, ge=0, le=2**62)) -> HTMLResponse:
    """Every decision on chain; with `decision`, that one reproduced from the chain down in auditor mode
    (no key: the model, the consent at its block, the inputs' proofs and their root)."""
    who = as_role(request, Role.AUDITOR)
    if who is None:
        return sign_in_page(request, Role.AUDITOR)
    return _decisions(request, who, decision, None)


@router.post("/audit/decisions", response_model=None)
async def reproduce_decision(request: Request, decision: int = Query(ge=0, le=2**62)) -> HTMLResponse:
    """The decision reproduced with the deciding partner's disclosure (`decision disclose`, a file sent
    by the form): the score recomputed by the model from the disclosed features, and the explanation
    checked against its commitment on chain. The disclosure is read here and kept nowhere."""
    form = await request.form()
    upload = form.get("disclosure")
    raw = await upload.read() if upload is not None and not isinstance(upload, str) else b""
    return await run_in_threadpool(_reproduce, request, decision, raw)


def _reproduce(request: Request, decision: int, raw: bytes) -> HTMLResponse:
    who = as_role(request, Role.AUDITOR)
    if who is None:  # no session, another role's, or a cookie write without its CSRF token
        return sign_in_page(request, Role.AUDITOR)
    try:
        disclosure = json.loads(raw) if raw else None
    except (UnicodeDecodeError, ValueError):
        disclosure = None
    if not isinstance(disclosure, dict):
        return _decisions(
            request, who, decision, None, problem="Choose the disclosure file the deciding partner gave you."
        )
    return _decisions(request, who, decision, disclosure)


def _decisions(
    request: Request,
    who: Principal,
    decision: int | None,
    disclosure: dict[str, Any] | None,
    problem: str | None = None,
) -> HTMLResponse:
    crm = crm_of(request)
    every = logs.logged_decisions(crm, who)
    chosen, check = None, None
    try:
        if decision is not None:
            chosen = logs.logged_decisions(crm, who, decision)[0]
            check = verify_decision(crm, who, decision, auditor=True, disclosure=disclosure)
    except CrmError as error:
        problem = str(error)
    return render(
        request,
        "pages/audit_decisions.html",
        status_code=422 if problem else 200,
        decisions=list(reversed(every[-LATEST_DECISIONS:])),  # a score run logs one per customer
        total=len(every),
        chosen=chosen,
        check=check,
        disclosed=disclosure is not None,
        decision=decision,
        problem=problem,
    )
