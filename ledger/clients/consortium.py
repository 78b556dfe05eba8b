from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum

from eth_account.signers.local import LocalAccount
from eth_typing import ChecksumAddress
from eth_utils import to_checksum_address

from ledger.chain import TxResult
from ledger.clients.base import ContractClient


class Action(IntEnum):
    ADMIT_PARTNER = 0
    ADMIT_AUDITOR = 1
    REMOVE_MEMBER = 2


class Role(IntEnum):
    NONE = 0
    PARTNER = 1
    AUDITOR = 2


@dataclass(frozen=True)
class Proposal:
    proposal_id: int
    action: Action
    account: ChecksumAddress
    proposer: ChecksumAddress
    executed: bool
    votes: int


@dataclass(frozen=True)
class ProposalOutcome:
    proposal_id: int
    executed: bool
    tx: TxResult


# The contracts the Consortium records, in the order of its `Contracts` struct.
RECORDED_CONTRACTS = (
    "MemberRegistry",
    "ConsentRegistry",
    "LoyaltyPoints",
    "InteractionAnchor",
    "DecisionLog",
)


class ConsortiumClient(ContractClient):
    def coalition_contracts(self) -> dict[str, ChecksumAddress] | None:
        """The coalition's other contracts as this Consortium records them (the trust anchor's word), or
        None if it records none (a deployment made before the Consortium recorded them)."""
        recorded = self._call(self.contract.functions.coalitionContracts())
        if all(int(address, 16) == 0 for address in recorded):
            return None
        return {name: to_checksum_address(a) for name, a in zip(RECORDED_CONTRACTS, recorded, strict=True)}

    def record_contracts(self, sender: LocalAccount, addresses: dict[str, str]) -> TxResult:
        """Record the other five contracts, once, as the deployer (the deployment's last step)."""
        fn = self.contract.functions.recordContracts(
            tuple(to_checksum_address(addresses[name]) for name in RECORDED_CONTRACTS)
        )
        return self._send(sender, fn)

    def founding(self) -> tuple[list[ChecksumAddress], int]:
        """The founding partners and the block the Consortium was deployed in."""
        founders, block = self._call(self.contract.functions.founding())
        return [to_checksum_address(a) for a in founders], int(block)

    def is_partner(self, account: str) -> bool:
        return bool(self._call(self.contract.functions.isPartner(to_checksum_address(account))))

    def is_auditor(self, account: str) -> bool:
        return bool(self._call(self.contract.functions.isAuditor(to_checksum_address(account))))

    def role_of(self, account: str) -> Role:
        return Role(self._call(self.contract.functions.roleOf(to_checksum_address(account))))

    def partners(self) -> list[ChecksumAddress]:
        return [to_checksum_address(a) for a in self._call(self.contract.functions.partners())]

    def proposal_count(self) -> int:
        return int(self._call(self.contract.functions.proposalCount()))

    def proposal(self, proposal_id: int) -> Proposal:
        action, account, proposer, executed, votes = self._call(self.contract.functions.proposal(proposal_id))
        return Proposal(proposal_id, Action(action), account, proposer, executed, votes)

    def expires_at(self, proposal_id: int) -> int:
        """When the proposal stops taking votes (unix time)."""
        return int(self._call(self.contract.functions.proposalExpiresAt(proposal_id)))

    def has_voted(self, proposal_id: int, voter: str) -> bool:
        return bool(self._call(self.contract.functions.hasVoted(proposal_id, to_checksum_address(voter))))

    def propose(self, sender: LocalAccount, action: Action, account: str) -> ProposalOutcome:
        tx = self._send(sender, self.contract.functions.propose(int(action), to_checksum_address(account)))
        proposal_id = tx.event("ProposalCreated")["args"]["proposalId"]
        return ProposalOutcome(proposal_id, bool(tx.events_named("ProposalExecuted")), tx)

    def vote(self, sender: LocalAccount, proposal_id: int) -> ProposalOutcome:
        tx = self._send(sender, self.contract.functions.vote(proposal_id))
        return ProposalOutcome(proposal_id, bool(tx.events_named("ProposalExecuted")), tx)

    def execute(self, sender: LocalAccount, proposal_id: int) -> TxResult:
        return self._send(sender, self.contract.functions.execute(proposal_id))

    def decide(self, voters: Sequence[LocalAccount], action: Action, account: str) -> ProposalOutcome:
        """Propose with the first voter, then vote with the others until the proposal executes.

        Raises ValueError (after the votes, which stay recorded) if the voters are not a majority."""
        outcome = self.propose(voters[0], action, account)
        for voter in voters[1:]:
            if outcome.executed:
                break
            outcome = self.vote(voter, outcome.proposal_id)
        if not outcome.executed:
            raise ValueError(f"{len(voters)} votes are not a majority of {len(self.partners())} partners")
        return outcome
