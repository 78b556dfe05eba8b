"""A customer's interactions: record one, list them with how far each got towards the chain."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Response
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from api.http.deps import CrmDep, PartnerDep, needs
from api.http.idempotency import IdempotentRoute
from api.http.problems import responses
from api.http.routes.common import OwnMember, hexid, utc
from api.usecases import interactions
from offchain.kinds import InteractionKind

router = APIRouter(prefix="/v1/customers", tags=["interactions"], route_class=IdempotentRoute)
ERRORS = responses(401, 403, 404, 409, 422)


class InteractionIn(BaseModel):
    """The fields of `ledgercrm interaction add`."""

    model_config = ConfigDict(extra="forbid")
    kind: InteractionKind
    data: dict[str, Any] = Field(
        description=f"a JSON object, at most {interactions.MAX_DATA_BYTES // 1024} KiB as JSON"
    )
    external_key: str | None = Field(
        default=None, min_length=1, max_length=200, description="your idempotency key, e.g. an invoice number"
    )
    occurred_at: AwareDatetime | None = Field(default=None, description="default: now")


class AnchoredBatch(BaseModel):
    batch: int = Field(description="the batch's number on chain")
    size: int = Field(description="leaves in the batch")
    block_number: int


class InteractionAdded(BaseModel):
    member: str
    interaction_id: int | None = Field(description="null: this external key was recorded before, alike")
    duplicate: bool
    anchored: list[AnchoredBatch] = Field(description="batches this request anchored (a batch was due)")


class InteractionOut(BaseModel):
    interaction_id: int
    kind: str
    external_key: str | None
    occurred_at: datetime
    anchoring: str = Field(description='"pending", "submitted" or "anchored in batch N"')
    erased: bool = Field(description="its content was made unreadable by the customer's erasure")


@router.post(
    "/{member}/interactions",
    status_code=201,
    response_model=InteractionAdded,
    responses={200: {"description": "already recorded with the same content"}, **ERRORS},
    **needs("interactions:write"),
)
def add_interaction(
    member: OwnMember, body: InteractionIn, who: PartnerDep, crm: CrmDep, response: Response
) -> InteractionAdded:
    """Record an interaction (sealed under the customer's key, committed, anchored with its batch once
    a batch is due). The same external key with the same content answers 200; with other content, 409."""
    item = interactions.NewInteraction(member, body.kind, body.data, body.occurred_at, body.external_key)
    added = interactions.add_interaction(crm, who, item)
    if added.interaction_id is None:
        response.status_code = 200
    return InteractionAdded(
        member=hexid(member),
        interaction_id=added.interaction_id,
        duplicate=added.interaction_id is None,
        anchored=[
            AnchoredBatch(batch=a.onchain_batch_id, size=a.size, block_number=a.block_number)
            for a in added.anchored
        ],
    )


@router.get(
    "/{member}/interactions",
    response_model=list[InteractionOut],
    responses=ERRORS,
    **needs("interactions:read"),
)
def list_interactions(member: OwnMember, who: PartnerDep, crm: CrmDep) -> list[InteractionOut]:
    """The customer's interactions, oldest first, with their anchoring state (no content: see export)."""
    return [
        InteractionOut(
            interaction_id=line.interaction_id,
            kind=line.kind,
            external_key=line.external_key,
            occurred_at=utc(line.occurred_at),
            anchoring=line.anchoring,
            erased=line.erased,
        )
        for line in interactions.list_interactions(crm, who, member)
    ]
