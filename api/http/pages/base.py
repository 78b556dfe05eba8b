"""What every page shares: the templates, who is signed in, and the sign-in page for anyone else.

A page reads the signed-in `Principal` from the HTTP API's session cookie (`api.http.deps`'s
`optional_principal`) and calls the use cases with it, exactly as the API's routes do. A page asked for
by someone without the page's role renders the sign-in page, never data, with status 401 (so that no
cache or crawler keeps it as the page).
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from api.context import Crm
from api.errors import CrmError
from api.http.deps import get_crm, optional_principal
from api.principal import Principal, Role

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"
STATIC = Path(__file__).resolve().parent.parent / "static"
templates = Jinja2Templates(directory=TEMPLATES)

# Where each role signs in, and the page it lands on.
HOME = {Role.CUSTOMER: "/me", Role.PARTNER: "/partner", Role.AUDITOR: "/audit"}
WHO = {Role.CUSTOMER: "customer", Role.PARTNER: "partner", Role.AUDITOR: "auditor"}


def signed_in(request: Request) -> Principal | None:
    """Who is signed in to this request (the API's session cookie), or nobody."""
    return optional_principal(request)


def crm_of(request: Request) -> Crm:
    """The app's `Crm` (the composition root the use cases take)."""
    return get_crm(request)


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


def job_findings_page(request: Request, role: Role, job_id: str, template: str) -> HTMLResponse:
    """The findings of a job the signed-in `role` started (its page's script follows the job's progress
    through the API, then shows this); the sign-in page to anyone else, not found for another's job."""
    who = as_role(request, role)
    if who is None:
        return sign_in_page(request, role)
    try:
        job = request.app.state.jobs.view(who, job_id[:64])
    except CrmError as error:
        return render(request, "pages/not_found.html", status_code=404, problem=str(error))
    return render(request, template, job=job, result=job.result or {})


def member_hex(member: bytes) -> str:
    return "0x" + member.hex()


def when(moment: datetime | None) -> str:
    """A time as people read it, in UTC."""
    return "" if moment is None else f"{moment:%d %B %Y, %H:%M} UTC"


templates.env.filters["member"] = member_hex
templates.env.filters["when"] = when
