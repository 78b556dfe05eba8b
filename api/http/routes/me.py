"""A signed-in customer's own data, under /v1/me: profile, consents, points, decisions in words, export.
Every answer is about the member the session signed in as; there is no member in any path."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, Field

from api.http.deps import CrmDep, CustomerDep, role
from api.http.idempotency import IdempotentRoute
from api.http.problems import responses
from api.http.routes.common import hexid
from api.usecases import me

router = APIRouter(prefix="/v1/me", tags=["me"], route_class=IdempotentRoute)
ERRORS = responses(401, 403, 404, 409, 422)
CUSTOMER = role("customer")


class Profile(BaseModel):
    member: str
    partner: str = Field(description="the partner that holds your record here")
    status: str
    personal_data: dict[str, Any]


@router.get("", response_model=Profile, responses=ERRORS, **CUSTOMER)
def profile(who: CustomerDep, crm: CrmDep) -> Profile:
    """Your own record, decrypted."""
    view = me.profile(crm, who)
    return Profile(
        member=hexid(view.member_id), partner=view.partner, status=view.status.value, personal_data=view.pii
    )


class ConsentStateOut(BaseModel):
    partner: str
    purpose: str
    valid: bool = Field(description="the chain's answer, now")
    status: str | None = Field(description="the latest event: given or withdrawn; null: never asked")
    notice_version: str | None
    recorded_at: datetime | None
    on_chain: bool


class ConsentEventOut(BaseModel):
    partner: str
    purpose: str
    status: str
    notice_version: str
    recorded_at: datetime
    block_number: int | None
    on_chain: bool


class Consents(BaseModel):
    consents: list[ConsentStateOut] = Field(description="each partner x purpose")
    history: list[ConsentEventOut] = Field(description="every consent event, oldest first")


@router.get("/consents", response_model=Consents, responses=ERRORS, **CUSTOMER)
def consents(who: CustomerDep, crm: CrmDep) -> Consents:
    """Your consent towards each partner for each purpose, and its history."""
    found = me.consents(crm, who)
    return Consents(
        consents=[ConsentStateOut(**s.__dict__) for s in found.states],
        history=[
            ConsentEventOut(
                partner=e.receipt.controller,
                purpose=e.receipt.purpose,
                status=e.receipt.status.value,
                notice_version=e.receipt.notice_version,
                recorded_at=e.receipt.recorded_at,
                block_number=e.receipt.block_number,
                on_chain=e.on_chain,
            )
            for e in found.history
        ],
    )


class PointsLineOut(BaseModel):
    kind: str
    amount: int
    partner: str
    block_number: int | None
    recorded_at: datetime


class PointsOut(BaseModel):
    balance: int
    history: list[PointsLineOut]


@router.get("/points", response_model=PointsOut, responses=ERRORS, **CUSTOMER)
def points(who: CustomerDep, crm: CrmDep) -> PointsOut:
    """Your coalition points (from the chain) and every earn and redemption."""
    found = me.points(crm, who)
    return PointsOut(
        balance=found.balance,
        history=[
            PointsLineOut(
                kind=line.kind.value,
                amount=line.amount,
                partner=line.partner,
                block_number=line.block_number,
                recorded_at=line.recorded_at,
            )
            for line in found.history
        ],
    )


class DecisionOut(BaseModel):
    decision_id: int
    partner: str
    model_id: int
    block_number: int
    as_of: str
    score: float
    action: str
    outcome: str = Field(description="the decision, in words")
    reasons: list[str] = Field(description="the main reasons, in words, most important first")
    what_would_change: str = Field(description="what would have changed the outcome, in words")


@router.get("/decisions", response_model=list[DecisionOut], responses=ERRORS, **CUSTOMER)
def decisions(who: CustomerDep, crm: CrmDep) -> list[DecisionOut]:
    """Every automated decision about you, with its reasons and what would change it (GDPR Art. 22)."""
    return [DecisionOut(**d.__dict__) for d in me.my_decisions(crm, who)]


@router.get("/export", response_model=dict[str, Any], responses=ERRORS, **CUSTOMER)
def export(who: CustomerDep, crm: CrmDep) -> dict[str, Any]:
    """Everything held on you here, as JSON."""
    return me.export_all(crm, who)
