"""Coalition points: earned and redeemed on chain, mirrored off chain, reconciled between the two.

Earning needs the member's valid consent to the earning partner for the loyalty purpose, as the chain
answers it; redeeming does not (a member may always spend what they hold)."""

from __future__ import annotations

import hashlib
import os
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select

from api.usecases.consent import LOYALTY
from api.usecases.context import Crm
from api.usecases.customers import member_exists
from api.usecases.errors import ConsentRequired, InvalidInput
from ledger.clients import purpose_id
from offchain.models import Partner, PointEvent, PointKind


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
