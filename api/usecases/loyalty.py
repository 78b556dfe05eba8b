"""Coalition points: earned and redeemed on chain, mirrored off chain, reconciled between the two.

Earning needs the member's valid consent to the earning partner for the loyalty purpose, as the chain
answers it (the contract checks it again). Redeeming needs no consent, but it needs the member: its
signature if it holds a key (any partner relays it, and is the one redeemed at), else its home partner
redeems for it. Everything the contract would refuse is refused before anything is written."""

from __future__ import annotations

import hashlib
import os
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from operator import itemgetter
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from api.context import Crm
from api.errors import ConsentRequired, CustomerIsErased, InvalidInput, MalformedInput, NotAllowed, NotFound
from api.evidence.outbox import Outbox, sending_as
from api.principal import Principal
from api.usecases.consent import LOYALTY, chain_member
from api.usecases.customers import member_status, readable_member
from api.usecases.signing import SignedMessage, check_signed
from ledger.chain import SignedTx
from ledger.clients import MemberInfo, purpose_id
from ledger.clients.loyalty import MAX_EARN, earn_batch_fits, earn_batch_max
from ledger.clients.members import Authorization
from offchain.models import CustomerStatus, PointEvent, PointKind
from offchain.repositories import customers, partners, points
from offchain.vault import CustomerKeys


@dataclass(frozen=True)
class PointsRequest:
    member: bytes
    amount: int
    external_key: str | None = None  # idempotency key (e.g. the invoice that earned the points)


# The most points one event may carry: the contract's cap per earn (well inside the store's BIGINT).
MAX_POINTS_PER_EVENT = MAX_EARN


def _check_amounts(requests: Sequence[PointsRequest]) -> None:
    for request in requests:
        if not 0 < request.amount <= MAX_POINTS_PER_EVENT:
            most = f"{MAX_POINTS_PER_EVENT:,}"
            raise MalformedInput(
                f"an amount is a whole number of points from 1 to {most}, not {request.amount:,}"
            )


@dataclass(frozen=True)
class PointsReceipt:
    event: PointEvent
    balance: int  # the member's coalition balance right after, from the chain


def earn_points(crm: Crm, who: Principal, request: PointsRequest) -> PointsReceipt:
    (event,) = _points(crm, who.acting_partner(), [request], PointKind.EARN)
    return PointsReceipt(event, crm.coalition.loyalty.balance_of(request.member))


def redeem_points(
    crm: Crm, who: Principal, request: PointsRequest, *, signed: SignedMessage | None = None
) -> PointsReceipt:
    """Redeem at the acting partner: signed by the member (`signed`, made on her device from
    `signing.redeem_typed_data`) if it holds a key, else by its home partner (which the acting partner
    must then be)."""
    (event,) = _points(crm, who.acting_partner(), [request], PointKind.REDEEM, signed)
    return PointsReceipt(event, crm.coalition.loyalty.balance_of(request.member))


def balance_total(crm: Crm, who: Principal) -> int:
    """The points all members hold together: issued minus redeemed, what the coalition still owes."""
    return crm.coalition.loyalty.total_supply()


def earn_points_batch(crm: Crm, who: Principal, requests: Sequence[PointsRequest]) -> list[PointEvent]:
    """Many earns in one transaction; all or nothing."""
    return _points(crm, who.acting_partner(), requests, PointKind.EARN)


def balance(crm: Crm, who: Principal, member: bytes) -> int:
    """A member's coalition balance, from the chain (a partner reads its own customers', a customer its
    own, the operator anyone's)."""
    with crm.unit_of_work() as db:
        readable_member(crm, db, who, member)
    return crm.coalition.loyalty.balance_of(member)


def _points(
    crm: Crm,
    partner_name: str,
    requests: Sequence[PointsRequest],
    kind: PointKind,
    signed: SignedMessage | None = None,
) -> list[PointEvent]:
    # signed with the partner's key and sent at once: after any running sender of the partner
    with sending_as(crm, partner_name):
        return _points_now(crm, partner_name, requests, kind, signed)


def _points_now(
    crm: Crm,
    partner_name: str,
    requests: Sequence[PointsRequest],
    kind: PointKind,
    signed: SignedMessage | None,
) -> list[PointEvent]:
    if not requests:
        raise InvalidInput("no points to record")
    _check_amounts(requests)
    if signed is not None and (kind is PointKind.EARN or len(requests) != 1):
        raise InvalidInput("a customer signs one redemption at a time")
    authorization: Authorization | None = None
    loyalty = purpose_id(LOYALTY)
    try:
        with crm.unit_of_work() as db:
            partner = crm.partner(db, partner_name)
            keys = crm.vault.customer_keys(partner_name, {r.member for r in requests})
            events = []
            for request in requests:
                if member_status(db, request.member) is CustomerStatus.ERASED:
                    raise CustomerIsErased(f"member 0x{request.member.hex()} was erased")
                info = chain_member(crm, request.member)
                if kind is PointKind.EARN and not crm.coalition.consent.is_valid(
                    request.member, partner.address, loyalty
                ):
                    raise ConsentRequired(
                        f"member 0x{request.member.hex()} has no valid {LOYALTY!r} consent"
                        f" towards {partner_name!r}"
                    )
                ref = _ref(keys.get(request.member), request)
                if kind is PointKind.REDEEM:
                    _check_redeemer(info, request.member, partner.address, partner_name, signed)
                if signed is not None:
                    authorization = check_signed(
                        crm,
                        signed,
                        "Redeem",
                        request.member,
                        {
                            "partner": (
                                partner.address,
                                lambda v: (
                                    f"for a redemption at {v}, not at {partner_name!r} ({partner.address})"
                                ),
                            ),
                            "amount": (
                                request.amount,
                                lambda v, asked=request.amount: f"for {v} points, not {asked}",
                            ),
                        },
                        "a redemption",
                    )
                    ref = _signed_ref(signed)
                events.append(
                    PointEvent(
                        partner_id=partner.id,
                        member_id=request.member,
                        kind=kind,
                        amount=request.amount,
                        ref=ref,
                        external_key=request.external_key,
                    )
                )
            points.add_all(db, events)  # duplicate external keys fail here, before the chain is touched
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
            elif authorization is not None:
                tx = crm.coalition.loyalty.redeem_signed(
                    signer, members[0], amounts[0], refs[0], authorization
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


def _check_redeemer(
    info: MemberInfo,
    member: bytes,
    partner_address: str,
    partner_name: str,
    signed: SignedMessage | None,
) -> None:
    """Refuse a redemption the contract would refuse: a member with a key must sign (with that key:
    `signing.check_signed`); a member without one is redeemed by its home partner only."""
    if info.signer is not None:
        if signed is None:
            raise NotAllowed(
                f"member 0x{member.hex()} holds its own key: a redemption must be signed with it (the"
                " customer runs `ledgercrm customer sign redeem`; the partner relays it with"
                " --signature FILE)"
            )
        return
    if signed is not None:
        raise InvalidInput(f"member 0x{member.hex()} has no key of its own bound: it cannot sign")
    if info.home != partner_address:
        raise NotAllowed(
            f"only member 0x{member.hex()}'s home partner may redeem its points, not {partner_name!r};"
            " at another partner the member signs the redemption with a key of its own"
        )


def _signed_ref(signed: SignedMessage) -> bytes:
    """The reference the customer signed (checked as 32 bytes of hex)."""
    try:
        ref = bytes.fromhex(str(signed.message.get("ref", "")).removeprefix("0x"))
    except ValueError:
        ref = b""
    if len(ref) != 32:
        raise InvalidInput("the signature's redemption has no reference (32 bytes of hex)")
    return ref


def _ref(keys: CustomerKeys | None, request: PointsRequest) -> bytes:
    """The bytes32 reference on chain: the partner's own key for the event (an invoice number) keyed
    under the member's data key, as leaves are (`Vault.reference`): a plain hash of it was linked back
    to invoices by anyone holding a list of them, and stays linkable after erasure. A fresh random value
    when there is no such key, or when the partner holds no data key of the member (a redemption at
    another partner than its home): unlinkable too, and the row keeps it."""
    if request.external_key is None or keys is None:
        return hashlib.sha256(os.urandom(32)).digest()
    return keys.reference(request.external_key.encode())


# --- bulk earning through the outbox (imports) -------------------------------------------------------
#
# Earn events are staged (no tx_hash), then sent with `earnBatch`, many per transaction, through the one
# outbox (api/evidence/outbox.py). Each event carries the partner's external key (e.g. the invoice),
# unique per partner, so a repeated import stages nothing twice; a crash at any point is finished by
# `send_staged_points` without earning anything twice.


@dataclass
class StagedPoints:
    staged: int = 0  # events written, to be sent
    points: int = 0  # their total
    duplicates: list[str] = field(default_factory=list)  # external keys already recorded
    no_consent: list[str] = field(default_factory=list)  # external keys skipped: no valid consent


def stage_earnings(
    crm: Crm,
    who: Principal,
    requests: Sequence[PointsRequest],
    *,
    consent: dict[bytes, bool] | None = None,
) -> StagedPoints:
    """Stage earn events for requests whose external key the partner has not used yet; skip (and
    report) those of members without valid loyalty consent towards the partner, as the chain answers
    it. `consent` caches the answers across calls (member -> valid), and may be pre-filled with members
    whose consent the caller saw confirmed, to spare a chain call each. Every request needs an external
    key: it is what makes staging idempotent. `send_staged_points` puts the events on chain."""
    partner_name = who.acting_partner()
    result = StagedPoints()
    keys = [r.external_key for r in requests]
    if any(k is None for k in keys):
        raise InvalidInput("bulk earnings need an external key on every request")
    if len(keys) != len(set(keys)):
        raise InvalidInput("the same external key appears twice in one request")
    _check_amounts(requests)
    consent = consent if consent is not None else {}
    with crm.unit_of_work() as db:
        partner = crm.partner(db, partner_name)
        used = points.used_keys(db, partner.id, [k for k in keys if k is not None])
        fresh = [r for r in requests if r.external_key not in used]
        result.duplicates = [r.external_key for r in requests if r.external_key in used and r.external_key]
        members = list({r.member for r in fresh})
        known = customers.statuses(db, members)
    for member in members:
        if member not in known:
            raise NotFound(f"no member 0x{member.hex()}")
    loyalty = purpose_id(LOYALTY)
    for member in members:  # outside any store transaction: these are chain calls
        if member not in consent:
            consent[member] = crm.coalition.consent.is_valid(member, partner.address, loyalty)
    sealing = crm.vault.customer_keys(partner_name, {r.member for r in fresh if consent[r.member]})
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
                "partner_id": partner.id,
                "member_id": request.member,
                "kind": PointKind.EARN,
                "amount": request.amount,
                "ref": _ref(sealing.get(request.member), request),
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
                points.insert(db, events)
        except IntegrityError as exc:  # another process staged one of these keys meanwhile
            raise InvalidInput(
                f"points with one of these external keys were already recorded: {exc.orig}"
            ) from exc
    result.staged = len(events)
    result.points = sum(e["amount"] for e in events)
    return result


def send_staged_points(
    crm: Crm, who: Principal, *, batch_size: int | None = None, min_batch: int = 1, wait: bool = True
) -> list[Any]:
    """Put the partner's staged and interrupted earn events on chain, `batch_size` per earnBatch (by default
    what the node's block takes, `earn_batch_max`), each cut to what its gas bound fits under the node's block
    gas limit, while at least `min_batch` are staged (so a caller can send full batches only, then flush with
    1); the events confirmed by this call (plain rows with the columns `points.OUTBOX` names). With
    `wait=False` the batches this call sends are left in flight, to be confirmed by the next call (which
    settles in-flight transactions first): an import works on its next chunk while the node mines. A partner's
    outboxes have one sender at a time (`api.evidence.outbox.sending`: another waits)."""
    partner_name = who.acting_partner()
    client = crm.coalition.loyalty
    signer = crm.signer(partner_name)
    with crm.unit_of_work() as db:
        partner_id = crm.partner(db, partner_name).id
    outbox = Outbox(crm, points.OUTBOX, client, partner_id)
    budget = client.batch_gas_budget()  # once: the limit the last simulation saw, or one read
    if batch_size is None:
        batch_size = earn_batch_max(budget)
    # The oldest staged events read and not sent yet, as (id, member, amount, ref) in the order read, and
    # the last id read. A batch takes what its gas bound fits of the oldest `batch_size` (Online Retail II:
    # ~1,100 of 4,200, its invoices being in date order, not by member); the rest stay staged, and they
    # are the next batch's oldest: kept here, only the events staged after them are read again. Those
    # kept are looked at again in each batch's transaction (ids only): another process may have sent or
    # removed one meanwhile, and one kept and sent anyway would earn its points twice on chain (no ref
    # is unique there). Plain tuples (as `points.staged_earnings` gives them), not the store's rows:
    # each kept event is filtered, sorted and split a few times over (a row's attribute reads in those
    # passes took ~0.3 CPU s of an import).
    unsent: list[tuple[int, bytes, int, bytes]] = []
    last_read = 0

    def next_batch(db: Session) -> tuple[list[int], SignedTx] | None:
        nonlocal unsent, last_read
        if unsent:
            still = points.still_staged(db, [item[0] for item in unsent])
            if len(still) < len(unsent):  # `still` is a subset of these ids
                unsent = [item for item in unsent if item[0] in still]
        if len(unsent) < batch_size:
            more = points.staged_earnings(
                db, partner_id, batch_size - len(unsent), consent_purpose=LOYALTY, after=last_read
            )
            if more:
                last_read = more[-1][0]
                unsent = unsent + more
        if not unsent or len(unsent) < min_batch:
            return None
        # One member's items side by side: earnBatch checks the registry and consent once per run of
        # a member (the order of items within a batch changes nothing else: all or nothing, one block).
        # The sort is stable: a member's items stay oldest first.
        window = sorted(unsent, key=_MEMBER)
        members = [item[1] for item in window]
        # as many as one transaction's gas bound takes; the rest stay staged for the next batch
        fits = earn_batch_fits(members, budget)
        batch = window[:fits]
        if fits < len(window):
            sent = {item[0] for item in batch}
            unsent = [item for item in unsent if item[0] not in sent]  # oldest first, as read
        else:
            unsent = []
        signed = client.prepare_earn_batch(
            signer, members[:fits], [item[2] for item in batch], [item[3] for item in batch]
        )
        return [item[0] for item in batch], signed

    return outbox.settle() + outbox.send(next_batch, wait=wait)


_MEMBER = itemgetter(1)


@dataclass
class Reconciliation:
    members_checked: int = 0
    partners_checked: int = 0
    mismatches: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.mismatches


def reconcile(crm: Crm, who: Principal, partner: str | None = None) -> Reconciliation:
    """Compare the off-chain point events with on-chain balances and settlement positions: of every
    partner (the store's operator only), or of one (its members' balances and its position; the
    operator, or that partner itself).

    Assumes this store is the only writer of the coalition's points (one coalition, one store)."""
    who.may_reconcile(partner)
    report = Reconciliation()
    balances: dict[bytes, int] = defaultdict(int)
    issued: dict[int, int] = defaultdict(int)
    redeemed: dict[int, int] = defaultdict(int)
    members_in_scope: set[bytes] = set()
    with crm.unit_of_work() as db:
        by_id = {p.id: p for p in partners.every(db)}
        scope = {p.id for p in by_id.values() if partner is None or p.name == partner}
        if partner is not None and not scope:
            crm.partner(db, partner)  # UnknownPartner
        for event_id, partner_id in points.without_hash(db):
            if partner_id in scope:
                report.mismatches.append(f"point event {event_id} was never confirmed on chain")
        # summed by the store, one row per member, partner and kind: memory by members, not by events
        for member_id, partner_id, kind, total in points.confirmed_totals(db):
            member, amount = bytes(member_id), int(total)
            if partner_id in scope:
                members_in_scope.add(member)
            earned = PointKind(kind) is PointKind.EARN
            balances[member] += amount if earned else -amount
            (issued if earned else redeemed)[partner_id] += amount
        # an erased member's balance was forfeited on chain: nothing is left (issued stays issued)
        erased = {
            member
            for member, status in customers.statuses(db, members_in_scope).items()
            if status is CustomerStatus.ERASED
        }
    ordered = sorted(members_in_scope)
    for member, onchain in zip(ordered, crm.coalition.loyalty.balances_of(ordered), strict=True):
        expected = 0 if member in erased else balances[member]
        if onchain != expected:
            report.mismatches.append(
                f"member 0x{member.hex()}: the store says a balance of {expected:,}, the chain {onchain:,}"
            )
    report.members_checked = len(members_in_scope)
    for partner_id in sorted(scope):
        record = by_id[partner_id]
        store = (issued[partner_id], redeemed[partner_id], redeemed[partner_id] - issued[partner_id])
        chain = (
            crm.coalition.loyalty.issued_by(record.address),
            crm.coalition.loyalty.redeemed_at(record.address),
            crm.coalition.loyalty.position_of(record.address),
        )
        if store != chain:
            report.mismatches.append(
                f"partner {record.name}: the store says {_position(*store)};"
                f" the chain says {_position(*chain)}"
            )
    report.partners_checked = len(scope)
    return report


def _position(issued: int, redeemed: int, position: int) -> str:
    return f"issued {issued:,}, redeemed {redeemed:,}, position {position:+,}"


@dataclass(frozen=True)
class PointsLine:
    kind: PointKind
    amount: int
    partner: str
    external_key: str | None
    block_number: int | None  # None: not confirmed on chain (yet)
    recorded_at: datetime


def points_history(crm: Crm, who: Principal, member: bytes) -> list[PointsLine]:
    """Every earn and redeem of a member across the coalition, oldest first, with the partner and the
    block (a partner reads its own customers', a customer its own, the operator anyone's)."""
    with crm.unit_of_work() as db:
        readable_member(crm, db, who, member)
        return [
            PointsLine(e.kind, e.amount, name, e.external_key, e.block_number, e.created_at)
            for e, name in points.of_member(db, member)
        ]


@dataclass(frozen=True)
class PointsStatement:
    balance: int  # from the chain
    lines: list[PointsLine]


def points_statement(crm: Crm, who: Principal, member: bytes) -> PointsStatement:
    """A member's balance (from the chain) and every earn and redeem (`points_history`)."""
    lines = points_history(crm, who, member)
    return PointsStatement(crm.coalition.loyalty.balance_of(member), lines)
