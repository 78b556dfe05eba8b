"""The state of the chain a server serves (its health check)."""

from __future__ import annotations

from dataclasses import dataclass

from api.context import Crm


@dataclass(frozen=True)
class ChainStatus:
    chain_id: int
    block_number: int


def chain_status(crm: Crm) -> ChainStatus:
    chain = crm.coalition.chain
    return ChainStatus(chain.chain_id, chain.block_number())
