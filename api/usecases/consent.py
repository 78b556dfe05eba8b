"""Consent: a receipt off chain (ISO/IEC TS 27560 / W3C DPV fields), its hash on chain, validity from
the chain's history. Receipts hold ids and vocabulary only, never personal data."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col, select

from api.usecases.context import Crm
from api.usecases.customers import LOOKUP_CHUNK, member_exists
from api.usecases.errors import CustomerIsErased, InvalidInput, NotFound
from api.usecases.outbox import claim, resume_submitted, send
from ledger.clients import ConsentStatus as ChainConsentStatus
from ledger.clients import purpose_id
from ledger.clients.base import as_bytes32
from offchain.canonical import canonical_json
from offchain.db import insert_rows
from offchain.models import ConsentReceipt, ConsentStatus, Customer, CustomerStatus, Partner

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
        receipt = ConsentReceipt(**_receipt_row(partner, member, purpose, status, expires_at, terms, now))
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


def _receipt_row(
    partner: Partner,
    member: bytes,
    purpose: str,
    status: ConsentStatus,
    expires_at: datetime | None,
    terms: ConsentTerms,
    now: datetime,
) -> dict[str, Any]:
    """The receipt row for one consent event (every column): its canonical JSON document and that
    document's hash. A plain dict, so that staging thousands is one executemany INSERT."""
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
    assert partner.id is not None  # a row from the store
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


# --- bulk consent through an outbox (imports) -------------------------------------------------------
#
# `give_consent` writes the receipt and calls the chain in one store transaction. For thousands of
# members that is one transaction each; the bulk path instead stages receipts (rows with no tx_hash),
# then sends them with `recordBatch`, many per transaction, as the anchoring outbox does: the hash of
# the signed transaction is written to its receipts before it is sent, and the block once it is mined.
# A crash at any point leaves rows that say what to finish: staged (send), submitted (look the hash
# up: wait for it, or send anew if the node never saw it), confirmed (done). Nothing is recorded twice.

# recordBatch costs ~72k gas per new member (measured on eth-tester: 300 items use 21.5M gas); with the
# 20% estimate margin 300 stay under a 30M block gas limit (349 is the most that would).
CONSENT_BATCH = 300
# recordBatch costs ~71.8k per item (a new history entry: two slots and an event); 85k per item keeps
# 300 items under a 30M block.
CONSENT_GAS_BASE = 100_000
CONSENT_GAS_PER_ITEM = 85_000


def stage_consents(
    crm: Crm,
    partner_name: str,
    members: Sequence[bytes],
    purpose: str,
    *,
    terms: ConsentTerms | None = None,
    expires_at: datetime | None = None,
) -> list[bytes]:
    """Stage a "given" receipt for each member that has no receipt at all (given, withdrawn, staged)
    towards this partner for `purpose`: a member who withdrew is never re-consented by an import.
    Returns the members staged; `send_staged_consents` puts them on chain. One store transaction."""
    if not purpose or len(purpose) > 100:
        raise InvalidInput("a purpose is a name of 1 to 100 characters")
    if expires_at is not None and expires_at.tzinfo is None:
        raise InvalidInput("expires_at needs a time zone")
    wanted = list(dict.fromkeys(members))
    if not wanted:
        return []
    terms = terms or ConsentTerms()
    now = datetime.now(UTC)
    staged: list[bytes] = []
    with crm.unit_of_work() as db:
        partner = crm.partner(db, partner_name)
        statuses: dict[bytes, CustomerStatus] = {}
        have: set[bytes] = set()
        for start in range(0, len(wanted), LOOKUP_CHUNK):
            chunk = wanted[start : start + LOOKUP_CHUNK]
            statuses.update(
                (bytes(m), CustomerStatus(s))
                for m, s in db.exec(
                    select(Customer.member_id, Customer.status).where(col(Customer.member_id).in_(chunk))
                )
            )
            have.update(
                bytes(m)
                for m in db.exec(
                    select(ConsentReceipt.member_id).where(
                        ConsentReceipt.partner_id == partner.id,
                        ConsentReceipt.purpose == purpose,
                        col(ConsentReceipt.member_id).in_(chunk),
                    )
                )
            )
        receipts: list[dict[str, Any]] = []
        for member in wanted:
            status = statuses.get(member)
            if status is None:
                raise NotFound(f"no member 0x{member.hex()}")
            if status is CustomerStatus.ERASED:
                raise CustomerIsErased(f"member 0x{member.hex()} was erased")
            if member not in have:
                receipts.append(
                    _receipt_row(partner, member, purpose, ConsentStatus.GIVEN, expires_at, terms, now)
                )
                staged.append(member)
        if receipts:
            insert_rows(db.connection(), ConsentReceipt.__table__, receipts)  # type: ignore[attr-defined]
    return staged


def send_staged_consents(
    crm: Crm, partner_name: str, *, batch_size: int = CONSENT_BATCH, wait: bool = True
) -> list[Any]:
    """Put every staged or interrupted receipt of the partner on chain (see above); the receipts
    confirmed by this call, oldest first (plain rows with the columns `outbox.CONFIRMED_COLUMNS` names).
    With `wait=False` the batches sent are left in flight for the next call to confirm (see
    `send_staged_points`). One partner's outbox is sent by one process at a time."""
    client = crm.coalition.consent
    chain = crm.coalition.chain
    confirmed = resume_submitted(crm, ConsentReceipt, partner_name, client.contract)
    signer = crm.signer(partner_name)
    while True:
        with crm.unit_of_work() as db:
            staged = _staged_receipts(db, crm.pid(crm.partner(db, partner_name)), batch_size)
            if not staged:
                break
            first = staged[0]
            signed = chain.prepare(
                client.contract.functions.recordBatch(
                    [as_bytes32(bytes(r.member_id)) for r in staged],
                    as_bytes32(purpose_id(first.purpose)),
                    int(_chain_status(first.status)),
                    [as_bytes32(bytes(r.receipt_hash)) for r in staged],
                    int(first.expires_at.timestamp()) if first.expires_at else 0,
                ),
                signer,
                gas=CONSENT_GAS_BASE + CONSENT_GAS_PER_ITEM * len(staged),
            )
            claim(db, ConsentReceipt, [r.id for r in staged], signed.tx_hash)  # committed before the send
        confirmed += send(crm, ConsentReceipt, client.contract, signed, wait=wait)
    return confirmed


def _staged_receipts(db: Session, partner_id: int, limit: int) -> Sequence[Any]:
    """The oldest staged receipts that can share one recordBatch (same purpose, status and expiry):
    the columns recordBatch needs."""
    receipts = ConsentReceipt
    pending = (
        sa.select(
            col(receipts.id),
            col(receipts.member_id),
            col(receipts.receipt_hash),
            col(receipts.purpose),
            col(receipts.status),
            col(receipts.expires_at),
        )
        .where(
            col(receipts.partner_id) == partner_id,
            col(receipts.tx_hash).is_(None),
            col(receipts.block_number).is_(None),
        )
        .order_by(col(receipts.id))
    )
    rows = db.connection()  # Core rows: attribute access without building ConsentReceipt objects
    first = rows.execute(pending.limit(1)).first()
    if first is None:
        return []
    same = pending.where(
        col(receipts.purpose) == first.purpose,
        col(receipts.status) == first.status,
        col(receipts.expires_at).is_(None)
        if first.expires_at is None
        else col(receipts.expires_at) == first.expires_at,
    )
    # PostgreSQL: a second sender skips these rows instead of signing them again
    return rows.execute(same.limit(limit).with_for_update(skip_locked=True)).all()


def _chain_status(status: ConsentStatus) -> ChainConsentStatus:
    return ChainConsentStatus.GIVEN if status is ConsentStatus.GIVEN else ChainConsentStatus.WITHDRAWN


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
