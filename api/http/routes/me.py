"""A signed-in customer's own data, under /v1/me: profile, consents, points, decisions in words, export.
Every answer is about the member the session signed in as; there is no member in any path."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field

from api.http.deps import CrmDep, CustomerDep, role
from api.http.idempotency import IdempotentRoute
from api.http.problems import responses
from api.http.routes.common import PARTNER_OR_ADDRESS, hexid
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


# --- writes: typed data to sign in the browser, then the signature ----------------------------------------


class TypedData(BaseModel):
    """EIP-712 typed data as eth_signTypedData_v4 and eth-account's sign_typed_data(full_message=...)
    take it."""

    domain: dict[str, Any]
    types: dict[str, list[dict[str, str]]]
    primaryType: str  # noqa: N815 - the EIP-712 JSON field's name
    message: dict[str, Any]


class Signed(BaseModel):
    model_config = ConfigDict(extra="forbid")
    typed_data: TypedData
    signature: str = Field(pattern=r"^0x[0-9a-fA-F]{130}$", description="the 65-byte signature in hex")


PartnerQuery = Annotated[str, Query(pattern=r"^[a-z0-9-]{1,63}$", description="the partner's name")]


@router.get("/consents/typed-data", response_model=TypedData, responses=ERRORS, **CUSTOMER)
def consent_typed_data(
    who: CustomerDep,
    crm: CrmDep,
    partner: PartnerQuery,
    purpose: Annotated[str, Query(max_length=32)],
    status: Annotated[Literal["given", "withdrawn"], Query()],
) -> TypedData:
    """What to sign to give or withdraw your consent towards a partner for a purpose."""
    return TypedData.model_validate(me.consent_typed_data(crm, who, partner, purpose, status))


class ConsentRecorded(BaseModel):
    partner: str
    purpose: str
    status: str
    receipt_hash: str
    block_number: int | None


@router.post("/consents", status_code=201, response_model=ConsentRecorded, responses=ERRORS, **CUSTOMER)
def record_consent(body: Signed, who: CustomerDep, crm: CrmDep) -> ConsentRecorded:
    """Your signed consent, relayed to the chain by the partner it is towards."""
    receipt = me.relay_consent(crm, who, body.typed_data.model_dump(), body.signature)
    return ConsentRecorded(
        partner=receipt.controller,
        purpose=receipt.purpose,
        status=receipt.status.value,
        receipt_hash=hexid(receipt.receipt_hash),
        block_number=receipt.block_number,
    )


@router.get("/points/redeem/typed-data", response_model=TypedData, responses=ERRORS, **CUSTOMER)
def redeem_typed_data(
    who: CustomerDep,
    crm: CrmDep,
    partner: PartnerQuery,
    amount: Annotated[int, Query(ge=1, le=10**12)],
) -> TypedData:
    """What to sign to redeem points at a partner."""
    return TypedData.model_validate(me.redeem_typed_data(crm, who, partner, amount))


class Redeemed(BaseModel):
    partner: str
    amount: int
    balance: int = Field(description="your balance after, from the chain")
    block_number: int | None


@router.post("/points/redeem", status_code=201, response_model=Redeemed, responses=ERRORS, **CUSTOMER)
def redeem(body: Signed, who: CustomerDep, crm: CrmDep) -> Redeemed:
    """Your signed redemption, relayed to the chain by the partner you redeem at."""
    found = me.relay_redeem(crm, who, body.typed_data.model_dump(), body.signature)
    partner = str(body.typed_data.message.get("partner", ""))
    return Redeemed(
        partner=me.partner_name_at(crm, partner),
        amount=found.event.amount,
        balance=found.balance,
        block_number=found.event.block_number,
    )


@router.get("/erasure/typed-data", response_model=TypedData, responses=ERRORS, **CUSTOMER)
def erasure_typed_data(who: CustomerDep, crm: CrmDep) -> TypedData:
    """What to sign to have yourself erased (it cannot be undone)."""
    return TypedData.model_validate(me.erasure_typed_data(crm, who))


class ErasedOut(BaseModel):
    member: str
    receipt_hash: str = Field(description="the erasure receipt's hash, anchored in your home partner's log")
    interactions: int = Field(description="interactions made unreadable")


@router.post("/erasure", response_model=ErasedOut, responses=ERRORS, **CUSTOMER)
def erase_me(body: Signed, who: CustomerDep, crm: CrmDep) -> ErasedOut:
    """Erase yourself, by your signature: your key here is destroyed, so your data can never be read
    again; on chain your consents are withdrawn, your points forfeited and your member id frozen."""
    receipt = me.relay_erasure(crm, who, body.typed_data.model_dump(), body.signature)
    return ErasedOut(
        member=hexid(receipt.member_id),
        receipt_hash=hexid(receipt.receipt_hash),
        interactions=receipt.interactions_count,
    )


class HomeMoved(BaseModel):
    member: str
    previous: str = Field(description="the home partner's address before the move")
    home: str = Field(description="your home partner's address now, from the chain")
    block_number: int


@router.get("/home/typed-data", response_model=TypedData, responses=ERRORS, **CUSTOMER)
def home_move_typed_data(
    who: CustomerDep,
    crm: CrmDep,
    to: Annotated[
        str, Query(pattern=PARTNER_OR_ADDRESS, description="the new home, a partner's name or address")
    ],
) -> TypedData:
    """What to sign to move your home (the partner that acts for you on chain when you do not sign
    yourself) to another partner."""
    return TypedData.model_validate(me.home_move_typed_data(crm, who, to))


@router.post("/home", response_model=HomeMoved, responses=ERRORS, **CUSTOMER)
def move_home(body: Signed, who: CustomerDep, crm: CrmDep) -> HomeMoved:
    """Move your home by your signature, relayed to the chain by the partner that holds your record here."""
    moved = me.relay_home_move(crm, who, body.typed_data.model_dump(), body.signature)
    return HomeMoved(
        member=hexid(moved.member), previous=moved.previous, home=moved.home, block_number=moved.block_number
    )
