"""The customer's privacy centre (`/me`, signed in with the customer's own key): each partner x
purpose with a toggle, the notice version and when consent was given or withdrawn, the history as a
timeline, and points with their history. A toggle is a signed write: the page's script signs the
API's typed data with the key opened in the page, and flips the box once the API answers."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from api.http.pages.base import as_role, crm_of, render, sign_in_page
from api.principal import Role
from api.usecases.consent import ConsentEvent, consent_history
from api.usecases.loyalty import balance, points_history

router = APIRouter()


@dataclass(frozen=True)
class Toggle:
    """One partner x purpose, as the latest event of its history left it."""

    partner: str
    purpose: str
    latest: ConsentEvent

    @property
    def given(self) -> bool:
        return self.latest.receipt.status.value == "given" and self.latest.on_chain

    @property
    def slug(self) -> str:
        return f"consent-{self.partner}-{self.purpose}".replace(" ", "-")


@router.get("/me", response_class=HTMLResponse)
def privacy_centre(request: Request) -> HTMLResponse:
    who = as_role(request, Role.CUSTOMER)
    if who is None or who.member is None:
        return sign_in_page(request, Role.CUSTOMER)
    crm = crm_of(request)
    history = consent_history(crm, who, who.member)
    latest: dict[tuple[str, str], ConsentEvent] = {}
    for event in history:
        latest[(event.receipt.controller, event.receipt.purpose)] = event
    toggles = [Toggle(partner, purpose, event) for (partner, purpose), event in sorted(latest.items())]
    return render(
        request,
        "pages/me.html",
        member=who.member,
        toggles=toggles,
        history=list(reversed(history)),
        balance=balance(crm, who, who.member),
        points=list(reversed(points_history(crm, who, who.member))),
    )
