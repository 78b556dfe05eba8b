"""A partner's customers: create, list (search, cursor paging), show, update, erase, export; and
everything about one customer under /v1/customers/{member}/..."""

from __future__ import annotations

import base64
import binascii
from typing import Annotated, Any

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel, ConfigDict, EmailStr, Field

from api.errors import InvalidInput
from api.http.deps import CrmDep, PartnerDep, needs
from api.http.idempotency import IdempotentRoute
from api.http.problems import responses
from api.http.routes.common import MemberPath, hexid, member_bytes
from api.usecases import customer_keys, customers, erasure, export, models, signing
from api.usecases.timeline import customer_timeline as timeline_of
from offchain.models import CustomerCreate

router = APIRouter(prefix="/v1/customers", tags=["customers"], route_class=IdempotentRoute)
ERRORS = responses(401, 403, 404, 409, 422)


class SignedBinding(BaseModel):
    model_config = ConfigDict(extra="forbid")
    typed_data: dict[str, Any]
    signature: str = Field(pattern=r"^0x[0-9a-fA-F]{130}$")


class CustomerIn(BaseModel):
    """The fields of `ledgercrm customer add`."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=200)
    email: EmailStr | None = Field(default=None, max_length=320)
    phone: str | None = Field(default=None, max_length=50)
    country: str | None = Field(default=None, pattern=r"^[A-Z]{2}$", description="ISO 3166-1 alpha-2")
    address: str | None = Field(default=None, max_length=500)
    external_ref: str | None = Field(default=None, max_length=200, description="your own customer number")
    signer: str | None = Field(
        default=None, pattern=r"^0x[0-9a-fA-F]{40}$", description="the address of a key the customer holds"
    )
    binding: SignedBinding | None = Field(
        default=None,
        description="with `signer`: the key's own signature of its binding to a member id, made on the"
        " typed data GET /v1/customers/typed-data/binding handed out",
    )


class CustomerUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str | None = Field(default=None, min_length=1, max_length=200)
    email: EmailStr | None = Field(default=None, max_length=320)
    phone: str | None = Field(default=None, max_length=50)
    country: str | None = Field(default=None, pattern=r"^[A-Z]{2}$")
    address: str | None = Field(default=None, max_length=500)


class Created(BaseModel):
    member: str = Field(description="the new member id")


class Updated(BaseModel):
    member: str
    changed: list[str]


class CustomerOut(BaseModel):
    member: str
    status: str
    name: str | None = None
    email: str | None = None
    phone: str | None = None
    country: str | None = None
    address: str | None = None
    external_ref: str | None = None


class CustomerList(BaseModel):
    customers: list[CustomerOut]
    total: int = Field(description="customers that match, on every page")
    next_cursor: str | None = Field(description="pass as `cursor` for the next page; null on the last")


class Erased(BaseModel):
    member: str
    receipt_hash: str = Field(description="the erasure receipt's hash, anchored in your log")
    interactions: int = Field(description="interactions made unreadable")
    batch: int = Field(description="the on-chain batch that anchored the receipt")


def _out(view: customers.CustomerView) -> CustomerOut:
    fields = {k: v for k, v in view.pii.items() if k in CustomerOut.model_fields}
    return CustomerOut(member=hexid(view.member_id), status=view.status.value, **fields)


def _page_of(cursor: str | None) -> int:
    # the cursor is opaque to clients; inside, the next page's number
    if cursor is None:
        return 1
    try:
        page = int(base64.urlsafe_b64decode(cursor.encode() + b"=" * (-len(cursor) % 4)).decode())
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise InvalidInput("cursor: not a cursor this API gave out") from None
    if not 1 <= page <= 10**9:
        raise InvalidInput("cursor: not a cursor this API gave out")
    return page


def _cursor(page: int) -> str:
    return base64.urlsafe_b64encode(str(page).encode()).decode().rstrip("=")


@router.post("", status_code=201, response_model=Created, responses=ERRORS, **needs("customers:write"))
def create_customer(body: CustomerIn, who: PartnerDep, crm: CrmDep, response: Response) -> Created:
    """Register a customer (its data sealed under a new key; enrolled on chain with you as its home)."""
    data = CustomerCreate.model_validate(body.model_dump(exclude={"signer", "binding"}, exclude_none=True))
    if body.binding is None:
        member = customers.register_customer(crm, who, data, signer=body.signer)
    elif body.signer is None:
        raise InvalidInput("binding goes with signer: the key it binds")
    else:
        signed = signing.signed_message(body.binding.typed_data, body.binding.signature, source="binding")
        member = customer_keys.register_keyed_customer(crm, who, data, body.signer, signed)
    response.headers["Location"] = f"/v1/customers/{hexid(member)}"
    return Created(member=hexid(member))


class BindingTypedData(BaseModel):
    member: str = Field(description="the new customer's member id, which the key signs its binding to")
    typed_data: dict[str, Any] = Field(description="EIP-712 typed data for the customer's key to sign")


@router.get(
    "/typed-data/binding", response_model=BindingTypedData, responses=ERRORS, **needs("customers:write")
)
def binding_typed_data(
    who: PartnerDep,
    crm: CrmDep,
    signer: Annotated[str, Query(pattern=r"^0x[0-9a-fA-F]{40}$", description="the customer's key's address")],
) -> BindingTypedData:
    """What a new customer's own key signs so that you may enrol her with it (POST with `binding`)."""
    member, typed = signing.binding_typed_data(crm, signer)
    return BindingTypedData(member=hexid(member), typed_data=typed)


@router.get("", response_model=CustomerList, responses=ERRORS, **needs("customers:read"))
def list_customers(
    who: PartnerDep,
    crm: CrmDep,
    search: Annotated[
        str | None, Query(max_length=200, description="own number, or part of name/e-mail")
    ] = None,
    cursor: Annotated[str | None, Query(max_length=20)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> CustomerList:
    """Your customers, a page at a time (erased ones listed without data)."""
    page = _page_of(cursor)
    found = customers.list_customers(crm, who, search=search or None, page=page, per_page=limit)
    more = page * limit < found.total
    return CustomerList(
        customers=[_out(v) for v in found.customers],
        total=found.total,
        next_cursor=_cursor(page + 1) if more else None,
    )


@router.get("/{member}", response_model=CustomerOut, responses=ERRORS, **needs("customers:read"))
def show_customer(member: MemberPath, who: PartnerDep, crm: CrmDep) -> CustomerOut:
    """One of your customers, decrypted."""
    return _out(customers.show_customer(crm, who, member_bytes(member)))


@router.patch("/{member}", response_model=Updated, responses=ERRORS, **needs("customers:write"))
def update_customer(member: MemberPath, body: CustomerUpdate, who: PartnerDep, crm: CrmDep) -> Updated:
    """Change some of a customer's personal data (the answer names the fields, not their values)."""
    changes = body.model_dump(exclude_none=True)
    customers.update_customer(crm, who, member_bytes(member), changes)
    return Updated(member=member.lower(), changed=sorted(changes))


@router.delete("/{member}", response_model=Erased, responses=ERRORS, **needs("customers:write"))
def erase_customer(member: MemberPath, who: PartnerDep, crm: CrmDep) -> Erased:
    """Erase the customer: its key is deleted, so its data can never be read again; erased on chain too."""
    receipt, outcome = erasure.erase_customer(crm, who, member_bytes(member))
    return Erased(
        member=member.lower(),
        receipt_hash=hexid(receipt.receipt_hash),
        interactions=receipt.interactions_count,
        batch=outcome.onchain_batch_id,
    )


@router.get("/{member}/export", response_model=dict[str, Any], responses=ERRORS, **needs("customers:read"))
def export_customer(member: MemberPath, who: PartnerDep, crm: CrmDep) -> dict[str, Any]:
    """Everything held on the customer, decrypted (a data subject access request)."""
    return export.export_member(crm, who, member_bytes(member))


class Recommendations(BaseModel):
    member: str
    items: list[str]


@router.get(
    "/{member}/recommendations",
    response_model=Recommendations,
    responses=ERRORS,
    **needs("decisions:read"),
)
def recommend(
    member: MemberPath, who: PartnerDep, crm: CrmDep, top: Annotated[int, Query(ge=1, le=100)] = 10
) -> Recommendations:
    """Products to recommend to the customer, from verified interactions."""
    return Recommendations(
        member=member.lower(), items=models.recommendations(crm, who, member_bytes(member), top)
    )


class TimelineEntry(BaseModel):
    at: str
    event: str
    detail: str
    block: int | None = None
    leaf: int | None = None
    anchored: bool | None = None


@router.get(
    "/{member}/timeline", response_model=list[TimelineEntry], responses=ERRORS, **needs("customers:read")
)
def timeline(member: MemberPath, who: PartnerDep, crm: CrmDep) -> list[TimelineEntry]:
    """Every change to the customer's record, oldest first: registration, each update of personal data
    (a leaf of your log: when, and which fields, never the values), consent, points, decisions, erasure."""
    return [
        TimelineEntry.model_validate({k: v for k, v in entry.items() if k in TimelineEntry.model_fields})
        for entry in timeline_of(crm, who, member_bytes(member))
    ]
