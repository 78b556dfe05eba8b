"""The chain's events about a partner's own customers, as they are mined: consent given or withdrawn
through any partner, points earned, redeemed or forfeited anywhere in the coalition, and erasure.

Read a range of blocks at a time (`events_since`), so that a stream follows the chain by asking again
from where the last answer ended. The events carry ids, partners' names and amounts, never personal data.
"""

from __future__ import annotations

from dataclasses import dataclass

from api.context import Crm
from api.errors import InvalidInput
from api.principal import Principal
from ledger.clients import PURPOSES, purpose_id
from ledger.clients.events import member_events
from offchain.repositories import customers, partners

MAX_BLOCKS_PER_READ = 5_000  # one answer reads at most this many blocks: a stream catches up in steps
_PURPOSE_NAMES = {purpose_id(name): name for name in PURPOSES}


@dataclass(frozen=True)
class PartnerEvent:
    kind: str  # consent-given, consent-withdrawn, points-earned, points-redeemed, points-forfeited, erased
    member: bytes
    block_number: int
    partner: str | None  # the partner's name where the store knows it, else its address
    purpose: str | None
    expires_at: int | None
    amount: int | None


@dataclass(frozen=True)
class EventPage:
    events: list[PartnerEvent]
    next_block: int  # where the next read starts
    head: int  # the chain's latest block when this was read


def events_since(
    crm: Crm, who: Principal, from_block: int | None = None, until_block: int | None = None
) -> EventPage:
    """The events about the acting partner's customers in blocks `from_block` (default: the next block
    to be mined) up to the chain's head, `until_block`, or `MAX_BLOCKS_PER_READ` blocks, whichever is
    first; and the block to read from next."""
    partner_name = who.acting_partner()
    if from_block is not None and from_block < 0:
        raise InvalidInput(f"a block number is 0 or more, not {from_block}")
    if until_block is not None and until_block < 0:
        raise InvalidInput(f"a block number is 0 or more, not {until_block}")
    head = crm.coalition.chain.block_number()
    start = head + 1 if from_block is None else from_block
    end = min(head, start + MAX_BLOCKS_PER_READ - 1)
    if until_block is not None:
        end = min(end, until_block)
    if end < start:
        return EventPage([], start, head)
    coalition = crm.coalition
    found = member_events(coalition.consent, coalition.loyalty, coalition.members, start, end)
    with crm.unit_of_work() as db:
        partner = crm.partner(db, partner_name)
        # only the partner's own customers: the events of the rest of the coalition are not its business
        own = customers.statuses(db, {e.member for e in found}, partner.id)
        names = {p.address: p.name for p in partners.every(db)}
    events = [
        PartnerEvent(
            e.kind,
            e.member,
            e.block_number,
            None if e.partner is None else names.get(e.partner, e.partner),
            None if e.purpose is None else _PURPOSE_NAMES.get(e.purpose, "0x" + e.purpose.hex()),
            e.expires_at,
            e.amount,
        )
        for e in found
        if e.member in own
    ]
    return EventPage(events, end + 1, head)
