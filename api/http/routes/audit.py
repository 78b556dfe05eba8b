"""The auditor's API under /v1/audit: each partner's log (heads, inclusion, consistency), a verification
run in auditor mode (a job), decision verification (with a partner's disclosure where given), erasure
receipts, settlement positions. Hashes, proofs, ids and figures only: never personal data."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from api.http.deps import AuditorDep, CrmDep, role
from api.http.idempotency import IdempotentRoute
from api.http.problems import responses
from api.http.routes.common import hexid
from api.usecases import decisions, logs, partners, verification

router = APIRouter(prefix="/v1/audit", tags=["audit"], route_class=IdempotentRoute)
ERRORS = responses(401, 403, 404, 409, 422)
PartnerPath = Annotated[str, Path(pattern=r"^[a-z0-9-]{1,63}$", description="the partner's name")]
AUDITOR = role("auditor")


class HeadOut(BaseModel):
    batch_id: int
    size: int
    root: str
    block_number: int


class LogOut(BaseModel):
    address: str
    partner: str | None
    heads: list[HeadOut]


def _head(head: logs.Head) -> HeadOut:
    return HeadOut(
        batch_id=head.batch_id, size=head.size, root=hexid(head.root), block_number=head.block_number
    )


@router.get("/logs", response_model=list[LogOut], responses=ERRORS, **AUDITOR)
def log_heads(who: AuditorDep, crm: CrmDep) -> list[LogOut]:
    """Every partner's log: each head anchored on chain, oldest first, with its block."""
    return [
        LogOut(address=found.address, partner=found.partner, heads=[_head(h) for h in found.heads])
        for found in logs.log_heads(crm, who)
    ]


class InclusionOut(BaseModel):
    partner: str
    leaf_index: int
    leaf_hash: str
    proof: list[str] = Field(description="RFC 9162 audit path: sibling hashes from the leaf up")
    head: HeadOut
    verified_on_chain: bool = Field(description="the InteractionAnchor contract's own verdict")


@router.get("/logs/{partner}/leaves/{leaf_index}", response_model=InclusionOut, responses=ERRORS, **AUDITOR)
def inclusion(partner: PartnerPath, leaf_index: int, who: AuditorDep, crm: CrmDep) -> InclusionOut:
    """A leaf of a partner's log and its inclusion proof to the head that anchored it."""
    found = logs.inclusion(crm, who, partner, leaf_index)
    return InclusionOut(
        partner=found.partner,
        leaf_index=found.leaf_index,
        leaf_hash=hexid(found.leaf_hash),
        proof=[hexid(p) for p in found.proof],
        head=_head(found.head),
        verified_on_chain=found.verified_on_chain,
    )


class ConsistencyStepOut(BaseModel):
    old: HeadOut
    new: HeadOut
    proof: list[str] = Field(description="RFC 9162 consistency proof from old to new")
    verified_on_chain: bool


@router.get(
    "/logs/{partner}/consistency", response_model=list[ConsistencyStepOut], responses=ERRORS, **AUDITOR
)
def consistency(
    partner: PartnerPath,
    who: AuditorDep,
    crm: CrmDep,
    first: Annotated[int, Query(ge=1, le=2**62, description="the smaller head's size")],
    second: Annotated[int, Query(ge=1, le=2**62, description="the larger head's size")],
) -> list[ConsistencyStepOut]:
    """That the head of `second` leaves extends the head of `first` leaves: one proof per head between."""
    return [
        ConsistencyStepOut(
            old=_head(step.old),
            new=_head(step.new),
            proof=[hexid(p) for p in step.proof],
            verified_on_chain=step.verified_on_chain,
        )
        for step in logs.consistency(crm, who, partner, first, second)
    ]


class Started(BaseModel):
    job: str
    location: str


@router.post("/verifications", status_code=202, response_model=Started, responses=ERRORS, **AUDITOR)
def start_verification(who: AuditorDep, request: Request, response: Response) -> Started:
    """Verify every log, receipt and point event held here from the chain down, without any key (a
    job: its result lists what was checked and every finding)."""
    crm = request.app.state.crm

    def work(progress: Any) -> dict[str, Any]:
        progress(0.0, "verifying from the chain down")
        report = verification.verify(crm, who, auditor=True)
        return {
            "ok": not report.failures,
            "checked": [str(check.value) for check in report.checks],
            "counts": {str(k.value): v for k, v in report.counts.items()},
            "findings": [
                {"record": r.label, "outcome": r.outcome.value, "detail": r.detail} for r in report.problems
            ],
        }

    job_id = request.app.state.jobs.start(who, "verification", work, writes=False)
    response.headers["Location"] = f"/v1/jobs/{job_id}"
    return Started(job=job_id, location=f"/v1/jobs/{job_id}")


class Disclosure(BaseModel):
    model_config = ConfigDict(extra="allow")


class DecisionCheck(BaseModel):
    name: str
    ok: bool
    detail: str


class DecisionVerificationOut(BaseModel):
    decision_id: int
    reproduced: bool = Field(description="every check ran and held")
    checks: list[DecisionCheck]
    not_run: list[str] = Field(description="checks that need a key the auditor does not hold")


@router.post(
    "/decisions/{decision_id}/verification",
    response_model=DecisionVerificationOut,
    responses=ERRORS,
    **AUDITOR,
)
def verify_decision(
    decision_id: int, who: AuditorDep, crm: CrmDep, disclosure: Disclosure | None = None
) -> DecisionVerificationOut:
    """Check a decision from the chain down, with the deciding partner's disclosure if you have one."""
    found = decisions.verify_decision(
        crm,
        who,
        decision_id,
        auditor=True,
        disclosure=None if disclosure is None or not disclosure.model_extra else disclosure.model_dump(),
    )
    return DecisionVerificationOut(
        decision_id=found.decision_id,
        reproduced=found.ok,
        checks=[DecisionCheck(name=s.name, ok=s.ok, detail=s.detail) for s in found.steps],
        not_run=found.not_run,
    )


class ErasureOut(BaseModel):
    partner: str
    member: str
    erased_at: str
    receipt_hash: str
    leaf_index: int | None
    anchored: bool
    erased_on_chain: bool


@router.get("/erasures", response_model=list[ErasureOut], responses=ERRORS, **AUDITOR)
def erasures(who: AuditorDep, crm: CrmDep) -> list[ErasureOut]:
    """Every erasure receipt held here, with the chain's erased flag for its member."""
    return [
        ErasureOut(
            partner=e.partner,
            member=hexid(e.member),
            erased_at=e.erased_at,
            receipt_hash=hexid(e.receipt_hash),
            leaf_index=e.leaf_index,
            anchored=e.batch_id is not None,
            erased_on_chain=e.erased_on_chain,
        )
        for e in logs.erasure_receipts(crm, who)
    ]


class PositionOut(BaseModel):
    partner: str
    address: str
    issued: int
    redeemed: int
    net: int


@router.get("/settlement", response_model=list[PositionOut], responses=ERRORS, **AUDITOR)
def settlement(who: AuditorDep, crm: CrmDep) -> list[PositionOut]:
    """Every partner's settlement position, from the chain."""
    return [
        PositionOut(partner=p.name, address=p.address, issued=p.issued, redeemed=p.redeemed, net=p.net)
        for p in partners.coalition_positions(crm, who)
    ]
