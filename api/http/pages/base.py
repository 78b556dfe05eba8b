"""What every page shares: the templates, who is signed in, and the sign-in page for anyone else.

A page reads the signed-in `Principal` from the HTTP API's session cookie (`api.http.deps`'s
`optional_principal`, which the app that mounts these pages provides) and calls the use cases with it,
exactly as the API's routes do. A page asked for by someone without the page's role renders the sign-in
page, never data, with status 401 (so that no cache or crawler keeps it as the page).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from api.principal import Principal, Role

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"
STATIC = Path(__file__).resolve().parent.parent / "static"
templates = Jinja2Templates(directory=TEMPLATES)

PrincipalOf = Callable[[Request], Principal | None]

# Where each role signs in, and the page it lands on.
HOME = {Role.CUSTOMER: "/me", Role.PARTNER: "/partner", Role.AUDITOR: "/audit"}
WHO = {Role.CUSTOMER: "customer", Role.PARTNER: "partner", Role.AUDITOR: "auditor"}


def _api_sessions() -> PrincipalOf | None:
    """The HTTP API's `optional_principal`, if this installation has the API's sessions."""
    try:
        deps = importlib.import_module("api.http.deps")
    except ModuleNotFoundError:
        return None
    found: PrincipalOf | None = getattr(deps, "optional_principal", None)
    return found


def signed_in(request: Request) -> Principal | None:
    """Who is signed in to this request: `app.state.principal_of` where the app sets one (the browser
    tests' harness does), else the HTTP API's session cookie; with neither, nobody."""
    resolve: PrincipalOf | None = getattr(request.app.state, "principal_of", None) or _api_sessions()
    return resolve(request) if resolve is not None else None


def crm_of(request: Request) -> Any:
    """The app's `Crm` (the composition root the use cases take)."""
    return request.app.state.crm


def render(request: Request, template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    context.setdefault("who", signed_in(request))
    return templates.TemplateResponse(request, template, context, status_code=status_code)


def sign_in_page(request: Request, role: Role, *, problem: str | None = None) -> HTMLResponse:
    """The sign-in page for `role`, in place of the page asked for: whoever is signed in as another role
    sees no data of this one."""
    current = signed_in(request)
    return render(
        request,
        "pages/sign_in.html",
        status_code=401,
        role=WHO[role],
        home=HOME[role],
        problem=problem,
        other=None if current is None or current.role is role else WHO.get(current.role, str(current.role)),
        who=None,
    )


def as_role(request: Request, role: Role) -> Principal | None:
    """The signed-in principal if it has `role`, else None (the caller renders the sign-in page)."""
    principal = signed_in(request)
    return principal if principal is not None and principal.role is role else None


def member_hex(member: bytes) -> str:
    return "0x" + member.hex()


def when(moment: datetime | None) -> str:
    """A time as people read it, in UTC."""
    return "" if moment is None else f"{moment:%d %B %Y, %H:%M} UTC"


templates.env.filters["member"] = member_hex
templates.env.filters["when"] = when
