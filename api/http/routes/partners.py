"""The coalition as a partner sees it: settlement positions."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, Field

from api.http.deps import CrmDep, PartnerDep, needs
from api.http.problems import responses
from api.usecases import partners

router = APIRouter(prefix="/v1", tags=["coalition"])


class PositionOut(BaseModel):
    partner: str
    address: str
    issued: int = Field(description="points this partner issued")
    redeemed: int = Field(description="points redeemed at this partner")
    net: int = Field(description="redeemed minus issued: what the coalition owes the partner, if positive")


@router.get(
    "/settlement", response_model=list[PositionOut], responses=responses(401, 403), **needs("points:read")
)
def settlement(who: PartnerDep, crm: CrmDep) -> list[PositionOut]:
    """Every partner's settlement position, from the chain (the same figures for every partner)."""
    return [
        PositionOut(partner=p.name, address=p.address, issued=p.issued, redeemed=p.redeemed, net=p.net)
        for p in partners.coalition_positions(crm, who)
    ]
