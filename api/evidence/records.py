"""Consent receipts, point events, registered models and decisions checked against the chain's own
events, not against hashes the store keeps: a receipt counts as on chain only when the chain recorded its
document's hash, for its member, controller and purpose, with its status and expiry; a point event only
when the chain logged the same earn or redemption (member, partner, amount, reference); a model only
when its stored bytes and card hash to what the partner registered; a decision only when the chain's
`DecisionRecorded` event says what the row says (and, with keys, the stored explanation opens the
keyed commitment the event holds). Whatever the chain has and the store lacks is a finding too: rows
deleted, or a store restored from before them."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any, Protocol

from sqlmodel import Session

from api.context import Crm
from api.evidence.decision_records import EXPLANATION_FIELD as EXPLANATION_FIELD
from api.evidence.decision_records import decision_of as decision_of
from api.evidence.verification import Outcome, Verification
from ledger.clients import ConsentStatus as ChainConsentStatus
from ledger.clients import purpose_id
from ledger.clients.consent import ConsentSource, consent_events
from ledger.clients.loyalty import points_events
from ledger.records import Decision, RecordedDecision
from offchain.crypto import hmac_sha256
from offchain.errors import CustomerErased, DecryptionFailed, UnknownCustomer
from offchain.models import ConsentStatus, CustomerStatus, DecisionRecord
from offchain.repositories import consents, customers, decisions, models, partners, points
from offchain.repositories.partners import PartnerRecord


class ChainConsent(Protocol):
    """What the chain holds of one consent record (an event or a stored record)."""

    @property
    def status(self) -> ChainConsentStatus: ...
    @property
    def receipt_hash(self) -> bytes: ...
    @property
    def expires_at(self) -> int: ...


class StoredReceipt(Protocol):
    """What the checks read of a stored receipt (a `ConsentReceipt`, or a `consents.CheckedReceipt`)."""

    @property
    def member_id(self) -> bytes: ...
    @property
    def purpose(self) -> str: ...
    @property
    def status(self) -> ConsentStatus: ...
    @property
    def expires_at(self) -> datetime | None: ...
    @property
    def receipt_json(self) -> str: ...


# A record the member signed on chain towards a partner through another partner, followed into the
# partner's store (`api.usecases.consent.follow_consents`): its receipt is with the relaying partner, so
# the document names the chain's receipt hash instead of hashing to it.
FOLLOWED_SCHEMA = "ledgercrm/consent-followed/v1"


def receipt_hash(receipt: StoredReceipt) -> bytes:
    """The hash of the receipt's document as stored now (never the stored hash column); of a followed
    record, the chain's receipt hash its document names."""
    raw = receipt.receipt_json.encode()
    if FOLLOWED_SCHEMA.encode() in raw:
        try:
            document = json.loads(raw)
            if document.get("schema") == FOLLOWED_SCHEMA:
                return bytes.fromhex(str(document["receiptHash"]).removeprefix("0x"))
        except (ValueError, KeyError):
            pass
    return hashlib.sha256(raw).digest()


def consent_disagreement(receipt: StoredReceipt, chain: ChainConsent | None) -> str | None:
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
    receipts = (receipt for page in consents.checked_in_pages(db, partner.id) for receipt in page)
    purposes: dict[str, bytes] = {}  # a purpose's id is a keccak: once per purpose, not per receipt
    for receipt in receipts:
        label = f"consent receipt {receipt.id} of {partner.name}"
        if receipt.block_number is None:
            # in flight (an interrupted command): mined or not, it is pending, never a missing record
            mined = events.pop(receipt_hash(receipt), None) is not None
            found.append(Verification(None, Outcome.UNANCHORED, _waiting(mined), record=label))
            continue
        event = events.pop(receipt_hash(receipt), None)
        problem = consent_disagreement(receipt, event)
        if (
            problem is None
            and event is not None
            and (event.member != receipt.member_id or event.purpose != _purpose(purposes, receipt.purpose))
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
    names = {p.address.lower(): p.name for p in partners.every(db)}
    for event in events.values():
        if (
            event.receipt_hash == bytes(32)
            and event.status is ChainConsentStatus.WITHDRAWN
            and event.member in erased_members
        ):
            continue
        if event.source is ConsentSource.SIGNED:
            # The member's own signature, checked on chain, that any partner may relay: relayed by
            # another partner, its receipt is with that partner, and the record stands as signed on
            # chain (it governs processing here as anywhere). Relayed by the controller itself, the
            # controller's receipt is missing.
            relayer = crm.coalition.consent.relayer(event)
            if relayer.lower() != partner.address.lower():
                found.append(
                    Verification(
                        None,
                        Outcome.PROVEN,
                        f"{event.status.name.lower()} by the member's own signature on chain (block"
                        f" {event.block_number}), relayed by {names.get(relayer.lower(), relayer)}, which"
                        " holds its receipt",
                        record=f"consent record 0x{event.receipt_hash.hex()} of {partner.name}",
                    )
                )
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


def _purpose(known: dict[str, bytes], name: str) -> bytes:
    found = known.get(name)
    if found is None:
        found = known[name] = purpose_id(name)
    return found


# Confirmed point events compared with the chain's a window of blocks at a time, each window about this
# many of the store's events: what a run holds stays flat however long the history (1M events: ~100 MB
# of rows and chain events at once before; a window's worth now: 5,000, ~6 MB, since 20,000 were ~25 MB
# of verify --all's peak at 100k).
POINTS_PER_WINDOW = 5_000


def check_points(crm: Crm, db: Session, partner: PartnerRecord) -> list[Verification]:
    """The partner's confirmed point events against the chain's earns by it and redemptions at it, as
    multisets (two identical events must appear twice on chain), each in the block its row states, a
    window of blocks at a time; events in flight are matched with what the chain has that no confirmed
    row claims."""
    found: list[Verification] = []
    left: Counter[tuple[str, bytes, int, bytes]] = Counter()  # the chain's events no row claimed
    loyalty = crm.coalition.loyalty
    first, latest = 0, crm.coalition.block_number()
    for last in [*_windows(points.per_block(db, partner.id)), latest]:
        if first > last:
            continue  # the store claims blocks beyond the chain's: its rows fall in no window below
        onchain = Counter(
            (e.kind, e.member, e.amount, e.ref, e.block_number)
            for e in points_events(loyalty, partner.address, first, last)
        )
        for event in points.confirmed_in_blocks(db, partner.id, first, last):
            member = bytes(event.member_id)
            key = (event.kind.value, member, int(event.amount), bytes(event.ref), int(event.block_number))
            if onchain[key] > 0:
                onchain[key] -= 1
                continue
            found.append(
                Verification(
                    None,
                    Outcome.TAMPERED,
                    f"{event.kind.value} of {event.amount:,} points for member 0x{member.hex()}"
                    f" matches no event on chain (in block {event.block_number}, as its row says)",
                    record=f"point event {event.id} of {partner.name}",
                )
            )
        for (kind, member, amount, ref, _), count in onchain.items():
            if count > 0:
                left[(kind, member, amount, ref)] += count
        first = last + 1
    for event in points.confirmed_in_blocks(db, partner.id, first, None):  # beyond the chain's blocks
        found.append(
            Verification(
                None,
                Outcome.TAMPERED,
                f"{event.kind.value} of {event.amount:,} points for member 0x{bytes(event.member_id).hex()}"
                f" claims block {event.block_number}, beyond the chain's latest ({latest})",
                record=f"point event {event.id} of {partner.name}",
            )
        )
    for event in points.unconfirmed(db, partner.id):  # in flight (an interrupted command): pending
        loose = (event.kind.value, bytes(event.member_id), int(event.amount), bytes(event.ref))
        mined = left[loose] > 0
        if mined:
            left[loose] -= 1
        label = f"point event {event.id} of {partner.name}"
        found.append(Verification(None, Outcome.UNANCHORED, _waiting(mined), record=label))
    for (kind, member, amount, ref), count in left.items():
        for _ in range(count):
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


def _windows(blocks: Iterable[Any]) -> list[int]:
    """The last block of each window of about POINTS_PER_WINDOW events ((block, count) in block order);
    the window after the last one runs to the chain's latest block."""
    ends, held = [], 0
    for block, count in blocks:
        held += count
        if held >= POINTS_PER_WINDOW:
            ends.append(int(block))
            held = 0
    return ends


def _waiting(mined: bool) -> str:
    return (
        "mined, not yet settled in the store (`ledgercrm anchor` settles it)"
        if mined
        else "not yet on chain: it waits in the outbox (`ledgercrm anchor` sends it)"
    )


def check_models(crm: Crm, db: Session, partner: PartnerRecord) -> list[Verification]:
    """Every model the chain says the partner registered: the store holds it, its bytes and its card
    hash to the registered hashes, and the row's hashes and training root are the chain's; and every
    model row of the partner is one the chain registered for it."""
    client = crm.coalition.decisions
    registered = [client.model(i) for i in range(client.model_count())]
    found: list[Verification] = []
    rows = {row.onchain_id: row for row in models.every(db)}
    for info in registered:
        if info.registrant != partner.address:
            continue
        label = f"model {info.model_id} of {partner.name}"
        row = rows.pop(info.model_id, None)
        if row is None or row.partner_id != partner.id:
            found.append(
                Verification(
                    None,
                    Outcome.MISSING,
                    f"the chain registered model {info.model_id} by {partner.name} in block"
                    f" {info.block_number}; the store does not hold it",
                    record=label,
                )
            )
            continue
        problems = []
        if hashlib.sha256(row.model_json.encode()).digest() != info.model_hash:
            problems.append("its stored bytes do not hash to the registered model hash")
        if hashlib.sha256(row.card_json.encode()).digest() != info.card_hash:
            problems.append("its stored card does not hash to the registered card hash")
        if (bytes(row.model_hash), bytes(row.card_hash), bytes(row.training_root)) != (
            info.model_hash,
            info.card_hash,
            info.training_root,
        ):
            problems.append("the row's hashes or training root differ from the chain's")
        if problems:
            found.append(Verification(None, Outcome.TAMPERED, "; ".join(problems), record=label))
    for row in rows.values():
        if row.partner_id != partner.id:
            continue
        found.append(
            Verification(
                None,
                Outcome.TAMPERED,
                f"the store holds it as {partner.name}'s; the chain registered no such model"
                f" by {partner.name}",
                record=f"model {row.onchain_id} of {partner.name}",
            )
        )
    return found


def check_decisions(crm: Crm, db: Session, partner: PartnerRecord, *, content: bool) -> list[Verification]:
    """Every `DecisionRecorded` event of the partner has its row, and the row says what the event says;
    every row the store says was logged is on chain. With `content` (the partner's keys), each stored
    explanation of a member not erased decrypts and opens the keyed commitment on chain; an erased
    member's must be gone."""
    events = crm.coalition.decisions.decisions(partner=partner.address)
    rows = decisions.of_partner(db, partner.id)
    by_id = {row.decision_id: row for row in rows if row.decision_id is not None}
    # in flight (sent by an interrupted command, its id not yet settled in the store): by content
    flying: dict[tuple[int, Decision], list[DecisionRecord]] = {}
    for staged in rows:
        if staged.decision_id is None:
            flying.setdefault((staged.model_id, decision_of(staged)), []).append(staged)
    found: list[Verification] = []
    matched: list[tuple[RecordedDecision, DecisionRecord]] = []
    for event in events:
        label = f"decision {event.decision_id} of {partner.name}"
        row = by_id.pop(event.decision_id, None)
        waiting = flying.get((event.model_id, event.decision)) if row is None else None
        if waiting:
            mined = waiting.pop(0)
            found.append(Verification(None, Outcome.UNANCHORED, _waiting(True), f"decision row {mined.id}"))
        elif row is None:
            found.append(
                Verification(
                    None,
                    Outcome.MISSING,
                    f"the chain logged decision {event.decision_id} (member 0x{event.decision.member.hex()},"
                    f" model {event.model_id}, block {event.block_number}); the store has no record of it:"
                    " deleted, or the store is older than the chain",
                    record=label,
                )
            )
        elif row.model_id != event.model_id or decision_of(row) != event.decision:
            found.append(
                Verification(
                    None, Outcome.TAMPERED, "the stored record differs from the chain's event", label
                )
            )
        else:
            matched.append((event, row))
    for decision_id in by_id:
        found.append(
            Verification(
                None,
                Outcome.TAMPERED,
                f"the store says the chain logged it; the chain has no decision {decision_id}"
                f" by {partner.name}",
                record=f"decision {decision_id} of {partner.name}",
            )
        )
    for left in flying.values():
        for staged in left:
            found.append(Verification(None, Outcome.UNANCHORED, _waiting(False), f"decision row {staged.id}"))
    if content:
        found.extend(_check_explanations(crm, db, partner, matched))
    return found


def _check_explanations(
    crm: Crm, db: Session, partner: PartnerRecord, matched: list[tuple[RecordedDecision, DecisionRecord]]
) -> list[Verification]:
    statuses = customers.statuses(db, {row.member_id for _, row in matched})
    keys = crm.vault.bulk_keys(
        partner.name, {row.member_id for _, row in matched if row.explanation_ciphertext is not None}
    )
    from ml.decision import commitment_label  # loaded once decisions are there (decision_records.py)

    model_hashes: dict[int, bytes] = {}
    found = []
    for event, row in matched:
        label = f"decision {event.decision_id} of {partner.name}"
        erased = statuses.get(row.member_id) is CustomerStatus.ERASED
        if row.explanation_ciphertext is None:
            if not erased:
                found.append(
                    Verification(
                        None, Outcome.TAMPERED, "its explanation is gone and the member is not erased", label
                    )
                )
            continue
        if erased:
            found.append(
                Verification(
                    None, Outcome.TAMPERED, "the member was erased, yet its explanation is stored", label
                )
            )
            continue
        member_keys = keys.get(row.member_id)
        if row.model_id not in model_hashes:
            model_hashes[row.model_id] = crm.coalition.decisions.model(row.model_id).model_hash
        key_label = commitment_label(model_hashes[row.model_id], event.decision.input_root)
        try:
            if member_keys is None:
                raw = crm.vault.decrypt(
                    partner.name, row.member_id, EXPLANATION_FIELD, row.explanation_ciphertext
                )
                key = crm.vault.disclosure_key(partner.name, row.member_id, key_label)
            else:
                raw = member_keys.decrypt(EXPLANATION_FIELD, row.explanation_ciphertext)
                key = member_keys.disclosure_key(key_label)
        except (CustomerErased, UnknownCustomer):
            found.append(
                Verification(
                    None, Outcome.TAMPERED, "the member's key is gone and the member is not erased", label
                )
            )
            continue
        except DecryptionFailed:
            found.append(
                Verification(
                    None, Outcome.TAMPERED, "its stored explanation does not decrypt for this member", label
                )
            )
            continue
        if hmac_sha256(key, raw) != event.decision.explanation_hash:
            found.append(
                Verification(
                    None,
                    Outcome.TAMPERED,
                    "its stored explanation is not the one committed to on chain",
                    label,
                )
            )
    return found


def reconciliation(mismatches: Iterable[str]) -> list[Verification]:
    return [Verification(None, Outcome.TAMPERED, m, record="points reconciliation") for m in mismatches]
