"""One typed client per contract."""

from ledger.clients.anchor import AnchorClient, AnchoredBatch, BatchInfo, Head
from ledger.clients.consent import ConsentClient, ConsentRecord, ConsentStatus, purpose_id
from ledger.clients.consortium import Action, ConsortiumClient, Proposal, ProposalOutcome, Role
from ledger.clients.decisions import Decision, DecisionLogClient, ModelInfo, RecordedDecision
from ledger.clients.loyalty import LoyaltyClient

__all__ = [
    "Action",
    "AnchorClient",
    "AnchoredBatch",
    "BatchInfo",
    "ConsentClient",
    "ConsentRecord",
    "ConsentStatus",
    "ConsortiumClient",
    "Decision",
    "DecisionLogClient",
    "Head",
    "LoyaltyClient",
    "ModelInfo",
    "Proposal",
    "ProposalOutcome",
    "RecordedDecision",
    "Role",
    "purpose_id",
]
