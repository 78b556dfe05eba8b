"""Whether the server is up and which chain it serves."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel

from api.http.deps import CrmDep, role
from api.http.problems import responses
from api.usecases.status import chain_status

router = APIRouter(prefix="/v1", tags=["health"])


class Health(BaseModel):
    status: str
    chain_id: int
    block_number: int


@router.get("/health", response_model=Health, responses=responses(503), **role("public"))
def health(crm: CrmDep) -> Health:
    """200 once the server can read its chain: the chain id and the latest block."""
    found = chain_status(crm)
    return Health(status="ok", chain_id=found.chain_id, block_number=found.block_number)
