"""Coalition points: earned and redeemed on chain, mirrored off chain, reconciled between the two.

Earning needs the member's valid consent to the earning partner for the loyalty purpose, as the chain
answers it; redeeming does not (a member may always spend what they hold)."""

from __future__ import annotations

import hashlib
import os
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from api.usecases.consent import LOYALTY
from api.usecases.context import Crm
from api.usecases.customers import LOOKUP_CHUNK, member_exists
from api.usecases.errors import ConsentRequired, InvalidInput, NotFound
from api.usecases.outbox import claim, resume_submitted, send
from ledger.clients import purpose_id
from ledger.clients.base import as_bytes32
from offchain.db import insert_rows
from offchain.models import Customer, Partner, PointEvent, PointKind


@dataclass(frozen=True)
class PointsRequest:
    member: bytes
    amount: int
    external_key: str | None = None  # idempotency key (e.g. the invoice that earned the points)


def earn_points(crm: Crm, partner_name: str, request: PointsRequest) -> PointEvent:
    return _points(crm, partner_name, [request], PointKind.EARN)[0]


def redeem_points(crm: Crm, partner_name: str, request: PointsRequest) -> PointEvent:
    return _points(crm, partner_name, [request], PointKind.REDEEM)[0]


def earn_points_batch(crm: Crm, partner_name: str, requests: Sequence[PointsRequest]) -> list[PointEvent]:
    """Many earns in one transaction (imports); all or nothing."""
    return _points(crm, partner_name, requests, PointKind.EARN)


def _points(
    crm: Crm, partner_name: str, requests: Sequence[PointsRequest], kind: PointKind
) -> list[PointEvent]:
    if not requests:
        raise InvalidInput("no points to record")
    for request in requests:
        if request.amount <= 0:
            raise InvalidInput(f"amounts are positive whole points, got {request.amount}")
    loyalty = purpose_id(LOYALTY)
    try:
        with crm.unit_of_work() as db:
            partner = crm.partner(db, partner_name)
            events = []
            for request in requests:
                member_exists(db, request.member)
                if kind is PointKind.EARN and not crm.coalition.consent.is_valid(
                    request.member, partner.address, loyalty
                ):
                    raise ConsentRequired(
                        f"member 0x{request.member.hex()} has no valid {LOYALTY!r} consent"
                        f" towards {partner_name!r}"
                    )
                events.append(
                    PointEvent(
                        partner_id=crm.pid(partner),
                        member_id=request.member,
                        kind=kind,
                        amount=request.amount,
                        ref=_ref(partner_name, request),
                        external_key=request.external_key,
                    )
                )
            db.add_all(events)
            db.flush()  # duplicate external keys fail here, before the chain is touched
            signer = crm.signer(partner_name)
            members, amounts, refs = (
                [e.member_id for e in events],
                [e.amount for e in events],
                [e.ref for e in events],
            )
            if kind is PointKind.EARN:
                tx = (
                    crm.coalition.loyalty.earn_batch(signer, members, amounts, refs)
                    if len(events) > 1
                    else crm.coalition.loyalty.earn(signer, members[0], amounts[0], refs[0])
                )
            else:
                tx = (
                    crm.coalition.loyalty.redeem_batch(signer, members, amounts, refs)
                    if len(events) > 1
                    else crm.coalition.loyalty.redeem(signer, members[0], amounts[0], refs[0])
                )
            for event in events:
                event.tx_hash, event.block_number = tx.tx_hash, tx.block_number
    except IntegrityError as exc:
        raise InvalidInput(
            f"points with one of these external keys were already recorded: {exc.orig}"
        ) from exc
    return events


def _ref(partner_name: str, request: PointsRequest) -> bytes:
    """The bytes32 reference on chain: a hash of the partner's own key for the event (never personal
    data), or of a fresh random value when there is none."""
    if request.external_key is None:
        return hashlib.sha256(os.urandom(32)).digest()
    return hashlib.sha256(f"{partner_name}\x00{request.external_key}".encode()).digest()


# --- bulk earning through an outbox (imports) --------------------------------------------------------
#
# The same outbox as for consent (see api/usecases/consent.py): earn events are staged (no tx_hash),
# then sent with `earnBatch`, many per transaction, the transaction's hash written to its events before
# it is sent and the block once mined. Each event carries the partner's external key (e.g. the invoice),
# unique per partner, so a repeated import stages nothing twice; a crash at any point is finished by
# `send_staged_points` without earning anything twice.

# earnBatch costs ~27k gas per item for a member's first points (eth-tester: 300 items 8.0M gas), less
# after; 800 items with the 20% estimate margin stay under a 30M block gas limit (~930 is the most).
EARN_BATCH = 800
# Gas bounds from benchmarks/ledger_gas.py: earnBatch costs ~26.8k per item for a member's first points
# (a new balance slot) and less after; 34k per item keeps 800 items under a 30M block with room to spare.
EARN_GAS_BASE = 100_000
EARN_GAS_PER_ITEM = 34_000


@dataclass
class StagedPoints:
    staged: int = 0  # events written, to be sent
    points: int = 0  # their total
    duplicates: list[str] = field(default_factory=list)  # external keys already recorded
    no_consent: list[str] = field(default_factory=list)  # external keys skipped: no valid consent


def stage_earnings(
    crm: Crm,
    partner_name: str,
    requests: Sequence[PointsRequest],
    *,
    consent: dict[bytes, bool] | None = None,
) -> StagedPoints:
    """Stage earn events for requests whose external key the partner has not used yet; skip (and
    report) those of members without valid loyalty consent towards the partner, as the chain answers
    it. `consent` caches the answers across calls (member -> valid), and may be pre-filled with members
    whose consent the caller saw confirmed, to spare a chain call each. Every request needs an external
    key: it is what makes staging idempotent. `send_staged_points` puts the events on chain."""
    result = StagedPoints()
    keys = [r.external_key for r in requests]
    if any(k is None for k in keys):
        raise InvalidInput("bulk earnings need an external key on every request")
    if len(keys) != len(set(keys)):
        raise InvalidInput("the same external key appears twice in one request")
    for request in requests:
        if request.amount <= 0:
            raise InvalidInput(f"amounts are positive whole points, got {request.amount}")
    consent = consent if consent is not None else {}
    with crm.unit_of_work() as db:
        partner = crm.partner(db, partner_name)
        used = _used_keys(db, crm.pid(partner), [k for k in keys if k is not None])
        fresh = [r for r in requests if r.external_key not in used]
        result.duplicates = [r.external_key for r in requests if r.external_key in used and r.external_key]
        members = list({r.member for r in fresh})
        known: set[bytes] = set()
        for start in range(0, len(members), LOOKUP_CHUNK):
            chunk = members[start : start + LOOKUP_CHUNK]
            known.update(
                bytes(m)
                for m in db.exec(select(Customer.member_id).where(col(Customer.member_id).in_(chunk)))
            )
    for member in members:
        if member not in known:
            raise NotFound(f"no member 0x{member.hex()}")
    loyalty = purpose_id(LOYALTY)
    for member in members:  # outside any store transaction: these are chain calls
        if member not in consent:
            consent[member] = crm.coalition.consent.is_valid(member, partner.address, loyalty)
    # Plain rows for one executemany INSERT (a PointEvent object costs ~150 µs to construct); every
    # column the model would default is given here.
    now = datetime.now(UTC)
    events: list[dict[str, Any]] = []
    for request in fresh:
        if not consent[request.member]:
            assert request.external_key is not None
            result.no_consent.append(request.external_key)
            continue
        events.append(
            {
                "partner_id": crm.pid(partner),
                "member_id": request.member,
                "kind": PointKind.EARN,
                "amount": request.amount,
                "ref": _ref(partner_name, request),
                "external_key": request.external_key,
                "tx_hash": None,
                "block_number": None,
                "created_at": now,
            }
        )
    if events:
        try:
            with crm.unit_of_work() as db:
                # Core: the ORM bulk path spends more per row than SQLite does
                insert_rows(db.connection(), PointEvent.__table__, events)  # type: ignore[attr-defined]
        except IntegrityError as exc:  # another process staged one of these keys meanwhile
            raise InvalidInput(
                f"points with one of these external keys were already recorded: {exc.orig}"
            ) from exc
    result.staged = len(events)
    result.points = sum(e["amount"] for e in events)
    return result


def send_staged_points(
    crm: Crm, partner_name: str, *, batch_size: int = EARN_BATCH, min_batch: int = 1, wait: bool = True
) -> list[Any]:
    """Put the partner's staged and interrupted earn events on chain, `batch_size` per earnBatch, while
    at least `min_batch` are staged (so a caller can send full batches only, then flush with 1); the
    events confirmed by this call (plain rows with the columns `outbox.CONFIRMED_COLUMNS` names). With
    `wait=False` the batches this call sends are left in flight, to be confirmed by the next call (which
    settles in-flight transactions first): an import works on its next chunk while the node mines. One
    partner's outbox is sent by one process at a time."""
    client = crm.coalition.loyalty
    chain = crm.coalition.chain
    confirmed = resume_submitted(crm, PointEvent, partner_name, client.contract)
    signer = crm.signer(partner_name)
    while True:
        with crm.unit_of_work() as db:
            partner_id = crm.pid(crm.partner(db, partner_name))
            staged = (
                db.connection()  # Core rows: attribute access without building PointEvent objects
                .execute(
                    sa.select(
                        col(PointEvent.id),
                        col(PointEvent.member_id),
                        col(PointEvent.amount),
                        col(PointEvent.ref),
                    )
                    .where(
                        col(PointEvent.partner_id) == partner_id,
                        col(PointEvent.kind) == PointKind.EARN,
                        col(PointEvent.tx_hash).is_(None),
                        col(PointEvent.block_number).is_(None),
                    )
                    .order_by(col(PointEvent.id))
                    .limit(batch_size)
                    .with_for_update(skip_locked=True)  # PostgreSQL: a second sender skips these rows
                )
                .all()
            )
            if not staged or len(staged) < min_batch:
                break
            signed = chain.prepare(
                client.contract.functions.earnBatch(
                    [as_bytes32(bytes(e.member_id)) for e in staged],
                    [e.amount for e in staged],
                    [as_bytes32(bytes(e.ref)) for e in staged],
                ),
                signer,
                gas=EARN_GAS_BASE + EARN_GAS_PER_ITEM * len(staged),
            )
            claim(db, PointEvent, [e.id for e in staged], signed.tx_hash)  # committed before the send
        confirmed += send(crm, PointEvent, client.contract, signed, wait=wait)
    return confirmed


def _used_keys(db: Session, partner_id: int, keys: list[str]) -> set[str]:
    used: set[str] = set()
    for start in range(0, len(keys), LOOKUP_CHUNK):
        used.update(
            k
            for k in db.exec(
                select(PointEvent.external_key).where(
                    col(PointEvent.partner_id) == partner_id,
                    col(PointEvent.external_key).in_(keys[start : start + LOOKUP_CHUNK]),
                )
            )
            if k is not None
        )
    return used


@dataclass
class Reconciliation:
    members_checked: int = 0
    partners_checked: int = 0
    mismatches: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.mismatches


def reconcile(crm: Crm) -> Reconciliation:
    """Compare the off-chain point events with on-chain balances and settlement positions.

    Assumes this store is the only writer of the coalition's points (one coalition, one store)."""
    report = Reconciliation()
    balances: dict[bytes, int] = defaultdict(int)
    issued: dict[int, int] = defaultdict(int)
    redeemed: dict[int, int] = defaultdict(int)
    with crm.unit_of_work() as db:
        partners = {crm.pid(p): p for p in db.exec(select(Partner))}
        for event in db.exec(select(PointEvent).order_by(col(PointEvent.id))):
            if event.tx_hash is None:
                report.mismatches.append(f"point event {event.id} was never confirmed on chain")
                continue
            sign = 1 if event.kind is PointKind.EARN else -1
            balances[event.member_id] += sign * event.amount
            (issued if sign > 0 else redeemed)[event.partner_id] += event.amount
    for member, expected in balances.items():
        onchain = crm.coalition.loyalty.balance_of(member)
        if onchain != expected:
            report.mismatches.append(f"member 0x{member.hex()}: store says {expected}, chain says {onchain}")
    report.members_checked = len(balances)
    for partner_id, partner in partners.items():
        store = (issued[partner_id], redeemed[partner_id], redeemed[partner_id] - issued[partner_id])
        chain = (
            crm.coalition.loyalty.issued_by(partner.address),
            crm.coalition.loyalty.redeemed_at(partner.address),
            crm.coalition.loyalty.position_of(partner.address),
        )
        if store != chain:
            report.mismatches.append(
                f"partner {partner.name}: store issued/redeemed/position {store}, chain {chain}"
            )
    report.partners_checked = len(partners)
    return report
