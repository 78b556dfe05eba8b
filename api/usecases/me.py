"""What a signed-in customer may see and do about herself: her profile, consents, points, the automated
decisions about her (in words: GDPR Art. 15(1)(h) and 22), an export of everything held on her.

A customer is a `Principal` with a member id and nothing else: every function here works on that member
only. Her data is sealed under her key, which this store's partner that enrolled her (her home here)
holds; reading it for her is reading it as that partner, which is why the home is looked up first and
never taken from the request.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from api.context import Crm
from api.errors import NotFound
from api.principal import Principal
from api.usecases import consent, customers, decisions, export, loyalty
from ledger.clients import PURPOSES, purpose_id
from offchain.repositories import customers as customer_rows
from offchain.repositories import partners


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
