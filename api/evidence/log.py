"""Where a partner's log starts: its genesis leaf. Apart from `api.evidence.anchoring` (which sends, so
imports the chain's clients) because verification reads it too, and `decision verify` verifies without
them (ledger/reader.py)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ledger.merkle import Frontier

if TYPE_CHECKING:
    from api.context import Crm

GENESIS_SIZE = 1  # a log's genesis leaf is leaf 0: its first record is leaf 1


def log_start(crm: Crm, partner_address: str) -> Frontier:
    """The partner's log before its first batch: its genesis leaf alone."""
    return Frontier(GENESIS_SIZE, (crm.coalition.anchor.genesis_leaf(partner_address),))
