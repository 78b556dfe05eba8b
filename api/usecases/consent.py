"""Consent: a receipt off chain (ISO/IEC TS 27560 / W3C DPV fields), its hash on chain, validity from
the chain's history. Receipts hold ids and vocabulary only, never personal data."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlmodel import Session

from api.context import Crm
from api.errors import CustomerIsErased, InvalidInput, MalformedInput, NotAllowed, NotFound
from api.evidence import records
from api.evidence.outbox import Outbox, sending_as
from api.principal import Principal
from api.usecases.customers import member_status, readable_member
from api.usecases.partners import partner_names
from api.usecases.signing import SignedMessage, check_signed
from ledger.chain import SignedTx
from ledger.clients import PURPOSES, MemberInfo, purpose_id
from ledger.clients import ConsentStatus as ChainConsentStatus
from ledger.clients.consent import (
    ConsentEvent as ChainConsentEvent,
)
from ledger.clients.consent import (
    ConsentRecord,
    ConsentSource,
    consent_events,
    record_batch_max,
)
from offchain.canonical import canonical_json
from offchain.models import ConsentReceipt, ConsentStatus, CustomerStatus
from offchain.repositories import consents, customers, enrolments, partners
from offchain.repositories.partners import PartnerRecord

RECEIPT_SCHEMA = "ledgercrm/consent-receipt/v1"
LOYALTY = "loyalty"


@dataclass(frozen=True)
class ConsentTerms:
    """What the controller told the member and how consent was collected (DPV vocabulary)."""

    legal_basis: str = "dpv:Consent"
    notice_version: str = "1"
    collection_method: str = "web-form"
    withdrawal_method: str = "account settings or any partner's customer service"


def give_consent(
    crm: Crm,
    who: Principal,
    member: bytes,
    purpose: str,
    *,
    expires_at: datetime | None = None,
    terms: ConsentTerms | None = None,
    signed: SignedMessage | None = None,
) -> ConsentReceipt:
    """Record the member's consent to the acting partner for `purpose`: signed by the member (`signed`,
    made on her device from `signing.consent_typed_data`) if it holds a key, relayed by the partner;
    else attested by its home partner, which the acting partner must then be. Everything is checked
    before anything is written."""
    return _record(
        crm,
        who.acting_partner(),
        member,
        purpose,
        ConsentStatus.GIVEN,
        expires_at,
        terms or ConsentTerms(),
        signed,
    )


def withdraw_consent(
    crm: Crm,
    who: Principal,
    member: bytes,
    purpose: str,
    *,
    terms: ConsentTerms | None = None,
    signed: SignedMessage | None = None,
) -> ConsentReceipt:
    """Withdraw the member's consent to the acting partner: any partner records a withdrawal towards
    itself (withdrawing is as easy as giving), or the member signs it (`signed`). A consent that is not
    given cannot be withdrawn."""
    partner_name = who.acting_partner()
    return _record(
        crm,
        partner_name,
        member,
        purpose,
        ConsentStatus.WITHDRAWN,
        None,
        terms or ConsentTerms(),
        signed,
    )


def _record(
    crm: Crm,
    partner_name: str,
    member: bytes,
    purpose: str,
    status: ConsentStatus,
    expires_at: datetime | None,
    terms: ConsentTerms,
    signature: SignedMessage | None,
) -> ConsentReceipt:
    # signed with the partner's key and sent at once: after any running sender of the partner
    with sending_as(crm, partner_name):
        return _record_now(crm, partner_name, member, purpose, status, expires_at, terms, signature)


def _record_now(
    crm: Crm,
    partner_name: str,
    member: bytes,
    purpose: str,
    status: ConsentStatus,
    expires_at: datetime | None,
    terms: ConsentTerms,
    signature: SignedMessage | None,
) -> ConsentReceipt:
    _check_terms(purpose, expires_at)
    now = datetime.now(UTC)
    with crm.unit_of_work() as db:
        partner = crm.partner(db, partner_name)
        if member_status(db, member) is CustomerStatus.ERASED:
            raise CustomerIsErased(f"member 0x{member.hex()} was erased")
    # what the chain will check, checked first, so that a refusal writes nothing anywhere
    on_chain = chain_member(crm, member)
    purpose_bytes = purpose_id(purpose)
    signed = _check_authority(on_chain, member, partner.address, partner_name, status, signature)
    authorization = None
    row = _receipt_row(partner, member, purpose, status, expires_at, terms, now)
    if signature is not None:
        verb = "gives" if status is ConsentStatus.GIVEN else "withdraws"
        authorization = check_signed(
            crm,
            signature,
            "Consent",
            member,
            {
                "controller": (
                    partner.address,
                    lambda v: f"towards {v}, not {partner_name!r} ({partner.address})",
                ),
                "purpose": (
                    "0x" + purpose_bytes.hex(),
                    lambda v: f"for another purpose ({v}), not {purpose!r}",
                ),
                "status": (
                    int(chain_status(status)),
                    lambda v: f"for another status ({v}), not one that {verb} consent",
                ),
            },
            f"a consent {status.value}",
        )
        # the receipt she signed (its hash is in the message) is this consent's, and is stored as it is
        _, expires_at, terms, now = _signed_receipt(partner, member, purpose, status, signature)
        row = _receipt_row(partner, member, purpose, status, expires_at, terms, now)
        message = signature.message
        if str(message.get("receiptHash", "")).lower() != "0x" + row["receipt_hash"].hex():
            raise InvalidInput("the signature is of another receipt than the one its file holds")
        if message.get("expiresAt") != (int(expires_at.timestamp()) if expires_at else 0):
            raise InvalidInput("the signature is for another expiry than its receipt's")
    if status is ConsentStatus.WITHDRAWN:
        history = crm.coalition.consent.history(member, partner.address, purpose_bytes)
        if not history or history[-1].status is not ChainConsentStatus.GIVEN:
            raise InvalidInput(
                f"member 0x{member.hex()} has no {purpose!r} consent to {partner_name!r} to withdraw"
            )
    with crm.unit_of_work() as db:
        # constraint errors surface here, before the chain is touched
        receipt = consents.add(db, row)
        receipt_hash = receipt.receipt_hash
        expiry = int(expires_at.timestamp()) if expires_at else 0
        # The chain call comes last inside the transaction: if it reverts, the row is rolled back.
        if signed and authorization is not None:
            tx = crm.coalition.consent.record_signed(
                crm.signer(partner_name),
                member,
                partner.address,
                purpose_bytes,
                chain_status(status),
                receipt_hash,
                expiry,
                authorization,
            )
        else:
            tx = crm.coalition.consent.record(
                crm.signer(partner_name), member, purpose_bytes, chain_status(status), receipt_hash, expiry
            )
        receipt.tx_hash, receipt.block_number = tx.tx_hash, tx.block_number
    return receipt


def chain_member(crm: Crm, member: bytes) -> MemberInfo:
    """The member as the chain knows it; refused if it is not enrolled there (yet) or was erased."""
    info = crm.coalition.members.member(member)
    if info.erased:
        raise CustomerIsErased(f"member 0x{member.hex()} was erased")
    if not info.enrolled:
        raise NotFound(
            f"member 0x{member.hex()} is not enrolled on chain yet (its home partner's enrolment is pending)"
        )
    return info


def _check_authority(
    info: MemberInfo,
    member: bytes,
    partner_address: str,
    partner_name: str,
    status: ConsentStatus,
    signature: SignedMessage | None,
) -> bool:
    """Whether the record goes on chain signed by the customer (else attested by the partner); refuses
    what the contract would refuse (the signature itself is checked by `signing.check_signed`)."""
    if signature is not None:
        if info.signer is None:
            raise InvalidInput(f"member 0x{member.hex()} has no key of its own bound: it cannot sign")
        return True
    if status is ConsentStatus.WITHDRAWN:
        return False  # a partner may always record a withdrawal towards itself
    if info.signer is not None:
        raise NotAllowed(
            f"member 0x{member.hex()} holds its own key: consent must be signed with it (the customer"
            " runs `ledgercrm customer sign consent-give`; the partner relays it with --signature FILE)"
        )
    if info.home != partner_address:
        raise NotAllowed(
            f"only member 0x{member.hex()}'s home partner may attest its consent, not {partner_name!r};"
            " a member with a key of its own may consent to any partner by signing"
        )
    return False


def check_purposes(purposes: Sequence[str]) -> tuple[str, ...]:
    """`purposes` without repeats, in order; refused unless each is a declared purpose (the list the
    ConsentRegistry knows) and there is at least one."""
    if not purposes:
        raise MalformedInput(f"no purpose given: one or more of {', '.join(PURPOSES)}")
    for purpose in purposes:
        _check_purpose(purpose)
    return tuple(dict.fromkeys(purposes))


def _check_purpose(purpose: str) -> None:
    if purpose not in PURPOSES:
        raise MalformedInput(f"unknown purpose {purpose!r}: one of {', '.join(PURPOSES)}")


def _check_terms(purpose: str, expires_at: datetime | None) -> None:
    _check_purpose(purpose)
    if expires_at is not None and expires_at.tzinfo is None:
        raise InvalidInput("expires_at needs a time zone")


def chain_status(status: ConsentStatus) -> ChainConsentStatus:
    """The store's consent status as the contract numbers it (the one place the two enums meet)."""
    return ChainConsentStatus.GIVEN if status is ConsentStatus.GIVEN else ChainConsentStatus.WITHDRAWN


def _receipt_row(
    partner: PartnerRecord,
    member: bytes,
    purpose: str,
    status: ConsentStatus,
    expires_at: datetime | None,
    terms: ConsentTerms,
    now: datetime,
) -> dict[str, Any]:
    """The receipt row for one consent event (every column): its canonical JSON document and that
    document's hash. A plain dict, so that staging thousands is one executemany INSERT."""
    document = receipt_document(
        partner.name, partner.address, member, purpose, status, expires_at, terms, now
    )
    receipt_json = canonical_json(document)
    return {
        "partner_id": partner.id,
        "member_id": member,
        "purpose": purpose,
        "status": status,
        "legal_basis": terms.legal_basis,
        "notice_version": terms.notice_version,
        "controller": partner.name,
        "collection_method": terms.collection_method,
        "expires_at": expires_at,
        "withdrawal_method": terms.withdrawal_method,
        "recorded_at": now,
        "receipt_json": receipt_json.decode(),
        "receipt_hash": hashlib.sha256(receipt_json).digest(),
        "tx_hash": None,
        "block_number": None,
    }


def receipt_document(
    controller_name: str,
    controller_address: str,
    member: bytes,
    purpose: str,
    status: ConsentStatus,
    expires_at: datetime | None,
    terms: ConsentTerms,
    now: datetime,
) -> dict[str, Any]:
    """The receipt of one consent event as a JSON object (its canonical JSON's SHA-256 goes on chain)."""
    _check_terms(purpose, expires_at)
    return {
        "schema": RECEIPT_SCHEMA,
        "member": "0x" + member.hex(),
        "controller": {"name": controller_name, "address": controller_address},
        "purpose": purpose,
        "dpvPurpose": PURPOSES[purpose],
        "status": status.value,
        "legalBasis": terms.legal_basis,
        "noticeVersion": terms.notice_version,
        "collectionMethod": terms.collection_method,
        "withdrawalMethod": terms.withdrawal_method,
        "timestamp": now.isoformat(timespec="microseconds"),
        "expiresAt": expires_at.astimezone(UTC).isoformat() if expires_at else None,
    }


def _signed_receipt(
    partner: PartnerRecord, member: bytes, purpose: str, status: ConsentStatus, signed: SignedMessage
) -> tuple[dict[str, Any], datetime | None, ConsentTerms, datetime]:
    """The receipt document a customer's signature carries, checked to be this consent's (its hash is
    checked against the signed message with the rest): its expiry, terms and time."""
    document = signed.receipt
    if document is None:
        raise InvalidInput("the signature file holds no consent receipt: the member signs again")
    try:
        expires = document["expiresAt"]
        terms = ConsentTerms(
            legal_basis=str(document["legalBasis"]),
            notice_version=str(document["noticeVersion"]),
            collection_method=str(document["collectionMethod"]),
            withdrawal_method=str(document["withdrawalMethod"]),
        )
        expires_at = datetime.fromisoformat(expires) if expires is not None else None
        now = datetime.fromisoformat(str(document["timestamp"]))
    except (KeyError, TypeError, ValueError):
        raise InvalidInput("the signature file's consent receipt is not a receipt") from None
    if now.tzinfo is None or (expires_at is not None and expires_at.tzinfo is None):
        raise InvalidInput("the signature file's consent receipt has times without a time zone")
    expected = receipt_document(
        partner.name, partner.address, member, purpose, status, expires_at, terms, now
    )
    if canonical_json(expected) != canonical_json(document):
        raise InvalidInput(
            f"the signature's consent receipt is not for this consent ({status.value} towards"
            f" {partner.name!r} for {purpose!r} of member 0x{member.hex()})"
        )
    return document, expires_at, terms, now


# --- bulk consent through the outbox (imports) ------------------------------------------------------
#
# `give_consent` writes the receipt and calls the chain in one store transaction. For thousands of
# members that is one transaction each; the bulk path instead stages receipts (rows with no tx_hash),
# then sends them with `recordBatch`, many per transaction, through the one outbox
# (api/evidence/outbox.py): nothing is recorded twice, whatever crashes where.


@dataclass(frozen=True)
class StagedConsents:
    staged: list[bytes]  # members whose "given" receipt was staged, to be attested on chain
    need_signature: list[bytes]  # members with a key of their own and no receipt: theirs to sign


def stage_consents(
    crm: Crm,
    who: Principal,
    members: Sequence[bytes],
    purpose: str,
    *,
    terms: ConsentTerms | None = None,
    expires_at: datetime | None = None,
) -> StagedConsents:
    """Stage a "given" receipt, attested by the acting partner as the members' home partner, for each
    member that has no receipt at all (given, withdrawn, staged) towards this partner for `purpose`: a
    member who withdrew is never re-consented by an import. A member with a key of its own is left out
    (the chain takes its "given" only signed by it) and listed in `need_signature`; a member whose home
    partner is another is refused. `send_staged_consents` puts the staged ones on chain. One store
    transaction."""
    partner_name = who.acting_partner()
    _check_terms(purpose, expires_at)
    wanted = list(dict.fromkeys(members))
    if not wanted:
        return StagedConsents([], [])
    terms = terms or ConsentTerms()
    now = datetime.now(UTC)
    staged: list[bytes] = []
    with crm.unit_of_work() as db:
        partner = crm.partner(db, partner_name)
        statuses = customers.statuses(db, wanted)
        have = consents.members_with_receipt(db, partner.id, purpose, wanted)
        for member in wanted:
            status = statuses.get(member)
            if status is None:
                raise NotFound(f"no member 0x{member.hex()}")
            if status is CustomerStatus.ERASED:
                raise CustomerIsErased(f"member 0x{member.hex()} was erased")
        todo = [member for member in wanted if member not in have]
        keyed = _holding_a_key(crm, db, partner, todo)
        receipts: list[dict[str, Any]] = []
        for member in todo:
            if member not in keyed:
                receipts.append(
                    _receipt_row(partner, member, purpose, ConsentStatus.GIVEN, expires_at, terms, now)
                )
                staged.append(member)
        consents.insert(db, receipts)
    return StagedConsents(staged, [member for member in todo if member in keyed])


def _holding_a_key(crm: Crm, db: Session, partner: PartnerRecord, members: Sequence[bytes]) -> set[bytes]:
    """Those of `members` that hold a key of their own; refuses a member whose home partner is not
    `partner` (its attestation would revert and stop the partner's consent outbox).

    A member whose enrolment is still on its way (staged or in flight, as an import's new members are)
    goes on chain with the key its enrolment row names; one already enrolled is asked of the chain,
    the authority (its key may have been bound since, or changed by a relay in another home)."""
    rows = enrolments.of_members(db, members)
    keyed: set[bytes] = set()
    for member in members:
        row = rows.get(member)
        if row is not None and row.block_number is None:
            if row.partner_id != partner.id:
                raise NotAllowed(f"member 0x{member.hex()} is not enrolled by {partner.name!r}")
            if row.signer is not None:
                keyed.add(member)
            continue
        info = crm.coalition.members.member(member)
        if info.erased:
            raise CustomerIsErased(f"member 0x{member.hex()} was erased")
        if not info.enrolled or info.home != partner.address:
            raise NotAllowed(
                f"only member 0x{member.hex()}'s home partner may attest its consent, not {partner.name!r}"
            )
        if info.signer is not None:
            keyed.add(member)
    return keyed


def send_staged_consents(
    crm: Crm, who: Principal, *, batch_size: int | None = None, min_batch: int = 1, wait: bool = True
) -> list[Any]:
    """Put every staged or interrupted receipt of the partner on chain, `batch_size` per recordBatch (by
    default, and at most, what the node's block takes: `record_batch_max`), while a batch of at least
    `min_batch` is staged (an import sends full batches only, then the rest at its end); the receipts of
    members whose enrolment is still staged wait for it. The receipts confirmed by this call, oldest first
    (plain rows with the columns `consents.OUTBOX` names). With `wait=False` the batches sent are left in
    flight for the next call to confirm. A partner's outboxes have one sender at a time
    (`api.evidence.outbox.sending`: another waits)."""
    partner_name = who.acting_partner()
    client = crm.coalition.consent
    signer = crm.signer(partner_name)
    with crm.unit_of_work() as db:
        partner_id = crm.partner(db, partner_name).id
    outbox = Outbox(crm, consents.OUTBOX, client, partner_id)
    most = record_batch_max(client.batch_gas_budget())  # once: the limit the last simulation saw
    size = most if batch_size is None else min(batch_size, most)
    min_batch = min(min_batch, size)  # a full batch is one the node's block takes

    def next_batch(db: Session) -> tuple[list[int], SignedTx] | None:
        staged = consents.staged(db, partner_id, size)
        if not staged or len(staged) < min_batch:
            return None
        first = staged[0]
        signed = client.prepare_record_batch(
            signer,
            [bytes(r.member_id) for r in staged],
            purpose_id(first.purpose),
            chain_status(first.status),
            [bytes(r.receipt_hash) for r in staged],
            int(first.expires_at.timestamp()) if first.expires_at else 0,
        )
        return [r.id for r in staged], signed

    return outbox.settle() + outbox.send(next_batch, wait=wait)


@dataclass(frozen=True)
class ConsentEvent:
    receipt: ConsentReceipt
    on_chain: bool  # the chain's record of this receipt's document matches it (status, expiry)


def consent_history(
    crm: Crm, who: Principal, member: bytes, partner_name: str | None = None
) -> list[ConsentEvent]:
    """Every consent event of `member` (towards one partner, or all), oldest first, each checked
    against the chain's history. A partner reads its own customers' (towards every controller), a
    customer its own, the operator anyone's."""
    with crm.unit_of_work() as db:
        readable_member(crm, db, who, member)
        rows = consents.history(db, member, partner_name)
    # "on chain" only when the chain's record of this receipt's document matches the row: the hash
    # column, status or expiry as stored prove nothing
    chain_records: dict[tuple[str, str], dict[bytes, ConsentRecord]] = {}
    events = []
    for receipt, partner in rows:
        key = (partner.address, receipt.purpose)
        if key not in chain_records:
            history = crm.coalition.consent.history(member, partner.address, purpose_id(receipt.purpose))
            chain_records[key] = {r.receipt_hash: r for r in history}
        record = chain_records[key].get(records.receipt_hash(receipt))
        on_chain = receipt.block_number is not None and records.consent_disagreement(receipt, record) is None
        events.append(ConsentEvent(receipt, on_chain))
    return events


def consent_valid(
    crm: Crm, who: Principal, partner_name: str, member: bytes, purpose: str, at: datetime | None = None
) -> bool:
    """Whether the chain says `member` consented to `partner_name` for `purpose` (now, or at `at`)."""
    _check_purpose(purpose)  # an unknown purpose is a mistake to name, not a question with answer no
    if at is not None and at.tzinfo is None:
        raise InvalidInput("the time needs a time zone")
    with crm.unit_of_work() as db:
        readable_member(crm, db, who, member)
        partner = crm.partner(db, partner_name)
    if at is None:
        return crm.coalition.consent.is_valid(member, partner.address, purpose_id(purpose))
    return crm.coalition.consent.is_valid_at(
        member, partner.address, purpose_id(purpose), int(at.timestamp())
    )


# --- following what the chain records towards a partner through others ----------------------------------


@dataclass
class FollowedConsents:
    recorded: int = 0  # records signed through another partner, now followed in the store
    withdrawn: int = 0  # of those, withdrawals
    not_held: int = 0  # records of members this store does not hold (another home's customers)


def follow_consents(crm: Crm, who: Principal) -> FollowedConsents:
    """Each partner `who` acts for follows the chain's consent records towards it: a record the member
    signed and another partner relayed (any partner may relay a signature) has no receipt here, so it
    is recorded here as followed: what the chain says (member, purpose, status, expiry, the receipt
    hash the relaying partner holds the document of, block). Processing never waits for this (earning
    and deciding ask the chain, so a withdrawal made anywhere stops them everywhere at once); it keeps
    the partner's own record of its consents whole. Idempotent."""
    result = FollowedConsents()
    for name in partner_names(crm, who):
        with crm.unit_of_work() as db:
            partner = crm.partner(db, name)
            held = {records.receipt_hash(r) for r in consents.of_partner(db, partner.id)}
        events = [
            e
            for e in consent_events(crm.coalition.consent, partner.address)
            if e.source is ConsentSource.SIGNED and e.receipt_hash not in held
        ]
        relayed = [(e, crm.coalition.consent.relayer(e)) for e in events]
        relayed = [(e, r) for e, r in relayed if r.lower() != partner.address.lower()]
        if not relayed:
            continue
        with crm.unit_of_work() as db:
            names = {p.address.lower(): p.name for p in partners.every(db)}
            known = customers.statuses(db, {e.member for e, _ in relayed})
            taken = consents.existing_hashes(db, [e.receipt_hash for e, _ in relayed])
            rows = []
            for event, relayer in relayed:
                if event.member not in known:
                    result.not_held += 1
                    continue
                if event.receipt_hash in taken:
                    continue  # the relaying partner's own receipt is in this store (one home, both partners)
                rows.append(_followed_row(partner, event, names.get(relayer.lower(), relayer)))
                result.recorded += 1
                result.withdrawn += event.status is ChainConsentStatus.WITHDRAWN
            if rows:
                consents.insert(db, rows)
    return result


def _followed_row(partner: PartnerRecord, event: ChainConsentEvent, relayer: str) -> dict[str, Any]:
    expires = datetime.fromtimestamp(event.expires_at, UTC) if event.expires_at else None
    status = ConsentStatus.GIVEN if event.status is ChainConsentStatus.GIVEN else ConsentStatus.WITHDRAWN
    purpose = next(
        (name for name in PURPOSES if purpose_id(name) == event.purpose), "0x" + event.purpose.hex()
    )
    document = {
        "schema": records.FOLLOWED_SCHEMA,
        "member": "0x" + event.member.hex(),
        "controller": {"name": partner.name, "address": partner.address},
        "purpose": purpose,
        "status": status.value,
        "receiptHash": "0x" + event.receipt_hash.hex(),
        "signedBy": "member",
        "relayedBy": relayer,
        "block": event.block_number,
        "expiresAt": expires.isoformat() if expires else None,
    }
    now = datetime.now(UTC)
    return {
        "partner_id": partner.id,
        "member_id": event.member,
        "purpose": purpose,
        "status": status,
        "legal_basis": "dpv:Consent",
        "notice_version": f"as in {relayer}'s receipt"[:100],
        "controller": partner.name,
        "collection_method": f"signed by the member on chain, relayed by {relayer}"[:100],
        "expires_at": expires,
        "withdrawal_method": ConsentTerms().withdrawal_method,
        "recorded_at": now,
        "receipt_json": canonical_json(document).decode(),
        "receipt_hash": event.receipt_hash,
        "tx_hash": "0x" + event.tx_hash.hex(),
        "block_number": event.block_number,
    }
