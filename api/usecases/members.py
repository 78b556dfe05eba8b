"""A member's home and erasure, decided by the member herself or by the partners.

A member's home partner attests its consent and redeems its points while it has no key of its own; a
partner that leaves the consortium would take that power with it and leave its members orphaned. So a
member's home moves, by her own signature (relayed by any partner: `move_home`) or by a strict
majority of the current partners (`vote_home_move`, for a member without a key, or whose home is gone);
the new home then acts for her (redeems, attests, binds her key).

A member with a key is erased by her own signature (`erasure.erase_customer` with it) or by such a
majority (`vote_erasure`), never by her home alone: erasure forfeits points she earned at every partner.
A vote counts while its partner stays in the consortium, for seven days, once per partner and change,
as for a lost key (`customer_keys.vote_key_reset`); the MemberRegistry counts them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from eth_account.signers.local import LocalAccount
from eth_typing import ChecksumAddress
from eth_utils import is_address, to_checksum_address

from api.context import Crm
from api.errors import CustomerIsErased, InvalidInput, NotFound
from api.evidence.outbox import sending_as
from api.principal import Principal
from api.usecases.signing import SignedMessage, check_signed
from ledger.clients import Authorization, MemberInfo, VoteKind
from offchain.models import CustomerStatus
from offchain.repositories import customers


@dataclass(frozen=True)
class HomeMove:
    member: bytes
    previous: str
    home: str
    block_number: int


@dataclass(frozen=True)
class MemberVoteResult:
    """Where a vote on a member stands after the acting partner's, as the contract counted it."""

    member: bytes
    kind: VoteKind
    target: str | None  # the new home (a move); None for an erasure
    votes: int  # that count now: current partners, their current tenure, not lapsed
    partners: int
    done: bool  # the member moved, or was erased on chain
    counts_until: datetime | None  # when the acting partner's vote lapses (None: done)

    @property
    def needed(self) -> int:
        """A strict majority of the current partners."""
        return self.partners // 2 + 1


def move_home(
    crm: Crm, who: Principal, member: bytes, new_home: str, authorization: Authorization
) -> HomeMove:
    """Move the member's home to `new_home` (a partner's name in this home, or an address), as the
    member signed (`MemberRegistryClient.authorize_home_move`); the acting partner, any partner,
    relays it."""
    with sending_as(crm, who.acting_partner()):  # relayed from its account: after any running sender
        return _move_home(crm, who, member, new_home, authorization)


def _move_home(
    crm: Crm, who: Principal, member: bytes, new_home: str, authorization: Authorization
) -> HomeMove:
    relayer = _relayer(crm, who, member)
    home = _partner_address(crm, new_home)
    info = _movable(crm, member, home)
    if info.signer is None:
        raise InvalidInput(
            f"member 0x{member.hex()} has no key of its own to sign a move: the partners vote on it"
            " (`customer move-vote`)"
        )
    tx = crm.coalition.members.move_home_signed(relayer, member, home, authorization)
    assert info.home is not None
    return HomeMove(member, info.home, home, tx.block_number)


def relay_home_move(
    crm: Crm, who: Principal, member: bytes, new_home: str, signed: SignedMessage
) -> HomeMove:
    """Move the member's home to `new_home` by her signature (`signing.home_move_typed_data`, signed on
    her own device: `customer sign move`); the acting partner, any partner, relays it. The signature is
    checked first for what the contract checks and for this very move (another member, another new
    home, another key, a used nonce, an expired deadline: refused in words, nothing written)."""
    _relayer(crm, who, member)
    home = _partner_address(crm, new_home)
    authorization = check_signed(
        crm,
        signed,
        "HomeMove",
        member,
        {"newHome": (home, lambda found: f"for a move to {found}, not to {home}")},
        "a move of her home",
    )
    return move_home(crm, who, member, home, authorization)


def vote_home_move(crm: Crm, who: Principal, member: bytes, new_home: str) -> MemberVoteResult:
    """The acting partner's vote to move the member's home to `new_home` (a partner's name in this
    home, or an address); it moves once a strict majority of the current partners voted for it."""
    with sending_as(crm, who.acting_partner()):  # cast from its account: after any running sender
        voter = _relayer(crm, who, member)
        home = _partner_address(crm, new_home)
        _movable(crm, member, home)
        return _vote(crm, who, voter, member, VoteKind.MOVE_HOME, home)


def vote_erasure(crm: Crm, who: Principal, member: bytes) -> MemberVoteResult:
    """The acting partner's vote to erase the member on chain (consents withdrawn, balance forfeited,
    member frozen); done once a strict majority of the current partners voted so. The home partner's
    store is erased by `erasure.erase_customer`, which then finds the chain's part done."""
    with sending_as(crm, who.acting_partner()):  # cast from its account: after any running sender
        voter = _relayer(crm, who, member)
        _active(crm, member)
        return _vote(crm, who, voter, member, VoteKind.ERASE, None)


def _vote(
    crm: Crm,
    who: Principal,
    voter: LocalAccount,
    member: bytes,
    kind: VoteKind,
    target: ChecksumAddress | None,
) -> MemberVoteResult:
    """Cast the vote; a second vote for the same thing while the first counts is refused, unless
    partners left since and the votes are now a majority: then it is carried out."""
    members = crm.coalition.members
    mine = members.vote_of(member, kind, voter.address)
    if mine.voted and mine.counts and mine.target == target:
        votes, partners = members.votes_for(member, kind, target)
        if votes * 2 <= partners:
            lapses = datetime.fromtimestamp(mine.counts_until, UTC)
            what = "erase" if kind is VoteKind.ERASE else f"move to {target}"
            raise InvalidInput(
                f"{who.acting_partner()!r} has already voted to {what} member 0x{member.hex()} (its vote"
                f" counts until {lapses:%Y-%m-%d %H:%M UTC}): {votes} of {partners // 2 + 1} votes"
            )
        members.apply_vote(voter, member, kind, target)
        return MemberVoteResult(member, kind, target, votes, partners, True, None)
    tally = (
        members.vote_erasure(voter, member)
        if kind is VoteKind.ERASE
        else members.vote_home_move(voter, member, str(target))
    )
    until = (
        None
        if tally.done
        else datetime.fromtimestamp(members.vote_of(member, kind, voter.address).counts_until, UTC)
    )
    return MemberVoteResult(member, kind, target, tally.votes, tally.partners, tally.done, until)


def _relayer(crm: Crm, who: Principal, member: bytes) -> LocalAccount:
    """The acting partner's signing key, once the partner and the member check out in this store."""
    partner_name = who.acting_partner()
    with crm.unit_of_work() as db:
        crm.partner(db, partner_name)
        if customers.status_of(db, member) is CustomerStatus.ERASED:
            raise CustomerIsErased(f"member 0x{member.hex()} was erased")
    return crm.signer(partner_name)


def _partner_address(crm: Crm, partner: str) -> ChecksumAddress:
    """A current partner's address, from its name in this home or its address."""
    if is_address(partner):
        address = to_checksum_address(partner)
    else:
        with crm.unit_of_work() as db:
            address = to_checksum_address(crm.partner(db, partner).address)
    if not crm.coalition.consortium.is_partner(address):
        raise InvalidInput(f"{partner} is not a partner of the consortium, so it cannot be a member's home")
    return address


def _active(crm: Crm, member: bytes) -> MemberInfo:
    info = crm.coalition.members.member(member)
    if info.erased:
        raise CustomerIsErased(f"member 0x{member.hex()} was erased")
    if not info.enrolled:
        raise NotFound(f"member 0x{member.hex()} is not enrolled on chain")
    return info


def _movable(crm: Crm, member: bytes, home: str) -> MemberInfo:
    info = _active(crm, member)
    if info.home == home:
        raise InvalidInput(f"{home} is member 0x{member.hex()}'s home partner already")
    return info
