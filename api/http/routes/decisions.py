"""Automated decisions: list them (as the chain logged them), show one with its reasons and
counterfactual, disclose one for an auditor, and score customers (a job)."""

from __future__ import annotations

from typing import Annotated, Any, Self

from fastapi import APIRouter, Path, Query, Request, Response
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from api.http.deps import CrmDep, PartnerDep, needs
from api.http.idempotency import IdempotentRoute
from api.http.problems import responses
from api.http.routes.common import MEMBER_PATTERN, OwnMember, hexid, member_bytes
from api.usecases import decisions

router = APIRouter(tags=["decisions"], route_class=IdempotentRoute)
# A disclosure holds personal data (the explanation and its key): it is never kept for an
# Idempotency-Key replay, so its route is not an IdempotentRoute (it changes nothing either).
disclosure_router = APIRouter(tags=["decisions"])
ERRORS = responses(401, 403, 404, 409, 422)
SCORE_PHASES = 5  # the steps `decisions.score` reports
DecisionId = Annotated[int, Path(ge=0, le=2**63 - 1, description="the decision's id on chain")]


class DecisionLineOut(BaseModel):
    decision_id: int
    member: str
    model_id: int
    score_bps: int = Field(description="churn score in basis points")
    action: str
    block_number: int
    in_store: bool = Field(description="the store holds a record of it that matches the chain's")


class DecisionOut(BaseModel):
    decision_id: int
    member: str
    model_id: int
    block_number: int
    as_of: str
    score: float
    score_bps: int
    action: str
    reasons: list[dict[str, Any]] = Field(description="the top reasons: feature, meaning, direction")
    counterfactual: dict[str, Any] | None = Field(description="the smallest change that flips the action")
    explanation: dict[str, Any] = Field(description="the whole explanation: features, the model's terms")


class Disclosure(BaseModel):
    format: str
    decisionId: int  # noqa: N815 (the disclosure file's own spelling, as `decision disclose` writes it)
    explanation: str = Field(description="the explanation's RFC 8785 bytes")
    key: str = Field(description="the one key its on-chain commitment is under")


class ScoreIn(BaseModel):
    """`{"member": "0x…"}` or `{"all": true}`."""

    model_config = ConfigDict(extra="forbid")
    member: str | None = Field(default=None, pattern=MEMBER_PATTERN)
    all: bool = False
    model: int | None = Field(default=None, ge=0, le=2**63 - 1, description="default: your latest")
    as_of: AwareDatetime | None = Field(default=None, description="default: from the data")

    @model_validator(mode="after")
    def _one_of(self) -> Self:
        if (self.member is None) == (not self.all):
            raise ValueError('give "member" or "all": true (not both)')
        return self


class JobStarted(BaseModel):
    job: str = Field(description="the job's id: follow it at /v1/jobs/{job}")
    status: str


def _lines(found: list[decisions.DecisionLine]) -> list[DecisionLineOut]:
    return [
        DecisionLineOut(
            decision_id=line.decision_id,
            member=hexid(line.member),
            model_id=line.model_id,
            score_bps=line.score_bps,
            action=line.action,
            block_number=line.block_number,
            in_store=line.in_store,
        )
        for line in found
    ]


@router.get(
    "/v1/customers/{member}/decisions",
    response_model=list[DecisionLineOut],
    responses=ERRORS,
    **needs("decisions:read"),
)
def member_decisions(member: OwnMember, who: PartnerDep, crm: CrmDep) -> list[DecisionLineOut]:
    """Your decisions about this customer, as the chain logged them."""
    return _lines(decisions.list_decisions(crm, who, member))


@router.get(
    "/v1/decisions", response_model=list[DecisionLineOut], responses=ERRORS, **needs("decisions:read")
)
def list_decisions(
    who: PartnerDep,
    crm: CrmDep,
    member: Annotated[str | None, Query(pattern=MEMBER_PATTERN, description="one customer")] = None,
) -> list[DecisionLineOut]:
    """Your decisions as the chain logged them (of one customer, or all)."""
    return _lines(decisions.list_decisions(crm, who, None if member is None else member_bytes(member)))


@router.get(
    "/v1/decisions/{decision_id}", response_model=DecisionOut, responses=ERRORS, **needs("decisions:read")
)
def show_decision(decision_id: DecisionId, who: PartnerDep, crm: CrmDep) -> DecisionOut:
    """One of your decisions: score, action, reasons and counterfactual (decrypted: personal data)."""
    shown = decisions.show_decision(crm, who, decision_id)
    e = shown.explanation
    return DecisionOut(
        decision_id=shown.decision_id,
        member=hexid(shown.member),
        model_id=shown.model_id,
        block_number=shown.block_number,
        as_of=e["asOf"],
        score=e["score"],
        score_bps=e["scoreBps"],
        action=e["action"],
        reasons=e["reasons"],
        counterfactual=e["counterfactual"],
        explanation=e,
    )


@disclosure_router.post(
    "/v1/decisions/{decision_id}/disclosure",
    response_model=Disclosure,
    responses=ERRORS,
    **needs("decisions:read"),
)
def disclose(decision_id: DecisionId, who: PartnerDep, crm: CrmDep, response: Response) -> Disclosure:
    """What an auditor needs to reproduce this decision bit for bit without any other key: its
    explanation and the one key its commitment is under (personal data: hand it to the auditor only)."""
    response.headers["Cache-Control"] = "no-store"
    return Disclosure.model_validate(decisions.disclose_decision(crm, who, decision_id))


@router.post(
    "/v1/scores",
    status_code=202,
    response_model=JobStarted,
    responses=ERRORS,
    **needs("decisions:write"),
)
def score(body: ScoreIn, who: PartnerDep, crm: CrmDep, request: Request, response: Response) -> JobStarted:
    """Score one customer or all of yours with a registered model and log each decision on chain: a
    job (202, `Location: /v1/jobs/{id}`); its result counts what was decided and skipped. What the
    scoring would refuse (another partner's member, a model not yours) is refused now."""
    members = None if body.member is None else [member_bytes(body.member)]
    decisions.check_score(crm, who, members, body.model, body.as_of)

    def work(progress: Any) -> dict[str, Any]:
        steps = [0]

        def step(what: str) -> None:  # the use case names its phases (five): each moves the bar on
            steps[0] += 1
            progress(min(steps[0] / SCORE_PHASES, 1.0), what)

        report = decisions.score(crm, who, members, model_id=body.model, as_of=body.as_of, step=step)
        return {
            "model_id": report.model_id,
            "as_of": report.as_of.isoformat(),
            "decided": len(report.decided),
            "decision_ids": report.decided,
            "actions": dict(report.actions),
            "skipped_for_consent": report.skipped_for_consent,
            "inputs_excluded": dict(report.inputs_excluded),
            "no_inputs": report.no_inputs,
            "outside_population": report.outside_population,
            "erased": report.erased,
        }

    job = request.app.state.jobs.start(who, "score", work)
    response.headers["Location"] = f"/v1/jobs/{job}"
    return JobStarted(job=job, status="queued")
