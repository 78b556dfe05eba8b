"""The evidence of a partner's records: anchor pending interactions now, verify everything against the
chain (a job), reconcile points and consent with the chain."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, Field

from api.http.deps import CrmDep, PartnerDep, needs
from api.http.idempotency import IdempotentRoute
from api.http.problems import responses
from api.http.routes.decisions import JobStarted
from api.usecases import anchoring, reconciliation, verification

router = APIRouter(prefix="/v1", tags=["evidence"], route_class=IdempotentRoute)
ERRORS = responses(401, 403, 409, 422)


class BatchOut(BaseModel):
    partner: str
    batch: int = Field(description="the batch's number on chain")
    size: int = Field(description="leaves anchored")
    block_number: int


class Anchored(BaseModel):
    batches: list[BatchOut] = Field(description="empty: nothing was pending")
    failed: list[str] = Field(
        description="anchor transactions found failed on chain: their batches went back to pending and"
        " were signed anew"
    )


class Reconciled(BaseModel):
    ok: bool = Field(description="the store and the chain agree")
    members_checked: int
    partners_checked: int
    mismatches: list[str]
    pending: int = Field(description="records still waiting in the outbox: named, not failed")


@router.post("/anchor", response_model=Anchored, responses=ERRORS, **needs("anchoring:write"))
def anchor(who: PartnerDep, crm: CrmDep) -> Anchored:
    """Anchor every pending interaction of yours now (a batch per call of the log)."""
    run = anchoring.anchor_now(crm, who)
    return Anchored(
        batches=[
            BatchOut(partner=name, batch=o.onchain_batch_id, size=o.size, block_number=o.block_number)
            for name, o in run.anchored
        ],
        failed=[f"{name}: {failure.reason}" for name, failure in run.failed],
    )


@router.post(
    "/verifications",
    status_code=202,
    response_model=JobStarted,
    responses=ERRORS,
    **needs("verification:read"),
)
def verify(who: PartnerDep, crm: CrmDep, request: Request, response: Response) -> JobStarted:
    """Verify everything of yours against the chain, from the chain down (`verify --all`): a job (202,
    `Location: /v1/jobs/{id}`) whose result holds the findings."""

    def work(progress: Any) -> dict[str, Any]:
        progress(0.0, "verifying against the chain")
        report = verification.verify(crm, who)
        counts = report.counts
        return {
            "ok": not report.failures,
            "counts": {outcome.value: n for outcome, n in sorted(counts.items())},
            "checks": [check.value for check in report.checks],
            "failures": [
                {"outcome": f.outcome.value, "record": f.label, "detail": f.detail} for f in report.failures
            ],
            "pending": sum(n for outcome, n in counts.items() if outcome.value == "unanchored"),
        }

    job = request.app.state.jobs.start(who, "verify", work)
    response.headers["Location"] = f"/v1/jobs/{job}"
    return JobStarted(job=job, status="queued")


@router.post("/reconciliations", response_model=Reconciled, responses=ERRORS, **needs("verification:read"))
def reconcile(who: PartnerDep, crm: CrmDep) -> Reconciled:
    """Your points (balances of your members, your settlement position) and consent receipts against
    the chain."""
    report = reconciliation.reconcile_store(crm, who, who.acting_partner())
    return Reconciled(
        ok=report.ok,
        members_checked=report.points.members_checked,
        partners_checked=report.points.partners_checked,
        mismatches=report.mismatches,
        pending=report.pending,
    )
