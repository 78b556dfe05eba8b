"""A customer's consent: its history (each event checked against the chain), whether it is valid at a
time (the chain answers), and giving or withdrawing it."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal, Self

from fastapi import APIRouter, Path, Query
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from api.http.deps import CrmDep, PartnerDep, needs
from api.http.idempotency import IdempotentRoute
from api.http.problems import responses
from api.http.routes.common import SIGNATURE, OwnMember, ReachableMember, hexid, signed_message, utc
from api.usecases import consent
from ledger.clients import PURPOSES

router = APIRouter(prefix="/v1/customers", tags=["consent"], route_class=IdempotentRoute)
ERRORS = responses(401, 403, 404, 409, 422)


class ConsentEventOut(BaseModel):
    controller: str = Field(description="the partner the consent is towards")
    purpose: str
    status: Literal["given", "withdrawn"]
    recorded_at: datetime
    expires_at: datetime | None
    collection_method: str
    notice_version: str
    receipt_hash: str = Field(description="the receipt's hash, as the chain holds it")
    block_number: int | None = Field(description="null: not on chain yet")
    on_chain: bool = Field(description="the chain's record of this receipt matches it")


class ConsentCheck(BaseModel):
    member: str
    partner: str
    purpose: str
    at: datetime | None = Field(description="null: now")
    valid: bool


class ConsentIn(BaseModel):
    """Give or withdraw: attested by you as the member's home partner, or, for a withdrawal, recorded
    by you towards yourself. A member holding its own key signs its consent, at any partner: send what
    she signed (`ledgercrm customer sign consent-give|consent-withdraw` writes it: `typedData`,
    `signature`, `receipt`) as `typed_data`, `signature` and `receipt`; you relay it."""

    model_config = ConfigDict(extra="forbid")
    purpose: str = Field(min_length=1, max_length=64, description=f"one of {', '.join(PURPOSES)}")
    status: Literal["given", "withdrawn"]
    expires_at: AwareDatetime | None = Field(default=None, description="a given consent's expiry")
    collection_method: str = Field(default="api", min_length=1, max_length=100)
    typed_data: dict[str, Any] | None = Field(default=None, description="the EIP-712 typed data she signed")
    signature: str | None = Field(default=None, pattern=SIGNATURE, description="her signature: 0x + 65 bytes")
    receipt: dict[str, Any] | None = Field(
        default=None, description="the consent receipt document her signature commits to"
    )

    @model_validator(mode="after")
    def _coherent(self) -> Self:
        if self.status == "withdrawn" and self.expires_at is not None:
            raise ValueError("expires_at is for a consent given, not a withdrawal")
        if (self.typed_data is None) != (self.signature is None) or (
            self.receipt is not None and self.signature is None
        ):
            raise ValueError("a signed consent comes with typed_data, signature and receipt together")
        return self


class ConsentRecorded(BaseModel):
    member: str
    purpose: str
    status: Literal["given", "withdrawn"]
    receipt_hash: str
    block_number: int | None


@router.get(
    "/{member}/consents",
    response_model=list[ConsentEventOut],
    responses=ERRORS,
    **needs("consent:read"),
)
def consent_history(member: OwnMember, who: PartnerDep, crm: CrmDep) -> list[ConsentEventOut]:
    """Every consent event of your customer, towards every partner, oldest first, each checked against
    the chain's history."""
    return [
        ConsentEventOut(
            controller=e.receipt.controller,
            purpose=e.receipt.purpose,
            status=e.receipt.status.value,
            recorded_at=utc(e.receipt.recorded_at),
            expires_at=None if e.receipt.expires_at is None else utc(e.receipt.expires_at),
            collection_method=e.receipt.collection_method,
            notice_version=e.receipt.notice_version,
            receipt_hash=hexid(e.receipt.receipt_hash),
            block_number=e.receipt.block_number,
            on_chain=e.on_chain,
        )
        for e in consent.consent_history(crm, who, member)
    ]


@router.get(
    "/{member}/consents/{purpose}",
    response_model=ConsentCheck,
    responses=ERRORS,
    **needs("consent:read"),
)
def consent_check(
    member: OwnMember,
    purpose: Annotated[str, Path(max_length=64, description=f"one of {', '.join(PURPOSES)}")],
    who: PartnerDep,
    crm: CrmDep,
    at: Annotated[AwareDatetime | None, Query(description="ISO 8601 time with a zone; default: now")] = None,
    partner: Annotated[str | None, Query(max_length=100, description="the controller (default: you)")] = None,
) -> ConsentCheck:
    """Whether the chain holds valid consent of your customer, for the purpose, towards you (or another
    partner), now or at a time."""
    controller = partner or who.acting_partner()
    valid = consent.consent_valid(crm, who, controller, member, purpose, at)
    return ConsentCheck(member=hexid(member), partner=controller, purpose=purpose, at=at, valid=valid)


@router.post(
    "/{member}/consents",
    status_code=201,
    response_model=ConsentRecorded,
    responses=ERRORS,
    **needs("consent:write"),
)
def record_consent(member: ReachableMember, body: ConsentIn, who: PartnerDep, crm: CrmDep) -> ConsentRecorded:
    """Give or withdraw the member's consent towards you, for a purpose. Recorded on chain before the
    answer; a refusal (the chain's or ours) writes nothing."""
    terms = consent.ConsentTerms(collection_method=body.collection_method)
    signed = signed_message(body.typed_data, body.signature, body.receipt)
    if body.status == "given":
        receipt = consent.give_consent(
            crm, who, member, body.purpose, expires_at=body.expires_at, terms=terms, signed=signed
        )
    else:
        receipt = consent.withdraw_consent(crm, who, member, body.purpose, terms=terms, signed=signed)
    return ConsentRecorded(
        member=hexid(member),
        purpose=receipt.purpose,
        status=receipt.status.value,
        receipt_hash=hexid(receipt.receipt_hash),
        block_number=receipt.block_number,
    )
