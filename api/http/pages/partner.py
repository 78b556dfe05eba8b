"""The partner's desk (`/partner`): customers with search and paging, one customer's page, settlement
positions against the other partners, and the model cards as pictures. Signed in with an API key."""

from __future__ import annotations

from collections import Counter
from typing import Any
from urllib.parse import parse_qs

from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse

from api.errors import CrmError, NotFound
from api.http import charts
from api.http.pages.base import as_role, crm_of, job_findings_page, render, sign_in_page
from api.messages import describe
from api.principal import Principal, Role
from api.usecases.anchoring import log_state
from api.usecases.consent import consent_history
from api.usecases.customers import list_customers, show_customer
from api.usecases.decisions import list_decisions
from api.usecases.interactions import list_interactions
from api.usecases.loyalty import PointsRequest, balance, earn_points, points_history
from api.usecases.models import list_models, model_card, model_shapes, segments
from api.usecases.partners import positions
from ledger.errors import LedgerError
from offchain.errors import VaultError

router = APIRouter()
PER_PAGE = 20


@router.get("/partner", response_class=HTMLResponse)
def customers_page(
    request: Request, q: str = Query("", max_length=200), page: int = Query(1, ge=1, le=1_000_000)
) -> HTMLResponse:
    who = as_role(request, Role.PARTNER)
    if who is None:
        return sign_in_page(request, Role.PARTNER)
    found = list_customers(crm_of(request), who, search=q.strip() or None, page=page, per_page=PER_PAGE)
    pages = max(1, -(-found.total // PER_PAGE))
    template = "pages/partner_customers_table.html" if request.headers.get("HX-Request") else None
    return render(
        request,
        template or "pages/partner_customers.html",
        partner=who.partner,
        found=found,
        q=q.strip(),
        pages=pages,
    )


@router.get("/partner/customers/{member}", response_class=HTMLResponse)
def customer_page(request: Request, member: str) -> HTMLResponse:
    who = as_role(request, Role.PARTNER)
    if who is None:
        return sign_in_page(request, Role.PARTNER)
    crm = crm_of(request)
    try:
        member_id = _member(member)
        customer = show_customer(crm, who, member_id)
    except CrmError as error:
        return render(request, "pages/not_found.html", status_code=404, problem=str(error))
    history = consent_history(crm, who, member_id, who.partner)
    latest: dict[str, object] = {}
    for event in history:
        latest[event.receipt.purpose] = event
    return render(
        request,
        "pages/partner_customer.html",
        customer=customer,
        interactions=list_interactions(crm, who, member_id),
        consents=list(latest.values()),
        history=history,
        balance=balance(crm, who, member_id),
        points=points_history(crm, who, member_id),
        decisions=list_decisions(crm, who, member_id),
        member=member,
    )


@router.post("/partner/customers/{member}/points", response_class=HTMLResponse)
async def award_points(request: Request, member: str) -> HTMLResponse:
    """Award points to the customer (the form on the customer's page, sent by htmx with the session's
    CSRF token): the points section again, with the new balance, or with the refusal in words."""
    form = parse_qs((await request.body()).decode(errors="replace"))
    return await run_in_threadpool(_award, request, member, form.get("amount", [""])[0].strip())


def _award(request: Request, member: str, amount_text: str) -> HTMLResponse:
    who = as_role(request, Role.PARTNER)
    if who is None:  # no session, another role's, or a cookie write without its CSRF token
        return sign_in_page(request, Role.PARTNER)
    crm = crm_of(request)
    problem = None
    try:
        member_id = _member(member)
        show_customer(crm, who, member_id)  # NotFound for another partner's customer, before any write
    except CrmError as error:
        return render(request, "pages/not_found.html", status_code=404, problem=str(error))
    if not amount_text.isdigit():
        problem = "Enter the points as a whole number, for example 250."
    else:
        try:
            earn_points(crm, who, PointsRequest(member_id, int(amount_text)))
        except (CrmError, LedgerError, VaultError) as error:
            problem = describe(error)
    return render(
        request,
        "pages/partner_points.html",
        status_code=422 if problem else 200,
        member=member,
        balance=balance(crm, who, member_id),
        points=points_history(crm, who, member_id),
        points_problem=problem,
        amount=amount_text if problem else "",
    )


@router.get("/partner/settlement", response_class=HTMLResponse)
def settlement_page(request: Request) -> HTMLResponse:
    who = as_role(request, Role.PARTNER)
    if who is None:
        return sign_in_page(request, Role.PARTNER)
    every = positions(crm_of(request), who)
    chart = charts.settlement({p.name: p.net for p in every}) if every else None
    return render(request, "pages/partner_settlement.html", positions=every, chart=chart, partner=who.partner)


@router.get("/partner/models", response_class=HTMLResponse)
def models_page(request: Request) -> HTMLResponse:
    who = as_role(request, Role.PARTNER)
    if who is None:
        return sign_in_page(request, Role.PARTNER)
    return render(request, "pages/partner_models.html", models=list_models(crm_of(request), who))


@router.get("/partner/models/{model_id}", response_class=HTMLResponse)
def model_page(request: Request, model_id: int) -> HTMLResponse:
    who = as_role(request, Role.PARTNER)
    if who is None:
        return sign_in_page(request, Role.PARTNER)
    crm = crm_of(request)
    try:
        card = model_card(crm, who, model_id)
        shapes = model_shapes(crm, who, model_id)
    except CrmError as error:
        return render(request, "pages/not_found.html", status_code=404, problem=str(error))
    metrics = card.get("metrics", {})
    pictures = []
    if metrics:
        pictures.append(charts.baselines({name: m["auc"] for name, m in metrics.items()}, "auc"))
    curves = card.get("curves", {})
    if "roc" in curves:
        auc = metrics.get("EBM (registered)", {}).get("auc", {}).get("value")
        pictures.append(charts.roc_curve([tuple(p) for p in curves["roc"]], auc, name="glass box"))
    if "calibration" in curves:
        pictures.append(charts.calibration_curve([tuple(b) for b in curves["calibration"]], name="glass box"))
    decided = (
        [line for line in list_decisions(crm, who) if line.model_id == model_id] if _own(card, who) else []
    )
    if decided:
        threshold = card.get("policy", {}).get("threshold")
        pictures.append(charts.score_distribution([d.score_bps / 10_000 for d in decided], threshold))
    shape_charts = [charts.feature_shape(s.name, s.cuts, s.scores, s.meaning) for s in shapes]
    actions = Counter(d.action for d in decided)
    return render(
        request,
        "pages/partner_model.html",
        model_id=model_id,
        card=card,
        pictures=pictures,
        shapes=shape_charts,
        actions=actions,
        has_curves=bool(curves),
    )


@router.get("/partner/segments", response_class=HTMLResponse)
def segments_page(request: Request) -> HTMLResponse:
    """RFM segments of the partner's customers (from verified interactions only), as a chart and a
    table, and the KMeans scan of k beside the named segments."""
    who = as_role(request, Role.PARTNER)
    if who is None:
        return sign_in_page(request, Role.PARTNER)
    try:
        report = segments(crm_of(request), who)
    except CrmError as error:
        return render(request, "pages/partner_segments.html", report=None, problem=str(error))
    summary = report.summary()
    chart = charts.segments({s.name: s.members for s in summary})
    scan = list(zip(report.scan.ks, report.scan.silhouette, report.scan.inertia, strict=True))
    return render(
        request,
        "pages/partner_segments.html",
        report=report,
        summary=summary,
        chart=chart,
        scan=scan,
        best=report.scan.by_silhouette,
    )


@router.get("/partner/log", response_class=HTMLResponse)
def log_page(request: Request) -> HTMLResponse:
    """Where the partner's log stands (leaves waiting for a batch, the last head and its block) and its
    last verification against the chain, with a button that starts a new one (a job of the API's)."""
    who = as_role(request, Role.PARTNER)
    if who is None:
        return sign_in_page(request, Role.PARTNER)
    last = request.app.state.jobs.latest(who, "verify")
    return render(
        request,
        "pages/partner_log.html",
        state=log_state(crm_of(request), who),
        job=last,
        result=(last.result or {}) if last is not None else {},
    )


@router.get("/partner/verification/jobs/{job_id}", response_class=HTMLResponse)
def verification_job(request: Request, job_id: str) -> HTMLResponse:
    """The findings of a verification job this partner started (the page's script follows the job's
    progress through the API, then shows this)."""
    return job_findings_page(request, Role.PARTNER, job_id, "pages/partner_verification.html")


def _own(card: dict[str, Any], who: Principal) -> bool:
    """Whether `who` registered the model the card describes (its decisions are then `who`'s)."""
    provenance = card.get("provenance")
    return isinstance(provenance, dict) and provenance.get("partner") == who.partner


def _member(text: str) -> bytes:
    raw = text.removeprefix("0x")
    try:
        member = bytes.fromhex(raw)
    except ValueError:
        member = b""
    if len(member) != 32:
        raise NotFound(f"no member {text}")
    return member
