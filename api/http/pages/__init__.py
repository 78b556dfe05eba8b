"""The pages for the three users, served next to the HTTP API: the customer's privacy centre (`/me`),
the partner's desk (`/partner`) and the auditor's console (`/audit`). Server-rendered (Jinja2), with
htmx and small ES modules where something changes in place; every asset served by us."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from api.http.pages import audit, me, partner
from api.http.pages.base import HOME, render, signed_in, templates

__all__ = ["router", "templates"]

router = APIRouter(include_in_schema=False)  # pages are HTML for people, not part of the API's contract
router.include_router(me.router)
router.include_router(partner.router)
router.include_router(audit.router)


@router.get("/", response_class=HTMLResponse)
def start(request: Request) -> HTMLResponse:
    """Where to sign in, by who you are; a signed-in person goes to their own page."""
    who = signed_in(request)
    home = HOME.get(who.role) if who is not None else None
    return render(request, "pages/start.html", home=home)
