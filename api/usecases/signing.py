"""What a customer signs, and how a partner relays it, without any partner process holding her key.

The customer's device (the browser through the HTTP API, or `ledgercrm customer sign` run by the
customer herself) asks for the EIP-712 typed data of what she means to do (`consent_typed_data`,
`redeem_typed_data`, `key_change_typed_data`: `{domain, types, primaryType, message}` with her current
nonce and a deadline, in the JSON form eth-account's `sign_typed_data(full_message=...)` and ethers'
`signTypedData` take), signs it with her own key, and hands the signature to a partner. The partner
relays it (`relay_*`, or the consent, points and key use cases given a `SignedMessage`): everything the
contract would check is checked first, with words (another member, partner, purpose, amount, key;
expired; already used), so a refused signature writes nothing anywhere.

A consent's signature covers the hash of its receipt (ISO/IEC TS 27560 fields), so the receipt document
travels with the signature (`SignedMessage.receipt`) and the relaying partner stores exactly that one.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_account.signers.local import LocalAccount
from eth_utils import is_address, to_checksum_address

from api.context import Crm
from api.errors import InvalidInput, MalformedInput, NotFound
from api.principal import Principal
from ledger.clients import MemberInfo, purpose_id
from ledger.clients.members import MAX_SIGNATURE_LIFETIME, Authorization
from offchain.canonical import canonical_json

SIGNATURE_SCHEMA = "ledgercrm/customer-signature/v1"
MAX_SIGNATURE_FILE = 64 * 1024


@dataclass(frozen=True)
class SignedMessage:
    """A customer's EIP-712 signature with the typed data it signs (and, for a consent, the receipt
    document whose hash the message carries)."""

    typed_data: dict[str, Any]
    signature: bytes
    receipt: dict[str, Any] | None = None

    @property
    def primary(self) -> str:
        return str(self.typed_data.get("primaryType"))

    @property
    def message(self) -> dict[str, Any]:
        message = self.typed_data.get("message")
        return message if isinstance(message, dict) else {}

    def to_json(self) -> dict[str, Any]:
        document: dict[str, Any] = {
            "schema": SIGNATURE_SCHEMA,
            "typedData": self.typed_data,
            "signature": "0x" + self.signature.hex(),
        }
        if self.receipt is not None:
            document["receipt"] = self.receipt
        return document


# --- what the customer signs ---------------------------------------------------------------------------


def consent_typed_data(
    crm: Crm,
    who: Principal,
    member: bytes,
    partner_name: str,
    purpose: str,
    *,
    withdraw: bool = False,
    expires_at: datetime | None = None,
    terms: Any = None,
    deadline: int | None = None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The typed data of the member's consent (given, or withdrawn) towards `partner_name` for
    `purpose`, and the receipt document it commits to (its SHA-256 is the message's receiptHash)."""
    from api.usecases.consent import ConsentTerms, chain_status, receipt_document
    from offchain.models import ConsentStatus

    _may_sign_for(who, member)
    info = _keyed(crm, member)
    partner = _partner(crm, partner_name)
    status = ConsentStatus.WITHDRAWN if withdraw else ConsentStatus.GIVEN
    if expires_at is not None and (withdraw or expires_at.tzinfo is None):
        raise InvalidInput("an expiry goes with a given consent, with a time zone")
    document = receipt_document(
        partner.name, partner.address, member, purpose, status, expires_at, terms or ConsentTerms(),
        datetime.now(UTC),
    )  # fmt: skip
    message = {
        "member": _hex(member),
        "controller": partner.address,
        "purpose": _hex(purpose_id(purpose)),
        "status": int(chain_status(status)),
        "receiptHash": _hex(hashlib.sha256(canonical_json(document)).digest()),
        "expiresAt": int(expires_at.timestamp()) if expires_at else 0,
        "nonce": info.nonce,
        "deadline": _deadline(crm, deadline),
    }
    return crm.coalition.members.typed_data("Consent", message), document


def redeem_typed_data(
    crm: Crm, who: Principal, member: bytes, partner_name: str, amount: int, *, deadline: int | None = None
) -> dict[str, Any]:
    """The typed data of the member's redemption of `amount` points at `partner_name`."""
    from api.usecases.loyalty import MAX_POINTS_PER_EVENT

    _may_sign_for(who, member)
    if not 0 < amount <= MAX_POINTS_PER_EVENT:
        raise InvalidInput(f"an amount is a whole number of points from 1 to {MAX_POINTS_PER_EVENT:,}")
    info = _keyed(crm, member)
    partner = _partner(crm, partner_name)
    message = {
        "member": _hex(member),
        "partner": partner.address,
        "amount": amount,
        "ref": _hex(hashlib.sha256(os.urandom(32)).digest()),  # a fresh reference, never personal data
        "nonce": info.nonce,
        "deadline": _deadline(crm, deadline),
    }
    return crm.coalition.members.typed_data("Redeem", message)


def key_change_typed_data(
    crm: Crm, who: Principal, member: bytes, new_signer: str, *, deadline: int | None = None
) -> dict[str, Any]:
    """The typed data of the member's change of her key to `new_signer` (signed with her current key)."""
    _may_sign_for(who, member)
    if not is_address(new_signer):
        raise MalformedInput(f"not an address: {new_signer!r}")
    info = _keyed(crm, member)
    if to_checksum_address(new_signer) == info.signer:
        raise InvalidInput(f"{new_signer} is member 0x{member.hex()}'s key already")
    message = {
        "member": _hex(member),
        "newSigner": to_checksum_address(new_signer),
        "nonce": info.nonce,
        "deadline": _deadline(crm, deadline),
    }
    return crm.coalition.members.typed_data("SignerChange", message)


def erasure_typed_data(
    crm: Crm, who: Principal, member: bytes, *, deadline: int | None = None
) -> dict[str, Any]:
    """The typed data by which the member asks, with her own key, for her own erasure."""
    _may_sign_for(who, member)
    info = _keyed(crm, member)
    message = {"member": _hex(member), "nonce": info.nonce, "deadline": _deadline(crm, deadline)}
    return crm.coalition.members.typed_data("Erasure", message)


def binding_typed_data(
    crm: Crm, signer: str, *, member: bytes | None = None, deadline: int | None = None
) -> tuple[bytes, dict[str, Any]]:
    """The member id, and the typed data by which the key `signer` signs its binding to it: with no
    `member`, a new member id (nonce 0: the customer is not enrolled yet, `customer add`); with one, a
    keyless member's at its current nonce (`customer key bind`). Signed on the customer's device (over
    HTTP, her browser; at the command line, `customer sign binding`)."""
    from offchain.vault import new_member_id

    if not is_address(signer):
        raise MalformedInput(f"signer: not an address: {signer!r}")
    nonce = 0
    if member is None:
        member = new_member_id()
    else:
        info = crm.coalition.members.member(member)
        if not info.enrolled or info.erased:
            raise NotFound(f"member 0x{member.hex()} is not enrolled on chain, or was erased")
        if info.signer is not None:
            raise InvalidInput(
                f"member 0x{member.hex()} already has a key ({info.signer}): a change is signed with it"
                " (`customer sign key-change`)"
            )
        nonce = info.nonce
    message = {
        "member": _hex(member),
        "signer": to_checksum_address(signer),
        "nonce": nonce,
        "deadline": _deadline(crm, deadline),
    }
    return member, crm.coalition.members.typed_data("SignerBinding", message)


def home_move_typed_data(
    crm: Crm, who: Principal, member: bytes, new_home: str, *, deadline: int | None = None
) -> dict[str, Any]:
    """The typed data by which the member moves her home to `new_home` (a partner's name in this home,
    or its address), signed with her own key."""
    _may_sign_for(who, member)
    info = _keyed(crm, member)
    home = to_checksum_address(new_home) if is_address(new_home) else _partner(crm, new_home).address
    if not crm.coalition.consortium.is_partner(home):
        raise InvalidInput(f"{new_home} is not a partner of the consortium, so it cannot be a member's home")
    if info.home == home:
        raise InvalidInput(f"{new_home} is member 0x{member.hex()}'s home partner already")
    message = {
        "member": _hex(member),
        "newHome": to_checksum_address(home),
        "nonce": info.nonce,
        "deadline": _deadline(crm, deadline),
    }
    return crm.coalition.members.typed_data("HomeMove", message)


def binding_of(signed: SignedMessage, signer: str) -> tuple[bytes, Authorization]:
    """The member id and the authorization a signed SignerBinding carries (checked for what it binds:
    the contract, and `register_customer` before it, check the signature itself)."""
    message = signed.message
    if signed.primary != "SignerBinding":
        raise InvalidInput("binding: not the SignerBinding typed data this server handed out")
    if str(message.get("signer", "")).lower() != str(signer).lower():
        raise InvalidInput(f"binding: signed for the key {message.get('signer')}, not {signer}")
    try:
        member = bytes.fromhex(str(message.get("member", "")).removeprefix("0x"))
    except ValueError:
        member = b""
    deadline = message.get("deadline")
    if len(member) != 32 or not isinstance(deadline, int):
        raise InvalidInput("binding: no member id or deadline in the signed message")
    return member, Authorization(signed.signature, deadline)


def check_binding(
    crm: Crm, signed: SignedMessage, signer: str, member: bytes | None = None
) -> tuple[bytes, Authorization]:
    """`binding_of`, for this coalition's contracts and (given `member`) for that member: what a partner
    relaying a binding file checks before anything is written (the key's own signature is checked by
    `register_customer` and `bind_customer_key`, as the contract will)."""
    if not is_address(signer):
        raise MalformedInput(f"signer: not an address: {signer!r}")
    if signed.typed_data.get("domain") != crm.coalition.members.domain():
        raise InvalidInput(
            "the binding was signed for another chain or another coalition's contracts, not this one"
        )
    bound, authorization = binding_of(signed, signer)
    if member is not None and bound != member:
        raise InvalidInput(f"the binding is for member 0x{bound.hex()}, not 0x{member.hex()}")
    return bound, authorization


def sign(
    key: LocalAccount, typed_data: dict[str, Any], receipt: dict[str, Any] | None = None
) -> SignedMessage:
    """Sign `typed_data` with the customer's own key: run on her device, never in a partner's process."""
    signed = Account.sign_typed_data(key.key, full_message=typed_data)
    return SignedMessage(typed_data, bytes(signed.signature), receipt)


def customer_signs_consent(
    crm: Crm,
    key: LocalAccount,
    member: bytes,
    partner_name: str,
    purpose: str,
    *,
    withdraw: bool = False,
    expires_at: datetime | None = None,
    deadline: int | None = None,
) -> SignedMessage:
    """The member's consent, prepared and signed with her key, as her own device does it."""
    typed, receipt = consent_typed_data(
        crm, Principal.of_customer(member), member, partner_name, purpose,
        withdraw=withdraw, expires_at=expires_at, deadline=deadline,
    )  # fmt: skip
    return sign(key, typed, receipt)


def customer_signs_redeem(
    crm: Crm, key: LocalAccount, member: bytes, partner_name: str, amount: int, *, deadline: int | None = None
) -> SignedMessage:
    """The member's redemption, prepared and signed with her key, as her own device does it."""
    typed = redeem_typed_data(
        crm, Principal.of_customer(member), member, partner_name, amount, deadline=deadline
    )
    return sign(key, typed)


def customer_signs_key_change(
    crm: Crm, key: LocalAccount, member: bytes, new_signer: str, *, deadline: int | None = None
) -> SignedMessage:
    """The member's change of key, prepared and signed with her current key, on her own device."""
    typed = key_change_typed_data(crm, Principal.of_customer(member), member, new_signer, deadline=deadline)
    return sign(key, typed)


def customer_signs_binding(
    crm: Crm, key: LocalAccount, member: bytes | None = None, *, deadline: int | None = None
) -> SignedMessage:
    """Her key's own signature of its binding to `member` (None: a new member id, for her enrolment),
    made on her own device: the partner gets the file, never the key."""
    _bound, typed = binding_typed_data(crm, key.address, member=member, deadline=deadline)
    return sign(key, typed)


def customer_signs_home_move(
    crm: Crm, key: LocalAccount, member: bytes, new_home: str, *, deadline: int | None = None
) -> SignedMessage:
    """The member's move of her home to `new_home`, signed with her key on her own device."""
    typed = home_move_typed_data(crm, Principal.of_customer(member), member, new_home, deadline=deadline)
    return sign(key, typed)


def customer_signs_erasure(
    crm: Crm, key: LocalAccount, member: bytes, *, deadline: int | None = None
) -> SignedMessage:
    """The member's request to be erased, signed with her key on her own device."""
    return sign(key, erasure_typed_data(crm, Principal.of_customer(member), member, deadline=deadline))


# --- the signature file ----------------------------------------------------------------------------------


def write_signature_file(path: Path, signed: SignedMessage) -> None:
    """Write the signature file (JSON: the typed data, the signature, a consent's receipt); refuses a
    file that exists."""
    from api.usecases.customer_keys import write_new_file

    write_new_file(path, (json.dumps(signed.to_json(), indent=2) + "\n").encode())


def read_signature_file(path: Path) -> SignedMessage:
    """A signature file as `SignedMessage`; InvalidInput, with words, if it is not one."""
    try:
        if path.stat().st_size > MAX_SIGNATURE_FILE:
            raise MalformedInput(f"{path} is not a signature file (over {MAX_SIGNATURE_FILE // 1024} KiB)")
        document = json.loads(path.read_text())
    except OSError as exc:
        raise MalformedInput(f"cannot read the signature file {path}: {exc.strerror}") from None
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise MalformedInput(f"{path} is not a signature file (not JSON)") from None
    return parse_signed(document, str(path))


def parse_signed(document: Any, source: str = "the signature") -> SignedMessage:
    """A signature document (the file's JSON) as `SignedMessage`."""
    if not isinstance(document, dict) or document.get("schema") != SIGNATURE_SCHEMA:
        raise MalformedInput(f"{source} is not a ledgercrm signature file ({SIGNATURE_SCHEMA})")
    typed, signature, receipt = document.get("typedData"), document.get("signature"), document.get("receipt")
    return signed_message(typed, signature, receipt, source)


def signed_message(
    typed_data: Any, signature: Any, receipt: Any = None, source: str = "the signature"
) -> SignedMessage:
    """Typed data and a signature (0x + 130 hex digits), as a signature file or an HTTP body carries
    them, as `SignedMessage`; MalformedInput, naming `source`, if they are not that. The one place that
    decodes a customer's signature: what it signs and by whom is `check_signed`'s (or
    `check_binding`'s) to check."""
    if not isinstance(typed_data, dict) or not isinstance(typed_data.get("message"), dict):
        raise MalformedInput(f"{source}: no typed data")
    try:
        raw = bytes.fromhex(signature.removeprefix("0x")) if isinstance(signature, str) else b""
    except ValueError:
        raw = b""
    if len(raw) != 65:
        raise MalformedInput(f"{source}: the signature is not 65 bytes of hex (0x + 130 hex digits)")
    if receipt is not None and not isinstance(receipt, dict):
        raise MalformedInput(f"{source}: the receipt is not a JSON object")
    return SignedMessage(typed_data, raw, receipt)


# --- what the relaying partner checks --------------------------------------------------------------------


def check_signed(
    crm: Crm, signed: SignedMessage, primary: str, member: bytes, expected: dict[str, Any], what: str
) -> Authorization:
    """Refuse, with words, a signature the contract would refuse or that is not for this very act:
    another kind of act, chain or contract; another member; any field of `expected` (message field ->
    (value, words naming it)) that differs; an expired deadline; a used (replayed) nonce; a signature
    not by the member's current key. The authorization to relay, otherwise."""
    members = crm.coalition.members
    if signed.primary != primary:
        raise InvalidInput(f"the signature is for a {signed.primary or 'different'} message, not {what}")
    if signed.typed_data.get("domain") != members.domain():
        raise InvalidInput(
            "the signature was made for another chain or another coalition's contracts, not this one"
        )
    message = signed.message
    signed_member = str(message.get("member", "")).lower()
    if signed_member != _hex(member):
        raise InvalidInput(f"the signature is for member {signed_member or '?'}, not 0x{member.hex()}")
    for field, (value, words) in expected.items():
        found = message.get(field)
        same = str(found).lower() == str(value).lower() if isinstance(value, str) else found == value
        if not same:
            raise InvalidInput(f"the signature is {words(found)}")
    info = crm.coalition.members.member(member)
    if not info.enrolled:
        raise NotFound(f"member 0x{member.hex()} is not enrolled on chain")
    if info.signer is None:
        raise InvalidInput(f"member 0x{member.hex()} has no key of its own bound: nothing it signs counts")
    deadline, nonce = message.get("deadline"), message.get("nonce")
    if not isinstance(deadline, int) or not isinstance(nonce, int):
        raise InvalidInput("the signature's message has no deadline or nonce")
    now = members.chain_time()
    if deadline <= now:
        ended = datetime.fromtimestamp(deadline, UTC)
        raise InvalidInput(f"the signature expired at {ended:%Y-%m-%d %H:%M:%S UTC}: the member signs again")
    if nonce != info.nonce:
        raise InvalidInput(
            f"the signature was already used, or another made since counted (it was made with nonce {nonce},"
            f" the member's is now {info.nonce}): the member signs again"
        )
    try:
        signer = Account.recover_message(
            encode_typed_data(full_message=signed.typed_data), signature=signed.signature
        )
    except Exception:  # eth-account raises several kinds on a malformed message or signature
        raise InvalidInput("the signature does not verify against its typed data") from None
    if signer != info.signer:
        raise InvalidInput(
            f"the signature was made by {signer}, not by member 0x{member.hex()}'s key ({info.signer})"
        )
    return Authorization(signed.signature, deadline)


# --- helpers --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _PartnerRef:
    name: str
    address: str


def _partner(crm: Crm, name: str) -> _PartnerRef:
    with crm.unit_of_work() as db:
        partner = crm.partner(db, name)
        return _PartnerRef(partner.name, partner.address)


def _keyed(crm: Crm, member: bytes) -> MemberInfo:
    info = crm.coalition.members.member(member)
    if not info.enrolled or info.erased:
        raise NotFound(f"member 0x{member.hex()} is not enrolled on chain, or was erased")
    if info.signer is None:
        raise InvalidInput(
            f"member 0x{member.hex()} has no key of its own: its home partner acts for it, nothing to sign"
        )
    return info


def _may_sign_for(who: Principal, member: bytes) -> None:
    """A customer prepares only her own messages (the CLI's `customer sign` runs as the member)."""
    if who.member is not None and who.member != member:
        raise NotFound(f"no member 0x{member.hex()}")


def _deadline(crm: Crm, deadline: int | None) -> int:
    members = crm.coalition.members
    if deadline is None:
        return members.signature_lifetime_end()
    if deadline > members.chain_time() + MAX_SIGNATURE_LIFETIME:
        raise InvalidInput(f"a signature's deadline is at most {MAX_SIGNATURE_LIFETIME // 3600} hours ahead")
    return deadline


def _hex(value: bytes) -> str:
    return "0x" + value.hex()


__all__ = [
    "SIGNATURE_SCHEMA",
    "SignedMessage",
    "binding_of",
    "binding_typed_data",
    "check_binding",
    "check_signed",
    "consent_typed_data",
    "customer_signs_binding",
    "customer_signs_consent",
    "customer_signs_erasure",
    "customer_signs_home_move",
    "customer_signs_key_change",
    "customer_signs_redeem",
    "erasure_typed_data",
    "home_move_typed_data",
    "key_change_typed_data",
    "parse_signed",
    "read_signature_file",
    "redeem_typed_data",
    "sign",
    "signed_message",
    "write_signature_file",
]
