"""Consent: a receipt off chain (ISO/IEC TS 27560 / W3C DPV fields), its hash on chain, validity from
the chain's history. Receipts hold ids and vocabulary only, never personal data."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlmodel import col, select

from api.usecases.context import Crm
from api.usecases.customers import member_exists
from api.usecases.errors import CustomerIsErased, InvalidInput
from ledger.clients import ConsentStatus as ChainConsentStatus
from ledger.clients import purpose_id
from offchain.canonical import canonical_json
from offchain.models import ConsentReceipt, ConsentStatus, CustomerStatus, Partner

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
    partner_name: str,
    member: bytes,
    purpose: str,
    *,
    expires_at: datetime | None = None,
    terms: ConsentTerms | None = None,
) -> ConsentReceipt:
    return _record(
        crm, partner_name, member, purpose, ConsentStatus.GIVEN, expires_at, terms or ConsentTerms()
    )


def withdraw_consent(
    crm: Crm, partner_name: str, member: bytes, purpose: str, *, terms: ConsentTerms | None = None
) -> ConsentReceipt:
    return _record(crm, partner_name, member, purpose, ConsentStatus.WITHDRAWN, None, terms or ConsentTerms())


def _record(
    crm: Crm,
    partner_name: str,
    member: bytes,
    purpose: str,
    status: ConsentStatus,
    expires_at: datetime | None,
    terms: ConsentTerms,
) -> ConsentReceipt:
    if not purpose or len(purpose) > 100:
        raise InvalidInput("a purpose is a name of 1 to 100 characters")
    if expires_at is not None and expires_at.tzinfo is None:
        raise InvalidInput("expires_at needs a time zone")
    now = datetime.now(UTC)
    with crm.unit_of_work() as db:
        partner = crm.partner(db, partner_name)
        if member_exists(db, member).status is CustomerStatus.ERASED:
            raise CustomerIsErased(f"member 0x{member.hex()} was erased")
        document = {
            "schema": RECEIPT_SCHEMA,
            "member": "0x" + member.hex(),
            "controller": {"name": partner.name, "address": partner.address},
            "purpose": purpose,
            "status": status.value,
            "legalBasis": terms.legal_basis,
            "noticeVersion": terms.notice_version,
            "collectionMethod": terms.collection_method,
            "withdrawalMethod": terms.withdrawal_method,
            "timestamp": now.isoformat(timespec="microseconds"),
            "expiresAt": expires_at.astimezone(UTC).isoformat() if expires_at else None,
        }
        receipt_json = canonical_json(document)
        receipt = ConsentReceipt(
            partner_id=crm.pid(partner),
            member_id=member,
            purpose=purpose,
            status=status,
            legal_basis=terms.legal_basis,
            notice_version=terms.notice_version,
            controller=partner.name,
            collection_method=terms.collection_method,
            expires_at=expires_at,
            withdrawal_method=terms.withdrawal_method,
            recorded_at=now,
            receipt_json=receipt_json.decode(),
            receipt_hash=hashlib.sha256(receipt_json).digest(),
        )
        db.add(receipt)
        db.flush()  # constraint errors surface here, before the chain is touched
        # The chain call comes last inside the transaction: if it reverts, the row is rolled back.
        tx = crm.coalition.consent.record(
            crm.signer(partner_name),
            member,
            purpose_id(purpose),
            ChainConsentStatus.GIVEN if status is ConsentStatus.GIVEN else ChainConsentStatus.WITHDRAWN,
            receipt.receipt_hash,
            int(expires_at.timestamp()) if expires_at else 0,
        )
        receipt.tx_hash, receipt.block_number = tx.tx_hash, tx.block_number
    return receipt


@dataclass(frozen=True)
class ConsentEvent:
    receipt: ConsentReceipt
    on_chain: bool  # the chain holds this receipt's hash for this member, controller and purpose


def consent_history(crm: Crm, member: bytes, partner_name: str | None = None) -> list[ConsentEvent]:
    """Every consent event of `member` (towards one partner, or all), oldest first, each checked
    against the chain's history."""
    with crm.unit_of_work() as db:
        member_exists(db, member)
        query = select(ConsentReceipt, Partner).join(Partner).where(ConsentReceipt.member_id == member)
        if partner_name:
            query = query.where(Partner.name == partner_name)
        rows = db.exec(query.order_by(col(ConsentReceipt.recorded_at), col(ConsentReceipt.id))).all()
    chain_hashes: dict[tuple[str, str], set[bytes]] = {}
    events = []
    for receipt, partner in rows:
        key = (partner.address, receipt.purpose)
        if key not in chain_hashes:
            history = crm.coalition.consent.history(member, partner.address, purpose_id(receipt.purpose))
            chain_hashes[key] = {r.receipt_hash for r in history}
        events.append(ConsentEvent(receipt, receipt.receipt_hash in chain_hashes[key]))
    return events


def consent_valid(
    crm: Crm, partner_name: str, member: bytes, purpose: str, at: datetime | None = None
) -> bool:
    """Whether the chain says `member` consented to `partner_name` for `purpose` (now, or at `at`)."""
    with crm.unit_of_work() as db:
        partner = crm.partner(db, partner_name)
    if at is None:
        return crm.coalition.consent.is_valid(member, partner.address, purpose_id(purpose))
    return crm.coalition.consent.is_valid_at(
        member, partner.address, purpose_id(purpose), int(at.timestamp())
    )
