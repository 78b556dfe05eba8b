"""Churn models (train: a job; list, card) and RFM segments of a partner's customers."""

from __future__ import annotations

from collections import Counter
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request, Response
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from api.http.deps import CrmDep, PartnerDep, needs
from api.http.idempotency import IdempotentRoute
from api.http.problems import responses
from api.http.routes.common import hexid
from api.http.routes.decisions import JobStarted
from api.usecases import models

router = APIRouter(tags=["models"], route_class=IdempotentRoute)
ERRORS = responses(401, 403, 404, 409, 422)


class ModelOut(BaseModel):
    model_id: int
    partner: str
    model_hash: str
    card_hash: str
    block_number: int
    holdout_auc: float | None
    on_chain: bool = Field(description="the chain's record of this id has the stored hashes")


class TrainIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    horizon_days: int = Field(
        default=90, ge=1, le=730, description="churn: no purchase within this many days"
    )
    as_of: AwareDatetime | None = Field(
        default=None, description="the holdout's as-of date (default: from the data)"
    )
    backtest: bool = Field(default=True, description="the three-cut backtest in the card (minutes of work)")


class SegmentOut(BaseModel):
    segment: str
    members: int
    mean_recency_days: float
    mean_purchases: float
    mean_spend: float


class KScan(BaseModel):
    ks: list[int]
    silhouette: list[float]
    inertia: list[float]
    k_by_silhouette: int
    k_by_elbow: int


class SegmentsOut(BaseModel):
    as_of: str
    segments: list[SegmentOut]
    kmeans: KScan
    excluded: dict[str, int] = Field(description="interactions left out, by outcome (they did not verify)")
    without_consent: int = Field(
        description="customers left out: no valid profiling consent towards you (a segment is profiling)"
    )


@router.get("/v1/models", response_model=list[ModelOut], responses=ERRORS, **needs("models:read"))
def list_models(who: PartnerDep, crm: CrmDep) -> list[ModelOut]:
    """Every registered model of the coalition, each checked against the chain's record."""
    return [
        ModelOut(
            model_id=m.model_id,
            partner=m.partner,
            model_hash=hexid(m.model_hash),
            card_hash=hexid(m.card_hash),
            block_number=m.block_number,
            holdout_auc=m.holdout_auc,
            on_chain=m.on_chain,
        )
        for m in models.list_models(crm, who)
    ]


@router.get(
    "/v1/models/{model_id}/card", response_model=dict[str, Any], responses=ERRORS, **needs("models:read")
)
def model_card(
    model_id: Annotated[int, Path(ge=0, le=2**63 - 1, description="the model's id on chain")],
    who: PartnerDep,
    crm: CrmDep,
) -> dict[str, Any]:
    """The model card (metrics with intervals, baselines, fairness snapshot, provenance): the document
    whose hash the chain registered."""
    return models.model_card(crm, who, model_id)


@router.post(
    "/v1/models", status_code=202, response_model=JobStarted, responses=ERRORS, **needs("models:write")
)
def train(body: TrainIn, who: PartnerDep, crm: CrmDep, request: Request, response: Response) -> JobStarted:
    """Train a churn model on your verified interactions and register it on chain: a job (202,
    `Location: /v1/jobs/{id}`); its result names the model's id and hash."""

    def work(progress: Any) -> dict[str, Any]:
        done = models.train_model(
            crm,
            who,
            horizon_days=body.horizon_days,
            as_of=body.as_of,
            backtest=body.backtest,
            step=lambda what: progress(0.0, what),
        )
        return {
            "model_id": done.model_id,
            "model_hash": hexid(done.trained.model.model_hash),
            "card_hash": hexid(done.trained.card_hash),
            "inputs": done.inputs,
            "excluded": dict(done.excluded),
            "without_consent": done.without_consent,
        }

    job = request.app.state.jobs.start(who, "train", work)
    response.headers["Location"] = f"/v1/jobs/{job}"
    return JobStarted(job=job, status="queued")


@router.get("/v1/segments", response_model=SegmentsOut, responses=ERRORS, **needs("models:read"))
def segments(
    who: PartnerDep,
    crm: CrmDep,
    as_of: Annotated[AwareDatetime | None, Query(description="default: the latest verified event")] = None,
) -> SegmentsOut:
    """RFM segments of your customers and a KMeans scan of k, from verified interactions only."""
    report = models.segments(crm, who, as_of=as_of)
    counts = Counter(row.segment for row in report.rows)
    out = []
    for name, n in counts.most_common():
        rows = [r for r in report.rows if r.segment == name]
        out.append(
            SegmentOut(
                segment=name,
                members=n,
                mean_recency_days=float(sum(r.recency_days for r in rows) / n),
                mean_purchases=float(sum(r.frequency for r in rows) / n),
                mean_spend=float(sum(r.monetary for r in rows) / n),
            )
        )
    scan = report.scan
    return SegmentsOut(
        as_of=report.as_of.isoformat(),
        segments=out,
        kmeans=KScan(
            ks=[int(k) for k in scan.ks],
            silhouette=[float(v) for v in scan.silhouette],
            inertia=[float(v) for v in scan.inertia],
            k_by_silhouette=int(scan.by_silhouette),
            k_by_elbow=int(scan.elbow),
        ),
        excluded=dict(report.excluded),
        without_consent=report.without_consent,
    )
