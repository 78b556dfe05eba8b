"""Consortium governance from a partner's own home: proposals to admit or remove members, and votes,
each cast with the acting partner's own key and nobody else's."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from eth_utils import is_address, to_checksum_address

from api.context import Crm
from api.errors import MalformedInput
from api.evidence.outbox import sending_as
from api.principal import Principal
from ledger.clients import Action, ProposalOutcome

ACTIONS = {
    "admit-partner": Action.ADMIT_PARTNER,
    "admit-auditor": Action.ADMIT_AUDITOR,
    "remove": Action.REMOVE_MEMBER,
}


@dataclass(frozen=True)
class ProposalView:
    proposal_id: int
    action: str
    account: str
    proposer: str
    executed: bool
    votes: int  # from current partners
    partners: int
    expires_at: datetime


def propose(crm: Crm, who: Principal, action: str, account: str) -> ProposalOutcome:
    """Propose, and vote for, admitting or removing `account`, as the acting partner."""
    partner_name = who.acting_partner()
    if action not in ACTIONS:
        raise MalformedInput(f"an action is one of {', '.join(ACTIONS)}, not {action!r}")
    if not is_address(account):
        raise MalformedInput(f"not an address: {account!r}")
    with sending_as(crm, partner_name):  # sent from the partner's account: after any running sender
        return crm.coalition.consortium.propose(
            crm.signer(partner_name), ACTIONS[action], to_checksum_address(account)
        )


def vote(crm: Crm, who: Principal, proposal_id: int) -> ProposalOutcome:
    """The acting partner's vote; the proposal executes once a strict majority voted."""
    _check_id(proposal_id)
    partner_name = who.acting_partner()
    with sending_as(crm, partner_name):
        return crm.coalition.consortium.vote(crm.signer(partner_name), proposal_id)


def execute(crm: Crm, who: Principal, proposal_id: int) -> None:
    """Execute a proposal whose votes became a majority because partners left since."""
    _check_id(proposal_id)
    partner_name = who.acting_partner()
    with sending_as(crm, partner_name):
        crm.coalition.consortium.execute(crm.signer(partner_name), proposal_id)


def proposals(crm: Crm, who: Principal) -> list[ProposalView]:
    """Every proposal, oldest first (consortium data: public to its members)."""
    consortium = crm.coalition.consortium
    count = consortium.proposal_count()
    partners = len(consortium.partners())
    names = {action: name for name, action in ACTIONS.items()}
    found = []
    for proposal_id in range(count):
        p = consortium.proposal(proposal_id)
        found.append(
            ProposalView(
                proposal_id,
                names[p.action],
                p.account,
                p.proposer,
                p.executed,
                p.votes,
                partners,
                datetime.fromtimestamp(consortium.expires_at(proposal_id), UTC),
            )
        )
    return found


def _check_id(proposal_id: int) -> None:
    if proposal_id < 0:
        raise MalformedInput("a proposal id is a whole number from 0")
