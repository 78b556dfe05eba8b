"""What a signed-in customer may see and do about herself: her profile, consents, points, the automated
decisions about her (in words: GDPR Art. 15(1)(h) and 22), an export of everything held on her.

A customer is a `Principal` with a member id and nothing else: every function here works on that member
only. Her data is sealed under her key, which this store's partner that enrolled her (her home here)
holds; reading it for her is reading it as that partner, which is why the home is looked up first and
never taken from the request.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from eth_utils import is_address

from api.context import Crm
from api.errors import InvalidInput, NotFound
from api.principal import Principal
from api.usecases import consent, customers, decisions, erasure, export, loyalty, members, signing
from ledger.clients import PURPOSES, purpose_id
from offchain.canonical import canonical_json
from offchain.models import ConsentReceipt, ConsentRequest, ErasureReceipt
from offchain.repositories import consent_requests, partners
from offchain.repositories import customers as customer_rows


def home_partner(crm: Crm, who: Principal) -> str:
    """The partner of this store that holds `who`'s record; NotFound if none does."""
    member = who.acting_member()
    with crm.unit_of_work() as db:
        row = customer_rows.get(db, member)
        partner = None if row is None else partners.by_id(db, row.partner_id)
    if partner is None:
        raise NotFound(f"no member 0x{member.hex()} here")
    return partner.name


def _as_home(crm: Crm, who: Principal) -> tuple[Principal, bytes]:
    return Principal.of_partner(home_partner(crm, who)), who.acting_member()


def profile(crm: Crm, who: Principal) -> customers.CustomerView:
    home, member = _as_home(crm, who)
    return customers.show_customer(crm, home, member)


def export_all(crm: Crm, who: Principal) -> dict[str, Any]:
    """Everything held on her here, decrypted: the same export her home partner would make."""
    home, member = _as_home(crm, who)
    return export.export_member(crm, home, member)


@dataclass(frozen=True)
class ConsentState:
    partner: str
    purpose: str
    valid: bool  # the chain's answer, now
    status: str | None  # the latest event's: given or withdrawn; None: never asked
    notice_version: str | None
    recorded_at: datetime | None
    on_chain: bool  # the latest event's receipt matches the chain's record


@dataclass(frozen=True)
class ConsentOverview:
    states: list[ConsentState]  # every partner here x every purpose
    history: list[consent.ConsentEvent]  # oldest first


def consents(crm: Crm, who: Principal) -> ConsentOverview:
    member = who.acting_member()
    history = consent.consent_history(crm, who, member)
    latest = {(e.receipt.controller, e.receipt.purpose): e for e in history}
    with crm.unit_of_work() as db:
        every = partners.every(db)
    states = []
    for partner in every:
        for purpose in PURPOSES:
            event = latest.get((partner.name, purpose))
            states.append(
                ConsentState(
                    partner.name,
                    purpose,
                    crm.coalition.consent.is_valid(member, partner.address, purpose_id(purpose)),
                    None if event is None else event.receipt.status.value,
                    None if event is None else event.receipt.notice_version,
                    None if event is None else event.receipt.recorded_at,
                    event is not None and event.on_chain,
                )
            )
    return ConsentOverview(states, history)


@dataclass(frozen=True)
class Points:
    balance: int
    history: list[loyalty.PointsLine]


def points(crm: Crm, who: Principal) -> Points:
    member = who.acting_member()
    return Points(loyalty.balance(crm, who, member), loyalty.points_history(crm, who, member))


@dataclass(frozen=True)
class DecisionInWords:
    decision_id: int
    partner: str
    model_id: int
    block_number: int
    as_of: str
    score: float
    action: str
    outcome: str  # one sentence
    reasons: list[str]  # one sentence each, most important first
    what_would_change: str  # the counterfactual, in words


def my_decisions(crm: Crm, who: Principal) -> list[DecisionInWords]:
    """Every automated decision this store's partners logged about her, with the reasons and what would
    change the outcome, in words."""
    home, member = _as_home(crm, who)
    found = []
    for line in decisions.list_decisions(crm, home, member):
        try:
            shown = decisions.show_decision(crm, home, line.decision_id)
        except NotFound:
            continue  # logged on chain but its explanation is not held here
        found.append(in_words(shown))
    return found


def in_words(shown: decisions.ShownDecision) -> DecisionInWords:
    e = shown.explanation
    action = str(e["action"])
    acted = action != "none"
    outcome = (
        f"On {str(e['asOf'])[:10]} {shown.partner}'s model estimated a {float(e['score']):.0%} chance that"
        f" you would stop buying, so it chose: {action.replace('_', ' ')}."
        if acted
        else f"On {str(e['asOf'])[:10]} {shown.partner}'s model estimated a {float(e['score']):.0%} chance"
        " that you would stop buying: no action was taken."
    )
    reasons = [
        f"{r['meaning'][:1].upper()}{r['meaning'][1:]} was {_number(e['features'].get(r['feature']))},"
        f" which counted {r['direction']}."
        for r in e["reasons"]
    ]
    cf = e.get("counterfactual")
    if cf:
        changes = " and ".join(
            f"{_meaning(e, c['feature'])} {_number(c['from'])} had been {_number(c['to'])}"
            for c in cf["changes"]
        )
        change = f"If {changes}, the estimate would have been {float(cf['score']):.0%}"
        change += f" and no {action.replace('_', ' ')} would have been chosen." if acted else "."
    elif acted:
        change = "No change you could make to one or two of these figures would have changed the outcome."
    else:
        change = "Nothing needs to change: no action was taken."
    return DecisionInWords(
        shown.decision_id,
        shown.partner,
        shown.model_id,
        shown.block_number,
        str(e["asOf"]),
        float(e["score"]),
        action,
        outcome,
        reasons,
        change,
    )


def _meaning(e: dict[str, Any], feature: str) -> str:
    for reason in e["reasons"]:
        if reason["feature"] == feature:
            return str(reason["meaning"])
    return feature.replace("_", " ")


def _number(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return f"{value:g}" if isinstance(value, float) else str(value)


# --- what she signs in the browser, relayed by a partner -----------------------------------------------


def consent_typed_data(crm: Crm, who: Principal, partner: str, purpose: str, status: str) -> dict[str, Any]:
    """The EIP-712 typed data of her consent (`status` given or withdrawn) towards `partner` for
    `purpose`. The receipt it commits to is kept here until she sends the signature back."""
    member = who.acting_member()
    if status not in ("given", "withdrawn"):
        raise InvalidInput(f"status is given or withdrawn, not {status!r}")
    consent.check_purposes([purpose])
    typed, document = signing.consent_typed_data(
        crm, who, member, partner, purpose, withdraw=status == "withdrawn"
    )
    raw = canonical_json(document)
    deadline = datetime.fromtimestamp(int(typed["message"]["deadline"]), UTC)
    with crm.unit_of_work() as db:
        consent_requests.forget_before(db, datetime.now(UTC))
        consent_requests.add(
            db,
            ConsentRequest(
                receipt_hash=hashlib.sha256(raw).digest(),
                member_id=member,
                receipt_json=raw.decode(),
                expires_at=deadline,
            ),
        )
    return typed


def _message(typed_data: dict[str, Any], primary: str) -> dict[str, Any]:
    message = typed_data.get("message")
    if typed_data.get("primaryType") != primary or not isinstance(message, dict):
        raise InvalidInput(f"typed_data: not the {primary} typed data this server handed out")
    return message


def partner_name_at(crm: Crm, address: Any) -> str:
    """The name of this server's partner at `address`; InvalidInput if none is."""
    with crm.unit_of_work() as db:
        found = partners.by_address(db, str(address)) if isinstance(address, str) else None
    if found is None:
        raise InvalidInput(f"typed_data: {address} is not a partner of this server")
    return found.name


def relay_consent(crm: Crm, who: Principal, typed_data: dict[str, Any], signature: str) -> ConsentReceipt:
    """Her signed consent, relayed to the chain by the partner it is towards (which records it)."""
    member = who.acting_member()
    message = _message(typed_data, "Consent")
    by_id = {"0x" + purpose_id(p).hex(): p for p in PURPOSES}
    purpose = by_id.get(str(message.get("purpose", "")).lower())
    if purpose is None:
        raise InvalidInput("typed_data: an unknown purpose")
    try:
        receipt_hash = bytes.fromhex(str(message.get("receiptHash", "")).removeprefix("0x"))
    except ValueError:
        receipt_hash = b""
    with crm.unit_of_work() as db:
        request = consent_requests.get(db, receipt_hash)
        document = (
            None if request is None or request.member_id != member else json.loads(request.receipt_json)
        )
    if document is None:
        raise InvalidInput(
            "typed_data: no consent of yours is waiting for this signature: ask for the typed data again"
        )
    partner = Principal.of_partner(partner_name_at(crm, message.get("controller")))
    signed = signing.signed_message(typed_data, signature, document, "signature")
    if document.get("status") == "withdrawn":
        receipt = consent.withdraw_consent(crm, partner, member, purpose, signed=signed)
    else:
        receipt = consent.give_consent(crm, partner, member, purpose, signed=signed)
    with crm.unit_of_work() as db:
        consent_requests.forget(db, receipt_hash)
    return receipt


def redeem_typed_data(crm: Crm, who: Principal, partner: str, amount: int) -> dict[str, Any]:
    """The EIP-712 typed data of her redemption of `amount` points at `partner`."""
    return signing.redeem_typed_data(crm, who, who.acting_member(), partner, amount)


def relay_redeem(
    crm: Crm, who: Principal, typed_data: dict[str, Any], signature: str
) -> loyalty.PointsReceipt:
    """Her signed redemption, relayed to the chain by the partner she redeems at."""
    member = who.acting_member()
    message = _message(typed_data, "Redeem")
    amount = message.get("amount")
    if not isinstance(amount, int):
        raise InvalidInput("typed_data: no amount")
    partner = Principal.of_partner(partner_name_at(crm, message.get("partner")))
    signed = signing.signed_message(typed_data, signature, source="signature")
    return loyalty.redeem_points(crm, partner, loyalty.PointsRequest(member, amount), signed=signed)


def erasure_typed_data(crm: Crm, who: Principal) -> dict[str, Any]:
    """The EIP-712 typed data of her request to be erased."""
    return signing.erasure_typed_data(crm, who, who.acting_member())


def relay_erasure(crm: Crm, who: Principal, typed_data: dict[str, Any], signature: str) -> ErasureReceipt:
    """Her signed request to be erased, carried out by her home partner here: her key shredded, her data
    unreadable, a receipt anchored, and on chain her consents withdrawn, her points forfeited, the member
    frozen. It cannot be undone."""
    home, member = _as_home(crm, who)
    signed = signing.signed_message(typed_data, signature, source="signature")
    receipt, _anchored = erasure.erase_customer_signed(crm, home, member, signed)
    return receipt


@dataclass(frozen=True)
class HomeChoice:
    home: str  # the partner that acts for her on chain: its name here, or its address
    others: list[str]  # this server's other partners of the consortium, where she may move it


def home_choice(crm: Crm, who: Principal) -> HomeChoice:
    """Her home on chain (who attests her consent and redeems her points when she does not sign), and
    the partners she may move it to."""
    home = crm.coalition.members.member(who.acting_member()).home
    with crm.unit_of_work() as db:
        here = partners.every(db)
    named = {p.address.lower(): p.name for p in here}
    consortium = crm.coalition.consortium
    current = named.get(str(home).lower(), str(home))
    return HomeChoice(
        current, [p.name for p in here if p.name != current and consortium.is_partner(p.address)]
    )


def home_move_typed_data(crm: Crm, who: Principal, new_home: str) -> dict[str, Any]:
    """The EIP-712 typed data by which she moves her home to `new_home` (a partner's name or address)."""
    return signing.home_move_typed_data(crm, who, who.acting_member(), new_home)


def relay_home_move(crm: Crm, who: Principal, typed_data: dict[str, Any], signature: str) -> members.HomeMove:
    """Her signed move of her home, relayed to the chain by the partner that holds her record here. The
    store keeps her record where it is: the chain's home is who acts for her on chain (attests her
    consent, redeems her points) when she does not sign herself."""
    relayer, member = _as_home(crm, who)
    new_home = _message(typed_data, "HomeMove").get("newHome")
    if not isinstance(new_home, str) or not is_address(new_home):
        raise InvalidInput("typed_data: no new home's address")
    signed = signing.signed_message(typed_data, signature, source="signature")
    return members.relay_home_move(crm, relayer, member, new_home, signed)
