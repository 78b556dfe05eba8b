"""Annotated dependencies: the composition (`CrmDep`) and who is calling (`Caller`, the `Principal`).

A request carries one credential: `Authorization: Bearer <partner API key or session token>`, or the
session cookie that sign-in set (pages). A cookie-authenticated write must also send the session's CSRF
token in `X-CSRF-Token`: a cookie rides along with a request another site makes, the header cannot.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.security import APIKeyCookie, HTTPAuthorizationCredentials, HTTPBearer

from api.context import Crm
from api.errors import InvalidInput, NotAllowed, Unauthenticated
from api.principal import Principal, Role
from api.usecases import access

SESSION_COOKIE = "lcrm_session"
CSRF_COOKIE = "lcrm_csrf"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

_bearer = HTTPBearer(
    auto_error=False, description="a partner's API key (lcrm_…) or a session token from /v1/auth/session"
)
_cookie = APIKeyCookie(name=SESSION_COOKIE, auto_error=False, description="the session cookie set at sign-in")


def get_crm(request: Request) -> Crm:
    crm: Crm = request.app.state.crm
    return crm


CrmDep = Annotated[Crm, Depends(get_crm)]


@dataclass(frozen=True)
class Caller:
    principal: Principal
    credential: str  # what limits and idempotency keys are counted per: never the secret itself


def credential_id(request: Request) -> str | None:
    """A stable, non-secret name for the credential a request carries (a hash of it), or None."""
    header = request.headers.get("authorization", "")
    secret = header[7:].strip() if header[:7].lower() == "bearer " else request.cookies.get(SESSION_COOKIE)
    if not secret:
        return None
    return hashlib.sha256(secret.encode()).hexdigest()[:32]


def authenticate(request: Request, crm: Crm) -> Caller:
    """The caller of `request`, or Unauthenticated; cached on the request."""
    cached: Caller | None = getattr(request.state, "caller", None)
    if cached is not None:
        return cached
    header = request.headers.get("authorization", "")
    cookie = request.cookies.get(SESSION_COOKIE)
    credential = credential_id(request) or ""
    if header[:7].lower() == "bearer ":
        secret = header[7:].strip()
        if secret.startswith(f"{access.KEY_PREFIX}_"):
            principal, _prefix = access.authenticate_key(crm, secret)
        else:
            principal = access.authenticate_session(crm, secret).principal
    elif header:
        raise Unauthenticated("the Authorization header takes `Bearer <API key or session token>`")
    elif cookie:
        session = access.authenticate_session(crm, cookie)
        if request.method not in SAFE_METHODS and not access.csrf_matches(
            session, request.headers.get(CSRF_HEADER)
        ):
            raise NotAllowed(f"a write signed in by cookie needs the session's CSRF token in {CSRF_HEADER}")
        principal = session.principal
    else:
        raise Unauthenticated("sign in: send `Authorization: Bearer <API key or session token>`")
    caller = Caller(principal, credential)
    request.state.caller = caller
    return caller


def optional_principal(request: Request) -> Principal | None:
    """The signed-in principal, or None (pages show the sign-in page instead of refusing)."""
    try:
        return authenticate(request, request.app.state.crm).principal
    except (Unauthenticated, NotAllowed):
        return None


def _caller(
    request: Request,
    crm: CrmDep,
    _bearer_credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    _cookie_value: Annotated[str | None, Depends(_cookie)],
) -> Caller:
    # the two security dependencies are declared so that OpenAPI lists them; `authenticate` reads both
    return authenticate(request, crm)


CallerDep = Annotated[Caller, Depends(_caller)]


def _of_role(role: Role) -> Any:
    def check(caller: CallerDep) -> Principal:
        if caller.principal.role is not role:
            raise NotAllowed(
                f"this is for a {role.value}; you are signed in as {caller.principal.role.value}"
            )
        return caller.principal

    return check


PartnerDep = Annotated[Principal, Depends(_of_role(Role.PARTNER))]
CustomerDep = Annotated[Principal, Depends(_of_role(Role.CUSTOMER))]
AuditorDep = Annotated[Principal, Depends(_of_role(Role.AUDITOR))]


def needs(scope: str) -> dict[str, Any]:
    """Route options for a partner route that needs `scope`: the check, and its mention in OpenAPI."""

    def check(principal: PartnerDep) -> None:
        principal.require_scope(scope)

    return {"dependencies": [Depends(check)], "openapi_extra": {"x-scope": scope, "x-role": "partner"}}


def role(name: str) -> dict[str, Any]:
    """OpenAPI note of which principal a route is for (read by the authorization matrix test too)."""
    return {"openapi_extra": {"x-role": name}}


def single_query_values(request: Request) -> None:
    """Refuse a query parameter given twice: every parameter of this API takes one value, and silently
    keeping one of two would act on what the caller did not mean."""
    for name in request.query_params:
        if len(request.query_params.getlist(name)) > 1:
            raise InvalidInput(f"{name}: give it once, not {len(request.query_params.getlist(name))} times")
