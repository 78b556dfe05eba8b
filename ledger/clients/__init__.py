"""One typed client per contract."""

from ledger.clients.anchor import AnchorClient, AnchoredBatch, BatchInfo, Head
from ledger.clients.consent import (
    PURPOSES,
    ConsentClient,
    ConsentRecord,
    ConsentSource,
    ConsentStatus,
    purpose_id,
)
from ledger.clients.consortium import Action, ConsortiumClient, Proposal, ProposalOutcome, Role
from ledger.clients.decisions import Decision, DecisionLogClient, ModelInfo, RecordedDecision
from ledger.clients.loyalty import LoyaltyClient
from ledger.clients.members import (
    Authorization,
    MemberInfo,
    MemberRegistryClient,
    MemberVote,
    ResetTally,
    ResetVote,
    VoteKind,
    VoteTally,
)

__all__ = [
    "PURPOSES",
    "Action",
    "AnchorClient",
    "AnchoredBatch",
    "Authorization",
    "BatchInfo",
    "ConsentClient",
    "ConsentRecord",
    "ConsentSource",
    "ConsentStatus",
    "ConsortiumClient",
    "Decision",
    "DecisionLogClient",
    "Head",
    "LoyaltyClient",
    "MemberInfo",
    "MemberRegistryClient",
    "MemberVote",
    "ModelInfo",
    "Proposal",
    "ProposalOutcome",
    "RecordedDecision",
    "ResetTally",
    "ResetVote",
    "Role",
    "VoteKind",
    "VoteTally",
    "purpose_id",
]
