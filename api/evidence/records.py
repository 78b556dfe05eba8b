"""Consent receipts and point events checked against the chain's own events, not against hashes the
store keeps: a receipt counts as on chain only when the chain recorded its document's hash, for its
member, controller and purpose, with its status and expiry; a point event only when the chain logged
the same earn or redemption (member, partner, amount, reference)."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Iterable
from datetime import UTC
from typing import Any, Protocol

from sqlmodel import Session

from api.context import Crm
from api.evidence.verification import Outcome, Verification
from ledger.clients import ConsentStatus as ChainConsentStatus
from ledger.clients import purpose_id
from ledger.clients.consent import consent_events
from ledger.clients.loyalty import points_events
from offchain.models import ConsentReceipt, ConsentStatus, CustomerStatus
from offchain.repositories import consents, customers, points
from offchain.repositories.partners import PartnerRecord


class ChainConsent(Protocol):
    """What the chain holds of one consent record (an event or a stored record)."""

    @property
    def status(self) -> ChainConsentStatus: ...
    @property
    def receipt_hash(self) -> bytes: ...
    @property
    def expires_at(self) -> int: ...


def receipt_hash(receipt: ConsentReceipt) -> bytes:
    """The hash of the receipt's document as stored now (never the stored hash column)."""
    return hashlib.sha256(receipt.receipt_json.encode()).digest()


def consent_disagreement(receipt: ConsentReceipt, chain: ChainConsent | None) -> str | None:
    """What differs between a stored receipt and the chain's record of it (None: they agree)."""
    if chain is None:
        return "the chain has no consent record with this receipt's document hash"
    expiry = (
        int(receipt.expires_at.replace(tzinfo=receipt.expires_at.tzinfo or UTC).timestamp())
        if receipt.expires_at
        else 0
    )
    chain_status = (
        ConsentStatus.GIVEN if chain.status is ChainConsentStatus.GIVEN else ConsentStatus.WITHDRAWN
    )
    if chain_status is not receipt.status:
        return f"the store says {receipt.status.value}, the chain says {chain_status.value}"
    if chain.expires_at != expiry:
        return f"the store's expiry is {expiry or 'none'}, the chain's {chain.expires_at or 'none'}"
    try:
        document: dict[str, Any] = json.loads(receipt.receipt_json)
    except ValueError:
        return "the receipt's document is not JSON"
    stated = {
        "member": "0x" + receipt.member_id.hex(),
        "purpose": receipt.purpose,
        "status": receipt.status.value,
    }
    for key, value in stated.items():
        if document.get(key) != value:
            return f"the receipt's document says {key} {document.get(key)!r}, the row {value!r}"
    return None


def check_consents(crm: Crm, db: Session, partner: PartnerRecord) -> list[Verification]:
    """The partner's confirmed receipts against the chain's consent events for it as controller, and
    the chain's events the store has no receipt for."""
    events = {e.receipt_hash: e for e in consent_events(crm.coalition.consent, partner.address)}
    found: list[Verification] = []
    for receipt in consents.of_partner(db, partner.id):
        label = f"consent receipt {receipt.id} of {partner.name}"
        if receipt.block_number is None:
            found.append(Verification(None, Outcome.UNANCHORED, "not yet on chain", record=label))
            continue
        event = events.pop(receipt_hash(receipt), None)
        problem = consent_disagreement(receipt, event)
        if (
            problem is None
            and event is not None
            and (event.member != receipt.member_id or event.purpose != purpose_id(receipt.purpose))
        ):
            problem = "the chain recorded it for another member or purpose"
        if problem is not None:
            found.append(Verification(None, Outcome.TAMPERED, problem, record=label))
    # an erasure withdraws the member's consents on chain with no receipt (hash zero): expected exactly
    # for the members the store records as erased
    erased_members = {
        member
        for member, status in customers.statuses(db, {e.member for e in events.values()}).items()
        if status is CustomerStatus.ERASED
    }
    for event in events.values():
        if (
            event.receipt_hash == bytes(32)
            and event.status is ChainConsentStatus.WITHDRAWN
            and event.member in erased_members
        ):
            continue
        found.append(
            Verification(
                None,
                Outcome.MISSING,
                f"the chain records consent ({event.status.name.lower()}) of member 0x{event.member.hex()} in"
                f" block {event.block_number} that the store has no receipt for",
                record=f"consent record 0x{event.receipt_hash.hex()} of {partner.name}",
            )
        )
    return found


def check_points(crm: Crm, db: Session, partner: PartnerRecord) -> list[Verification]:
    """The partner's confirmed point events against the chain's earns by it and redemptions at it, as
    multisets (two identical events must appear twice on chain)."""
    onchain = Counter(
        (e.kind, e.member, e.amount, e.ref) for e in points_events(crm.coalition.loyalty, partner.address)
    )
    found: list[Verification] = []
    for event in points.of_partner(db, partner.id):
        label = f"point event {event.id} of {partner.name}"
        if event.block_number is None:
            found.append(Verification(None, Outcome.UNANCHORED, "not yet on chain", record=label))
            continue
        key = (event.kind.value, bytes(event.member_id), int(event.amount), bytes(event.ref))
        if onchain[key] > 0:
            onchain[key] -= 1
            continue
        found.append(
            Verification(
                None,
                Outcome.TAMPERED,
                f"{event.kind.value} of {event.amount:,} points for member 0x{bytes(event.member_id).hex()}"
                " matches no event on chain",
                record=label,
            )
        )
    for (kind, member, amount, ref), left in onchain.items():
        for _ in range(left):
            found.append(
                Verification(
                    None,
                    Outcome.MISSING,
                    f"the chain has {'an' if kind == 'earn' else 'a'} {kind} of {amount:,} points"
                    f" for member 0x{member.hex()}"
                    " that the store lacks",
                    record=f"points event 0x{ref.hex()} of {partner.name}",
                )
            )
    return found


def reconciliation(mismatches: Iterable[str]) -> list[Verification]:
    return [Verification(None, Outcome.TAMPERED, m, record="points reconciliation") for m in mismatches]
