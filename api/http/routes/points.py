"""A customer's coalition points: earn, redeem, and the balance with every earn and redeem."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal, Self

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field, model_validator

from api.http.deps import CrmDep, PartnerDep, needs
from api.http.idempotency import IdempotentRoute
from api.http.problems import responses
from api.http.routes.common import SIGNATURE, OwnMember, ReachableMember, hexid, signed_message, utc
from api.usecases import loyalty

router = APIRouter(prefix="/v1/customers", tags=["points"], route_class=IdempotentRoute)
ERRORS = responses(401, 403, 404, 409, 422)


class PointsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    amount: int = Field(description=f"whole points, 1 to {loyalty.MAX_POINTS_PER_EVENT:,}")
    external_key: str | None = Field(
        default=None, min_length=1, max_length=200, description="your key for the event (e.g. an invoice)"
    )


class RedeemIn(PointsIn):
    """A member holding its own key signs its redemption, at any partner: send what she signed
    (`ledgercrm customer sign redeem` writes it) as `typed_data` and `signature`; you relay it."""

    typed_data: dict[str, Any] | None = Field(default=None, description="the EIP-712 typed data she signed")
    signature: str | None = Field(default=None, pattern=SIGNATURE, description="her signature: 0x + 65 bytes")

    @model_validator(mode="after")
    def _both(self) -> Self:
        if (self.typed_data is None) != (self.signature is None):
            raise ValueError("a signed redemption comes with typed_data and signature together")
        return self


class PointsDone(BaseModel):
    member: str
    kind: Literal["earn", "redeem"]
    amount: int
    balance: int = Field(description="the member's coalition balance right after, from the chain")
    block_number: int | None


class PointsLineOut(BaseModel):
    kind: Literal["earn", "redeem"]
    amount: int
    partner: str
    external_key: str | None
    block_number: int | None = Field(description="null: not confirmed on chain (yet)")
    recorded_at: datetime


class PointsOut(BaseModel):
    member: str
    balance: int = Field(description="from the chain")
    history: list[PointsLineOut] = Field(description="every earn and redeem, oldest first, at any partner")


def _done(member: bytes, receipt: loyalty.PointsReceipt) -> PointsDone:
    event = receipt.event
    return PointsDone(
        member=hexid(member),
        kind=event.kind.value,
        amount=event.amount,
        balance=receipt.balance,
        block_number=event.block_number,
    )


@router.post(
    "/{member}/points/earn",
    status_code=201,
    response_model=PointsDone,
    responses=ERRORS,
    **needs("points:write"),
)
def earn(member: ReachableMember, body: PointsIn, who: PartnerDep, crm: CrmDep) -> PointsDone:
    """Issue points to the member (needs its valid loyalty consent towards you, as the chain says)."""
    request = loyalty.PointsRequest(member, body.amount, body.external_key)
    return _done(member, loyalty.earn_points(crm, who, request))


@router.post(
    "/{member}/points/redeem",
    status_code=201,
    response_model=PointsDone,
    responses=ERRORS,
    **needs("points:write"),
)
def redeem(member: ReachableMember, body: RedeemIn, who: PartnerDep, crm: CrmDep) -> PointsDone:
    """Redeem the member's points at you: for a member without a key of its own, by its home partner;
    a member holding its own key signs its redemption (at any partner), which you relay."""
    request = loyalty.PointsRequest(member, body.amount, body.external_key)
    signed = signed_message(body.typed_data, body.signature)
    return _done(member, loyalty.redeem_points(crm, who, request, signed=signed))


@router.get("/{member}/points", response_model=PointsOut, responses=ERRORS, **needs("points:read"))
def points(member: OwnMember, who: PartnerDep, crm: CrmDep) -> PointsOut:
    """Your customer's coalition balance and every earn and redeem, with the partner and the block."""
    statement = loyalty.points_statement(crm, who, member)
    return PointsOut(
        member=hexid(member),
        balance=statement.balance,
        history=[
            PointsLineOut(
                kind=line.kind.value,
                amount=line.amount,
                partner=line.partner,
                external_key=line.external_key,
                block_number=line.block_number,
                recorded_at=utc(line.recorded_at),
            )
            for line in statement.lines
        ],
    )
