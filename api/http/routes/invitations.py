"""Invitations: a customer enrolled without a key makes one in her browser and binds it with the one-time
code her home partner gave her (`ledgercrm customer invite`). The code is her only credential here, so
it travels in the request body, never in a path or query a proxy or an access log would keep."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from api.http.deps import CrmDep, role
from api.http.problems import responses
from api.http.routes.me import Signed, TypedData
from api.usecases import invitations, signing

router = APIRouter(prefix="/v1/invitations", tags=["invitations"])
ERRORS = responses(404, 409, 410, 422)
Code = Field(min_length=1, max_length=100, description="the invitation's one-time code")


class BindingRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    code: str = Code
    signer: str = Field(pattern=r"^0x[0-9a-fA-F]{40}$", description="the address of the key made for it")


class BindingTypedData(BaseModel):
    member: str = Field(description="the member id the invitation is for")
    typed_data: TypedData


class Binding(Signed):
    code: str = Code


class Bound(BaseModel):
    member: str
    signer: str = Field(description="the key now bound to the member on chain: sign in with it")


@router.post("/binding/typed-data", response_model=BindingTypedData, responses=ERRORS, **role("public"))
def binding_typed_data(body: BindingRequest, crm: CrmDep) -> BindingTypedData:
    """What the new key signs to be bound to the invited member (EIP-712 SignerBinding)."""
    member, typed = invitations.invitation_typed_data(crm, body.code, body.signer)
    return BindingTypedData(member="0x" + member.hex(), typed_data=TypedData.model_validate(typed))


@router.post("/binding", response_model=Bound, responses=ERRORS, **role("public"))
def bind(body: Binding, crm: CrmDep) -> Bound:
    """Bind the key that signed the binding to the invited member, on chain; the code is then used.
    Sign in with that key afterwards (POST /v1/auth/challenge)."""
    signed = signing.SignedMessage(body.typed_data.model_dump(), bytes.fromhex(body.signature[2:]))
    done = invitations.accept_invitation(crm, body.code, signed)
    return Bound(member="0x" + done.member.hex(), signer=done.signer)
