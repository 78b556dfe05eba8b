"""Sign-in: an EIP-4361 challenge signed with the customer's or auditor's own key opens a session (a
bearer token, and an HttpOnly SameSite=Strict cookie with a CSRF token for pages); a partner's pages
sign in with its API key."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from api.errors import Unauthenticated
from api.http.deps import CSRF_COOKIE, SESSION_COOKIE, CallerDep, CrmDep, role
from api.http.problems import responses
from api.usecases import access

router = APIRouter(prefix="/v1/auth", tags=["auth"])


class ChallengeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    address: str = Field(max_length=42, description="the Ethereum address that will sign in")


class Challenge(BaseModel):
    message: str = Field(description="the EIP-4361 message to sign (personal_sign), as it is")


class SessionRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    message: str = Field(max_length=2000)
    signature: str = Field(max_length=200, description="0x + the 65-byte signature in hex")


class PartnerSessionRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    api_key: str = Field(max_length=200)


class SessionOut(BaseModel):
    token: str = Field(description="a bearer token for this session (the cookie holds the same)")
    role: Literal["customer", "auditor", "partner"]
    member: str | None
    partner: str | None = None
    expires_at: datetime
    csrf_token: str = Field(description="send as X-CSRF-Token with writes that the cookie signs in")


@router.post("/challenge", response_model=Challenge, responses=responses(422), **role("public"))
def challenge(body: ChallengeRequest, request: Request, crm: CrmDep) -> Challenge:
    """A message for `address` to sign: good for one sign-in, for five minutes."""
    domain = request.headers.get("host") or "ledgercrm"
    uri = f"{request.url.scheme}://{domain}"
    return Challenge(message=access.sign_in_challenge(crm, body.address, domain=domain, uri=uri))


def _opened(opened: access.OpenedSession, request: Request, response: Response) -> SessionOut:
    secure = request.url.scheme == "https"
    max_age = max(
        0, int((opened.expires_at - opened.expires_at.now(opened.expires_at.tzinfo)).total_seconds())
    )
    response.set_cookie(
        SESSION_COOKIE, opened.token, max_age=max_age, httponly=True, samesite="strict", secure=secure
    )
    # readable by the page's script, which sends it back as X-CSRF-Token; useless to another site
    response.set_cookie(CSRF_COOKIE, opened.csrf_token, max_age=max_age, samesite="strict", secure=secure)
    response.headers["Cache-Control"] = "no-store"
    return SessionOut(
        token=opened.token,
        role=opened.role.value,  # type: ignore[arg-type]
        member=None if opened.member is None else "0x" + opened.member.hex(),
        partner=opened.partner,
        expires_at=opened.expires_at,
        csrf_token=opened.csrf_token,
    )


@router.post("/session", response_model=SessionOut, responses=responses(401, 403, 422), **role("public"))
def session(body: SessionRequest, request: Request, response: Response, crm: CrmDep) -> SessionOut:
    """Open a session with a signed challenge. The role comes from the chain: an auditor of the
    Consortium, or the current key of a member enrolled here."""
    return _opened(access.sign_in(crm, body.message, body.signature), request, response)


@router.post("/partner-session", response_model=SessionOut, responses=responses(401, 422), **role("public"))
def partner_session(
    body: PartnerSessionRequest, request: Request, response: Response, crm: CrmDep
) -> SessionOut:
    """A cookie session for a partner's pages, opened with one of its API keys."""
    return _opened(access.partner_session(crm, body.api_key), request, response)


@router.post("/logout", status_code=204, responses=responses(401), **role("session"))
def logout(request: Request, crm: CrmDep) -> Response:
    """End the session this request signs in with (bearer token or cookie)."""
    header = request.headers.get("authorization", "")
    token = header[7:].strip() if header[:7].lower() == "bearer " else request.cookies.get(SESSION_COOKIE)
    if not token or token.startswith(f"{access.KEY_PREFIX}_"):
        raise Unauthenticated(
            "sign out ends a session: send its token or cookie (an API key is revoked instead)"
        )
    access.sign_out(crm, token)
    response = Response(status_code=204)
    response.delete_cookie(SESSION_COOKIE)
    response.delete_cookie(CSRF_COOKIE)
    return response


class WhoAmI(BaseModel):
    role: Literal["customer", "auditor", "partner"]
    partner: str | None
    member: str | None
    address: str | None
    scopes: list[str] | None = Field(description="a partner key's scopes; null: all")


@router.get("/whoami", response_model=WhoAmI, responses=responses(401), **role("any"))
def whoami(caller: CallerDep) -> WhoAmI:
    """Who this request signs in as."""
    who = caller.principal
    return WhoAmI(
        role=who.role.value,  # type: ignore[arg-type]
        partner=who.partner,
        member=None if who.member is None else "0x" + who.member.hex(),
        address=who.address or who.signer,
        scopes=None if who.scopes is None else sorted(who.scopes),
    )
