"""The auditor's console (`/audit`, signed in with the auditor's own key): each partner's log heads over
time, and a verification run in auditor mode with its findings. Hashes, sizes and findings only: no
page here shows personal data (no key is opened for an auditor)."""

from __future__ import annotations

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse

from api.evidence.verification import Outcome
from api.http import charts
from api.http.pages.base import as_role, crm_of, render, sign_in_page
from api.principal import Role
from api.usecases.anchoring import log_heads
from api.usecases.verification import verify

router = APIRouter()


@router.get("/audit", response_class=HTMLResponse)
def logs_page(request: Request) -> HTMLResponse:
    who = as_role(request, Role.AUDITOR)
    if who is None:
        return sign_in_page(request, Role.AUDITOR)
    heads = log_heads(crm_of(request), who)
    chart = charts.heads_over_time(
        {name: [(h.block_number, h.size) for h in found] for name, found in heads.items() if found}
    )
    return render(request, "pages/audit_logs.html", heads=heads, chart=chart)


@router.get("/audit/verification", response_class=HTMLResponse)
def verification_page(request: Request, run: bool = Query(False)) -> HTMLResponse:
    who = as_role(request, Role.AUDITOR)
    if who is None:
        return sign_in_page(request, Role.AUDITOR)
    report = verify(crm_of(request), who, auditor=True) if run else None
    fragment = run and request.headers.get("HX-Request")
    return render(
        request,
        "pages/audit_findings.html" if fragment else "pages/audit_verification.html",
        report=report,
        outcomes=list(Outcome),
    )
