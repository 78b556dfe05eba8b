"""An invitation: how a customer enrolled without a key comes to hold one, with nothing but a browser.

Her home partner invites her (`ledgercrm customer invite MEMBER`): a one-time code, good for a few
days, printed once and never stored (only its SHA-256), for a member of that partner who has no key
yet. Her browser opens the link, makes a new key, lets her save its keystore, asks here for the
binding's typed data (`binding_typed_data` for her member id, at its current nonce), signs it, and sends
the signature back with the code: her home partner binds the key on chain with that signature, through
the very use case `customer key bind` runs (`bind_customer_key`). The code is used then, and only then:
a refused binding leaves it good.

A code names one member and binds one key, once: the refusals say which of these failed (unknown code,
used, expired, the member holds a key already, the binding signed by another key than it names).
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from eth_utils import is_address, to_checksum_address

from api.context import Crm
from api.errors import Conflict, Gone, InvalidInput, NotFound
from api.principal import Principal
from api.usecases import signing
from api.usecases.customer_keys import bind_customer_key, enrolled_here
from api.usecases.customers import owned_customer
from offchain.models import Invitation
from offchain.repositories import invitations, partners

DEFAULT_LIFETIME = timedelta(days=7)
MAX_LIFETIME = timedelta(days=30)
CODE_PREFIX = "inv_"


@dataclass(frozen=True)
class Invited:
    member: bytes
    code: str  # shown once: the store keeps its hash only
    expires_at: datetime


@dataclass(frozen=True)
class Bound:
    member: bytes
    signer: str


def _hash(code: str) -> bytes:
    return hashlib.sha256(code.encode()).digest()


def invite_customer(
    crm: Crm, who: Principal, member: bytes, *, lifetime: timedelta = DEFAULT_LIFETIME
) -> Invited:
    """A one-time code for `member`, a customer of the acting partner enrolled on chain without a key,
    good for `lifetime`. Each call makes a new code; an earlier one stays good until used or expired,
    and the first binding ends them all (the member then holds a key)."""
    partner_name = who.acting_partner()
    if not timedelta(minutes=5) <= lifetime <= MAX_LIFETIME:
        raise InvalidInput(f"an invitation is good for 5 minutes to {MAX_LIFETIME.days} days")
    with crm.unit_of_work() as db:
        owned_customer(crm, db, partner_name, member)  # NotFound for anyone else's
        partner = crm.partner(db, partner_name)
    _keyless(crm, member, partner.address, partner_name)
    code = CODE_PREFIX + secrets.token_urlsafe(24)
    now = datetime.now(UTC)
    with crm.unit_of_work() as db:
        invitations.add(
            db,
            Invitation(
                partner_id=partner.id,
                member_id=member,
                code_hash=_hash(code),
                created_at=now,
                expires_at=now + lifetime,
            ),
        )
    return Invited(member, code, now + lifetime)


def _keyless(crm: Crm, member: bytes, home: str, partner_name: str) -> None:
    """Refuse a member the chain says is erased, not enrolled by `home`, or holding a key already."""
    info = enrolled_here(crm, member, home, partner_name)
    if info.signer is not None:
        raise Conflict(
            f"member 0x{member.hex()} holds a key already ({info.signer}): an invitation is for a first key"
        )


@dataclass(frozen=True)
class _Open:
    invitation_id: int
    member: bytes
    partner: str
    home: str


def _open(crm: Crm, code: str, now: datetime) -> _Open:
    """The invitation `code` names, if it is good now."""
    if not isinstance(code, str) or not code.startswith(CODE_PREFIX) or len(code) > 100:
        raise NotFound("that is not an invitation code: check the link you were given")
    with crm.unit_of_work() as db:
        found = invitations.by_code_hash(db, _hash(code))
        partner = None if found is None else partners.by_id(db, found.partner_id)
    if found is None or found.id is None or partner is None:
        raise NotFound("no invitation has this code: check the link you were given")
    if found.used_at is not None:
        raise Gone("this invitation was used already: sign in with the key file you saved then")
    if found.expires_at.replace(tzinfo=found.expires_at.tzinfo or UTC) <= now:
        raise Gone(f"this invitation expired: ask {partner.name} for a new one")
    _keyless(crm, found.member_id, partner.address, partner.name)
    return _Open(found.id, found.member_id, partner.name, partner.address)


def invitation_typed_data(crm: Crm, code: str, signer: str) -> tuple[bytes, dict[str, Any]]:
    """The member the invitation is for, and the typed data by which the new key `signer` signs its
    binding to it."""
    invited = _open(crm, code, datetime.now(UTC))
    return signing.binding_typed_data(crm, signer, member=invited.member)


def accept_invitation(crm: Crm, code: str, signed: signing.SignedMessage) -> Bound:
    """Bind the key that signed `signed` (a SignerBinding from `invitation_typed_data`) to the invited
    member, relayed by the member's home partner; the code is used once the chain has the binding."""
    now = datetime.now(UTC)
    invited = _open(crm, code, now)
    signer = str(signed.message.get("signer", ""))
    if not is_address(signer):
        raise InvalidInput("the binding names no key (signer is not an address)")
    signer = to_checksum_address(signer)
    member, authorization = signing.binding_of(signed, signer)
    if member != invited.member:
        raise InvalidInput("the binding is for another member than this invitation's")
    if not crm.coalition.members.binds(member, signer, authorization):
        raise InvalidInput(f"the binding is not signed by the key it names ({signer})")
    # bound first, then spent: a binding the chain refuses leaves the code good; a second request with
    # the same code finds the member keyed (the chain refuses a second first key in any case)
    bind_customer_key(crm, Principal.of_partner(invited.partner), member, signer, authorization)
    with crm.unit_of_work() as db:
        invitations.use(db, invited.invitation_id, now)
    return Bound(member, signer)
