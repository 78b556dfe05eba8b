"""A customer's own secp256k1 key: created as an encrypted keystore file (the format eth-account and
geth write: scrypt, AES-128-CTR), opened with its passphrase, and bound to the member on chain.

With a key bound, the member signs its consents and redemptions itself (EIP-712) and any partner relays
them; without one, its home partner acts for it. The key never leaves the customer's file: partners
see only its address.

A bound key changes in one of two ways, both checked by MemberRegistry: the customer signs the change
with the key it holds (`change_customer_key`, relayed by any partner), or, when that key is lost, a
strict majority of the current partners vote for the same new key (`vote_key_reset`). A vote counts
while its partner stays in the consortium (a readmitted partner votes again) and for seven days; a
partner has one vote per change, and a vote for another new key moves it there."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils import is_address, to_checksum_address

from api.context import Crm
from api.errors import CustomerIsErased, InvalidInput, MalformedInput, NotAllowed, NotFound
from api.evidence.outbox import sending_as
from api.principal import Principal
from api.usecases.customers import owned_customer, register_customer
from api.usecases.signing import SignedMessage, check_binding, check_signed
from ledger.clients import Authorization, MemberInfo
from offchain.models import CustomerCreate, CustomerStatus
from offchain.repositories import consents, customers, enrolments

MIN_PASSPHRASE = 8


def new_customer_key(path: Path, passphrase: str) -> str:
    """Write a new key to `path` as an encrypted keystore (mode 0600); its address. Refuses a file that
    exists: no key file is ever overwritten."""
    if len(passphrase) < MIN_PASSPHRASE:
        raise InvalidInput(f"a passphrase has at least {MIN_PASSPHRASE} characters")
    account = Account.create()
    keystore = Account.encrypt(account.key, passphrase)
    write_new_file(path, (json.dumps(keystore) + "\n").encode())
    return str(account.address)


def open_customer_key(path: Path, passphrase: str) -> LocalAccount:
    """The key in keystore file `path`; InvalidInput if it cannot be read or the passphrase is wrong."""
    try:
        keystore = json.loads(path.read_text())
    except OSError as exc:
        raise MalformedInput(f"cannot read the key file {path}: {exc.strerror}") from None
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise MalformedInput(f"{path} is not a keystore file") from None
    try:
        account: LocalAccount = Account.from_key(Account.decrypt(keystore, passphrase))
        return account
    except (ValueError, KeyError, TypeError):
        raise InvalidInput(f"cannot open {path}: wrong passphrase, or not a keystore file") from None


def customer_binding(crm: Crm, key: LocalAccount) -> Callable[[bytes], Authorization]:
    """What the customer's own device does with her key: sign its binding to a member id (at the
    member's current nonce: 0 for a new member). Only the signature leaves it. Never called in a
    partner's process: a partner gets her signed binding (`signing.customer_signs_binding`, a file from
    `customer sign binding`) and relays it (`register_keyed_customer`, `bind_signed_key`)."""
    return lambda member: crm.coalition.members.authorize_binding(key, member)


def register_keyed_customer(
    crm: Crm, who: Principal, data: CustomerCreate, signer: str, signed: SignedMessage
) -> bytes:
    """Register a customer with the key `signer` she holds, bound by `signed`, that key's own signature
    of its binding to the member id it names (made on her device for a new member); the member id.
    Everything is checked before anything is written: another key, chain or kind of message is refused
    in words, and the signature itself as the contract will check it."""
    member, authorization = check_binding(crm, signed, signer)
    info = crm.coalition.members.member(member)
    if info.enrolled or info.erased:
        # a binding made for an existing member (`customer sign binding --member`), or a made-up one: a
        # new customer gets a new member id, never one the chain (another partner, another home) knows
        raise InvalidInput(
            f"the binding is for member 0x{member.hex()}, which is enrolled already: a new customer's key"
            " signs its binding to a new member id (`customer sign binding` without --member)"
        )
    return register_customer(
        crm, who, data, signer=signer, binding=lambda _member: authorization, member=member
    )


def bind_signed_key(crm: Crm, who: Principal, member: bytes, signer: str, signed: SignedMessage) -> str:
    """Bind the key `signer` to the keyless `member` with `signed`, that key's own signature of the
    binding to this member (made on her device: `customer sign binding --member`); its home partner
    only (`bind_customer_key`)."""
    _member, authorization = check_binding(crm, signed, signer, member)
    return bind_customer_key(crm, who, member, signer, authorization)


def enrolled_here(crm: Crm, member: bytes, home: str, partner_name: str) -> MemberInfo:
    """The chain's record of `member`; refused if erased or not enrolled with `home` as its home."""
    info = crm.coalition.members.member(member)
    if info.erased:
        raise CustomerIsErased(f"member 0x{member.hex()} was erased")
    if not info.enrolled or info.home != home:
        raise NotAllowed(f"member 0x{member.hex()} is not enrolled on chain by {partner_name!r}")
    return info


def bind_customer_key(crm: Crm, who: Principal, member: bytes, signer: str, binding: Authorization) -> str:
    """Bind the key `signer` as the member's signer, with `binding`, that key's own signature of the
    binding (`customer_binding`): its home partner only, and only for a member without one (changing a
    key needs the old key's signature, or a vote). No partner binds a key the customer does not hold."""
    partner_name = who.acting_partner()
    with sending_as(crm, partner_name):  # sent from the partner's account: after any running sender
        return _bind(crm, partner_name, member, signer, binding)


def _bind(crm: Crm, partner_name: str, member: bytes, signer: str, binding: Authorization) -> str:
    if not is_address(signer):
        raise MalformedInput(f"not an address: {signer!r}")
    signer = to_checksum_address(signer)
    with crm.unit_of_work() as db:
        owned_customer(crm, db, partner_name, member)
        partner_address = crm.partner(db, partner_name).address
        if consents.has_unconfirmed(db, member):
            # an import's attested consent for this member, staged or in flight, would be refused
            # once the member holds a key, and would stop the partner's consent outbox
            raise InvalidInput(
                f"member 0x{member.hex()} has a consent waiting to go on chain: finish the import (run it"
                " again) before binding a key"
            )
    info = enrolled_here(crm, member, partner_address, partner_name)
    if info.signer is not None:
        raise InvalidInput(
            f"member 0x{member.hex()} already has a key ({info.signer}): changing it needs that key's"
            " signature, or a vote of the partners"
        )
    if not crm.coalition.members.binds(member, signer, binding):
        raise InvalidInput(f"the binding is not signed by the key {signer} for member 0x{member.hex()}")
    crm.coalition.members.bind_signer(crm.signer(partner_name), member, signer, binding)
    with crm.unit_of_work() as db:
        enrolments.set_signer(db, member, signer)
    return signer


@dataclass(frozen=True)
class KeyChange:
    member: bytes
    previous: str
    signer: str
    block_number: int


@dataclass(frozen=True)
class KeyResetVote:
    """Where a lost-key reset stands after the acting partner's vote, as the contract counted it."""

    member: bytes
    new_signer: str
    votes: int  # for `new_signer`, that count now (current partners, their current tenure, not lapsed)
    partners: int
    reset: bool  # the member's key is now `new_signer`
    counts_until: datetime | None  # when the acting partner's vote lapses (None: the key was reset)
    moved_from: str | None = None  # the key this partner had voted for before, in this change

    @property
    def needed(self) -> int:
        """A strict majority of the current partners."""
        return self.partners // 2 + 1


def change_customer_key(crm: Crm, who: Principal, member: bytes, signed: SignedMessage) -> KeyChange:
    """Give the member the new key her signature names, signed with her current key on her own device
    (`signing.key_change_typed_data`); the acting partner, any partner, relays it, and never sees a
    private key. A lost key is reset by a vote instead (`vote_key_reset`)."""
    partner_name = who.acting_partner()
    with sending_as(crm, partner_name):  # relayed from the partner's account: after any running sender
        return _change_key(crm, partner_name, member, signed)


def _change_key(crm: Crm, partner_name: str, member: bytes, signed: SignedMessage) -> KeyChange:
    relayer = _relayer(crm, partner_name, member)
    new_signer = str(signed.message.get("newSigner", ""))
    if not is_address(new_signer):
        raise InvalidInput("the signature names no new key (newSigner is not an address)")
    new_signer = to_checksum_address(new_signer)
    info = _keyed_member(crm, member, new_signer)
    authorization = check_signed(crm, signed, "SignerChange", member, {}, "a change of key")
    tx = crm.coalition.members.change_signer(relayer, member, new_signer, authorization)
    _mirror(crm, member, new_signer)
    return KeyChange(member, str(info.signer), new_signer, tx.block_number)


def vote_key_reset(crm: Crm, who: Principal, member: bytes, new_signer: str) -> KeyResetVote:
    """The acting partner's vote to give the member the key `new_signer` (its own was lost); the key is
    reset once a strict majority of the current partners voted for it. Voting again for the same key
    while the vote counts is refused, unless partners left since and the votes are now a majority: then
    the reset is applied."""
    partner_name = who.acting_partner()
    with sending_as(crm, partner_name):  # cast from the partner's account: after any running sender
        return _vote_key_reset(crm, partner_name, member, new_signer)


def _vote_key_reset(crm: Crm, partner_name: str, member: bytes, new_signer: str) -> KeyResetVote:
    if not is_address(new_signer):
        raise MalformedInput(f"not an address: {new_signer!r}")
    new_signer = to_checksum_address(new_signer)
    voter = _relayer(crm, partner_name, member)
    members = crm.coalition.members
    _keyed_member(crm, member, new_signer)
    mine = members.reset_vote_of(member, voter.address)
    if mine.counts and mine.new_signer == new_signer:
        votes, partners = members.reset_votes(member, new_signer)
        if votes * 2 <= partners:
            lapses = datetime.fromtimestamp(mine.counts_until, UTC)
            raise InvalidInput(
                f"{partner_name!r} has already voted to give member 0x{member.hex()} the key {new_signer}"
                f" (its vote counts until {lapses:%Y-%m-%d %H:%M UTC}): {votes} of {partners // 2 + 1}"
                " votes, not yet reset"
            )
        members.apply_signer_reset(voter, member, new_signer)
        _mirror(crm, member, new_signer)
        return KeyResetVote(member, new_signer, votes, partners, True, None)
    moved_from = mine.new_signer if mine.counts else None  # a counting vote for another key moves
    tally = members.vote_signer_reset(voter, member, new_signer)
    until: datetime | None = None
    if tally.reset:
        _mirror(crm, member, new_signer)
    else:
        until = datetime.fromtimestamp(members.reset_vote_of(member, voter.address).counts_until, UTC)
    return KeyResetVote(member, new_signer, tally.votes, tally.partners, tally.reset, until, moved_from)


def _relayer(crm: Crm, partner_name: str, member: bytes) -> LocalAccount:
    """The acting partner's signing key, once the partner and the member check out in this store: a
    member the store knows as erased is refused here; one it does not know (another home's customer)
    is left to the chain."""
    with crm.unit_of_work() as db:
        crm.partner(db, partner_name)
        if customers.status_of(db, member) is CustomerStatus.ERASED:
            raise CustomerIsErased(f"member 0x{member.hex()} was erased")
    return crm.signer(partner_name)


def _keyed_member(crm: Crm, member: bytes, new_signer: str) -> MemberInfo:
    """The member as the chain knows it, refused where the contract would refuse a change of its key."""
    info = crm.coalition.members.member(member)
    if info.erased:
        raise CustomerIsErased(f"member 0x{member.hex()} was erased")
    if not info.enrolled:
        raise NotFound(f"member 0x{member.hex()} is not enrolled on chain")
    if info.signer is None:
        raise InvalidInput(
            f"member 0x{member.hex()} has no key of its own to change: its home partner binds its first"
            " (`customer key bind`)"
        )
    if new_signer == info.signer:
        raise InvalidInput(f"{new_signer} is member 0x{member.hex()}'s key already")
    return info


def _mirror(crm: Crm, member: bytes, signer: str) -> None:
    """Keep the store's copy of the member's key (its home's enrolment row, if this store holds it) in
    step with the chain, which stays the authority."""
    with crm.unit_of_work() as db:
        enrolments.set_signer(db, member, signer)


def write_new_file(path: Path, content: bytes) -> None:
    """Create `path` readable by its owner only, with `content`; refuses (InvalidInput) if it exists."""
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise MalformedInput(f"{path} exists: a key file is never overwritten") from None
    except OSError as exc:
        raise MalformedInput(f"cannot create {path}: {exc.strerror}") from None
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(content)
