"""Partners' logs for ledger tests: each starts with the partner's genesis leaf (leaf 0), as the
InteractionAnchor requires."""

from __future__ import annotations

from collections.abc import Sequence

from eth_account.signers.local import LocalAccount

from ledger.clients import AnchoredBatch
from ledger.coalition import Coalition
from ledger.merkle import Frontier, LogAppend


def genesis(coalition: Coalition, partner: LocalAccount) -> Frontier:
    """The partner's log before its first head: its genesis leaf alone."""
    return Frontier(1, (coalition.anchor.genesis_leaf(partner.address),))


def first_head(coalition: Coalition, partner: LocalAccount, leaves: Sequence[bytes]) -> LogAppend:
    """The partner's log of its genesis leaf and then `leaves` (leaf i + 1 is leaves[i])."""
    return LogAppend(genesis(coalition, partner), leaves)


def anchor_first(
    coalition: Coalition, partner: LocalAccount, leaves: Sequence[bytes]
) -> tuple[LogAppend, AnchoredBatch]:
    """Anchor the partner's first head over `leaves`, with its proof from the genesis leaf."""
    step = first_head(coalition, partner, leaves)
    return step, coalition.anchor.anchor(partner, step.root, step.size, step.consistency_proof())
