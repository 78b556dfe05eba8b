"""Consortium governance: proposals to admit or remove members, and votes, each cast with your own
partner key (a strict majority of the current partners executes a proposal)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Path, Response
from pydantic import BaseModel, ConfigDict, Field

from api.http.deps import CrmDep, PartnerDep, needs
from api.http.idempotency import IdempotentRoute
from api.http.problems import responses
from api.usecases import governance

router = APIRouter(prefix="/v1/governance", tags=["governance"], route_class=IdempotentRoute)
ERRORS = responses(401, 403, 409, 422)
ProposalId = Annotated[int, Path(ge=0, le=2**63 - 1, description="the proposal's number")]


class ProposalOut(BaseModel):
    proposal_id: int
    action: str
    account: str
    proposer: str
    executed: bool
    votes: int = Field(description="votes of current partners")
    partners: int = Field(description="current partners (a strict majority executes)")
    expires_at: datetime


class ProposalIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    action: Literal["admit-partner", "admit-auditor", "remove"]
    account: str = Field(pattern=r"^0x[0-9a-fA-F]{40}$", description="the account's address")


class ProposalState(BaseModel):
    proposal_id: int
    executed: bool


@router.get("/proposals", response_model=list[ProposalOut], responses=ERRORS, **needs("governance:read"))
def proposals(who: PartnerDep, crm: CrmDep) -> list[ProposalOut]:
    """Every proposal, oldest first, with its votes from current partners and its expiry."""
    return [
        ProposalOut(
            proposal_id=p.proposal_id,
            action=p.action,
            account=p.account,
            proposer=p.proposer,
            executed=p.executed,
            votes=p.votes,
            partners=p.partners,
            expires_at=p.expires_at,
        )
        for p in governance.proposals(crm, who)
    ]


@router.post(
    "/proposals", status_code=201, response_model=ProposalState, responses=ERRORS, **needs("governance:write")
)
def propose(body: ProposalIn, who: PartnerDep, crm: CrmDep, response: Response) -> ProposalState:
    """Propose admitting or removing an account, with your vote."""
    outcome = governance.propose(crm, who, body.action, body.account)
    response.headers["Location"] = "/v1/governance/proposals"
    return ProposalState(proposal_id=outcome.proposal_id, executed=outcome.executed)


@router.post(
    "/proposals/{proposal_id}/votes",
    response_model=ProposalState,
    responses=ERRORS,
    **needs("governance:write"),
)
def vote(proposal_id: ProposalId, who: PartnerDep, crm: CrmDep) -> ProposalState:
    """Vote for a proposal; it executes once a strict majority of the current partners voted."""
    outcome = governance.vote(crm, who, proposal_id)
    return ProposalState(proposal_id=proposal_id, executed=outcome.executed)


@router.post(
    "/proposals/{proposal_id}/execute",
    response_model=ProposalState,
    responses=ERRORS,
    **needs("governance:write"),
)
def execute(proposal_id: ProposalId, who: PartnerDep, crm: CrmDep) -> ProposalState:
    """Execute a proposal whose votes became a majority because partners left since."""
    governance.execute(crm, who, proposal_id)
    return ProposalState(proposal_id=proposal_id, executed=True)
