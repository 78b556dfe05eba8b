"""The customer's privacy centre (`/me`, signed in with the customer's own key): the profile; each
partner x purpose with a toggle, the notice version and when consent was given or withdrawn; the
history as a timeline; points and their history; every automated decision with its reasons and what
would change it, in words; who acts for her on chain (her home) and a form to move it; a download of
everything held. A toggle (and a move) is a signed write: the page's script signs the API's typed data
with the key opened in the page, and flips the box (names the new home) once the API answers."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from api.http.pages.base import as_role, crm_of, render, sign_in_page
from api.principal import Role
from api.usecases import me

router = APIRouter()


@router.get("/me", response_class=HTMLResponse)
def privacy_centre(request: Request) -> HTMLResponse:
    who = as_role(request, Role.CUSTOMER)
    if who is None:
        return sign_in_page(request, Role.CUSTOMER)
    crm = crm_of(request)
    overview = me.consents(crm, who)
    points = me.points(crm, who)
    return render(
        request,
        "pages/me.html",
        member=who.acting_member(),
        profile=me.profile(crm, who),
        consents=overview.states,
        history=list(reversed(overview.history)),
        balance=points.balance,
        points=list(reversed(points.history)),
        decisions=me.my_decisions(crm, who),
        home=me.home_choice(crm, who),
    )


@router.get("/me/erase", response_class=HTMLResponse)
def erase_page(request: Request) -> HTMLResponse:
    """Erasure, on a page of its own: what it does, that it cannot be undone, and the button that signs
    it with the customer's key."""
    who = as_role(request, Role.CUSTOMER)
    if who is None:
        return sign_in_page(request, Role.CUSTOMER)
    return render(request, "pages/me_erase.html", partner=me.home_partner(crm_of(request), who))


@router.get("/me/erased", response_class=HTMLResponse)
def erased_page(request: Request) -> HTMLResponse:
    """Where the page goes once the erasure is done (the sessions ended with it): nothing about anyone."""
    return render(request, "pages/me_erased.html", who=None)


@router.get("/me/invite", response_class=HTMLResponse)
def invite_page(request: Request) -> HTMLResponse:
    """Where an invitation's link leads: the page makes her a key, lets her save it, and binds it with
    the code (which the link carries after '#', so it never reaches this server's logs: the page's
    script reads it and sends it in a request body)."""
    return render(request, "pages/me_invite.html")
