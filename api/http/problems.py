"""Errors as RFC 9457 problem details (`application/problem+json`), in the same words as the CLI.

Every refusal of a use case, every named contract error and every malformed request becomes a 4xx with
`type`, `title`, `status` and `detail` (plus the contract error's name and fields where one caused it);
anything unforeseen is a 500 that names the request id and nothing else: never a traceback or a repr.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from api import errors
from api.messages import describe
from ledger.errors import BackendError, ContractRevert, LedgerError, NonceTaken
from offchain.errors import VaultError

log = logging.getLogger("ledgercrm.http")
MEDIA_TYPE = "application/problem+json"
TYPE_BASE = "https://ledgercrm.dev/problems/"  # a namespace for `type`, not fetched by anyone


class Problem(BaseModel):
    """An RFC 9457 problem detail."""

    type: str = Field(description="a URI naming the kind of problem")
    title: str = Field(description="the kind of problem, in words")
    status: int = Field(description="the HTTP status code")
    detail: str = Field(description="this occurrence, in the words the CLI uses")
    instance: str | None = Field(default=None, description="the request's path")
    error: str | None = Field(default=None, description="the contract's custom error, if the chain refused")
    fields: dict[str, Any] | None = Field(default=None, description="that error's arguments")
    errors: list[dict[str, Any]] | None = Field(default=None, description="each invalid part of the request")


# status, slug, title for each use-case error; the most specific class first
_KINDS: list[tuple[type[BaseException], int, str, str]] = [
    (errors.Unauthenticated, 401, "unauthenticated", "Not signed in"),
    (errors.NotAllowed, 403, "forbidden", "Not allowed"),
    (errors.NotFound, 404, "not-found", "Not found"),
    (errors.UnknownPartner, 404, "not-found", "Not found"),
    (errors.Gone, 410, "gone", "No longer valid"),
    (errors.CustomerIsErased, 409, "erased", "The customer was erased"),
    (errors.ConsentRequired, 409, "consent-required", "Consent required"),
    (errors.Busy, 409, "busy", "Busy"),
    (errors.Conflict, 409, "conflict", "Conflict"),
    (errors.LogOutOfStep, 409, "log-out-of-step", "The log is out of step with the chain"),
    (errors.NotAConsortiumPartner, 409, "not-a-partner", "Not a partner of the consortium"),
    (errors.SourceStopped, 422, "source-stopped", "The import's source stopped"),
    (errors.CheckStopped, 503, "check-stopped", "A check stopped before it finished"),
    (errors.InvalidInput, 422, "invalid-input", "Invalid input"),
    (errors.CrmError, 422, "invalid-input", "Invalid input"),
    (VaultError, 409, "key-unavailable", "The customer's key is not available"),
]
_HTTP_TITLES = {
    400: ("bad-request", "Bad request"),
    401: ("unauthenticated", "Not signed in"),
    403: ("forbidden", "Not allowed"),
    404: ("not-found", "Not found"),
    405: ("method-not-allowed", "Method not allowed"),
    406: ("not-acceptable", "Not acceptable"),
    409: ("conflict", "Conflict"),
    410: ("gone", "No longer valid"),
    413: ("too-large", "Request too large"),
    415: ("unsupported-media-type", "Unsupported media type"),
    422: ("invalid-input", "Invalid input"),
    429: ("too-many-requests", "Too many requests"),
}


def problem(
    status: int,
    slug: str,
    title: str,
    detail: str,
    request: Request | None = None,
    *,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    body = Problem(
        type=TYPE_BASE + slug,
        title=title,
        status=status,
        detail=detail,
        instance=None if request is None else request.url.path,
        **extra,
    )
    return JSONResponse(
        body.model_dump(exclude_none=True), status_code=status, headers=headers, media_type=MEDIA_TYPE
    )


def from_exception(exc: BaseException, request: Request) -> JSONResponse:
    """The problem response for a use-case, ledger or vault error."""
    if isinstance(exc, ContractRevert):
        fields = {k.rstrip("_"): _jsonable(v) for k, v in exc.fields.items()}
        return problem(
            409,
            "chain-refused",
            "Refused by the chain",
            describe(exc),
            request,
            error=exc.error_name or "revert",
            fields=fields or None,
        )
    if isinstance(exc, NonceTaken):  # the chain answers: another sender was first; again will do
        return problem(409, "busy", "Busy", describe(exc), request)
    if isinstance(exc, BackendError):
        return problem(503, "chain-unavailable", "The chain is not answering", describe(exc), request)
    if isinstance(exc, LedgerError):
        return problem(409, "chain-refused", "Refused by the chain", describe(exc), request)
    for kind, status, slug, title in _KINDS:
        if isinstance(exc, kind):
            headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
            return problem(status, slug, title, describe(exc), request, headers=headers)
    raise exc


def _jsonable(value: Any) -> Any:
    if isinstance(value, bytes):
        return "0x" + value.hex()
    if isinstance(value, int) and abs(value) > 2**53:
        return str(value)  # JSON numbers past 2**53 lose digits in JavaScript
    return value if isinstance(value, str | int | float | bool) or value is None else str(value)


def _validation_detail(error: dict[str, Any]) -> str:
    where = ".".join(str(part) for part in error.get("loc", ()) if part != "body") or "the request"
    return f"{where}: {error.get('msg', 'invalid')}"


def install(app: FastAPI) -> None:
    """Register the handlers that turn every error into a problem response."""

    async def on_crm_error(request: Request, exc: Exception) -> JSONResponse:
        return from_exception(exc, request)

    async def on_validation(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        found = [
            {"loc": [str(p) for p in e.get("loc", ())], "msg": str(e.get("msg", "")), "type": e.get("type")}
            for e in exc.errors()
        ]
        malformed = any(e["type"] == "json_invalid" for e in found)
        detail = (
            "the body is not valid JSON"
            if malformed
            else "; ".join(_validation_detail(e) for e in found[:5]) or "the request is not valid"
        )
        status = 400 if malformed else 422
        slug, title = _HTTP_TITLES[status]
        return problem(status, slug, title, detail, request, errors=found)

    async def on_http(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        slug, title = _HTTP_TITLES.get(exc.status_code, ("error", "Error"))
        detail = exc.detail if isinstance(exc.detail, str) else title
        if exc.status_code == 404 and detail == "Not Found":
            detail = f"there is nothing at {request.url.path}"
        elif exc.status_code == 405:
            detail = f"{request.method} is not a method of {request.url.path}"
        elif exc.status_code == 413:
            detail = "the request body is larger than this route accepts"
        return problem(
            exc.status_code, slug, title, detail, request, headers=dict(exc.headers) if exc.headers else None
        )

    async def on_unexpected(request: Request, exc: Exception) -> JSONResponse:
        request_id = getattr(request.state, "request_id", "-")
        # the exception's type only: its message may hold personal data (a decrypted field, a name)
        log.error("request %s failed: %s", request_id, type(exc).__name__)
        return problem(
            500,
            "internal",
            "Internal error",
            f"the server failed on this request (request id {request_id}); nothing was changed by the part"
            " that failed",
            request,
        )

    for kind in (errors.CrmError, LedgerError, VaultError):
        app.add_exception_handler(kind, on_crm_error)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_exception_handler(Exception, on_unexpected)


# Declared on every route, so OpenAPI says what each may answer (schemathesis checks them)
PROBLEM_CONTENT = {MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}}


def responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    return {
        status: {"description": _HTTP_TITLES.get(status, ("", "Error"))[1], "content": PROBLEM_CONTENT}
        for status in statuses
    }
