"""A stored decision as the chain logs it, and the field its explanation is sealed under: shared by
`verify` (api/evidence/records.py), scoring and `decision verify`, and importing neither web3 nor the
chain's clients (`decision verify` reads the chain without them: ledger/reader.py)."""

from __future__ import annotations

from typing import Protocol

from ledger.records import Decision

EXPLANATION_FIELD = "decision_explanation"


class StoredDecision(Protocol):
    """A decision's row as stored: a DecisionRecord, or a plain row with its columns' names."""

    @property
    def member_id(self) -> bytes: ...
    @property
    def input_root(self) -> bytes: ...
    @property
    def score_bps(self) -> int: ...
    @property
    def action(self) -> str: ...
    @property
    def explanation_hash(self) -> bytes: ...
    @property
    def reasons(self) -> bytes: ...


def decision_of(row: StoredDecision) -> Decision:
    """A stored decision as the chain's event carries it."""
    # the decision layer is loaded by the first decision read, not by every verification: a store without
    # decisions (an import's) never needs it (~0.02-0.03 CPU s of `verify --all`'s start)
    from ml import decision as deciding

    return Decision(
        member=row.member_id,
        input_root=row.input_root,
        score_bps=row.score_bps,
        action=deciding.action_word(row.action),
        explanation_hash=row.explanation_hash,
        reasons=row.reasons,
    )
