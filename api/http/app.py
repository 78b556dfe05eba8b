"""`create_app(settings)`: the HTTP API over a home's chain and store (`ledgercrm serve`), or over a
`Crm` the caller composed (the tests, the demo)."""

from __future__ import annotations

import importlib
import importlib.util
import logging
import threading
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
from fastapi import Depends, FastAPI, Request, Response
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

from api.context import Crm
from api.http import problems
from api.http.deps import SAFE_METHODS, credential_id, single_query_values
from api.http.jobs import JobRunner
from api.http.limits import BodyLimit, RequestLimiter
from api.http.problems import Problem
from api.settings import Settings

log = logging.getLogger("ledgercrm.http")
STATIC = Path(__file__).parent / "static"
MAX_BODY_BYTES = 1024 * 1024  # a JSON request of this API is a few kilobytes
MAX_UPLOAD_BYTES = 256 * 1024 * 1024  # an import's file (Online Retail II is 45 MB gzipped)
API_DESCRIPTION = """\
The ledgercrm API. Partners call it with an API key (`ledgercrm token issue`); customers and auditors
sign in with their own Ethereum key (`POST /v1/auth/challenge`, then `POST /v1/auth/session`). Every
error is an RFC 9457 problem (`application/problem+json`). Writes accept an `Idempotency-Key`.
"""


def create_app(settings: Settings, crm: Crm | None = None, *, home: Path | None = None) -> FastAPI:
    """The API over `crm`, or over the home `home` (opened at start-up, closed at shutdown)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        opened = None
        if crm is None:
            from api.usecases.home import open_crm

            assert home is not None, "create_app needs a Crm or a home"
            opened = open_crm(home)
        app.state.crm = crm or opened
        app.state.jobs = JobRunner(app.state.crm, write_lock)
        try:
            yield
        finally:
            app.state.jobs.shutdown()
            if opened is not None:
                opened.close()

    app = FastAPI(
        title="ledgercrm",
        version="1",
        description=API_DESCRIPTION,
        lifespan=lifespan,
        docs_url=None,  # served below from our own copy of Swagger UI: no CDN
        redoc_url=None,
        responses=problems.responses(400, 401, 403, 404, 405, 413, 422, 429),
        dependencies=[Depends(single_query_values)],
    )
    app.state.settings = settings
    problems.install(app)
    _openapi_problem_schema(app)
    limiter = RequestLimiter(settings.http_rate_limit)
    # One writer at a time in this server: a partner's chain writes take their nonces in order through
    # the one outbox, and SQLite has one writer. Reads go on beside it (WAL on SQLite, MVCC on PostgreSQL).
    write_lock = threading.Lock()
    app.state.write_lock = write_lock

    @app.middleware("http")
    async def around(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        request_id = request.headers.get("x-request-id") or uuid.uuid4().hex
        if not (len(request_id) <= 64 and request_id.isascii() and request_id.isprintable()):
            request_id = uuid.uuid4().hex
        request.state.request_id = request_id
        started = time.perf_counter()
        who = credential_id(request) or (request.client.host if request.client else "anonymous")
        wait = limiter.admit(who)
        if wait is not None:
            response: Response = problems.problem(
                429,
                "too-many-requests",
                "Too many requests",
                f"this credential sent more than {settings.http_rate_limit} requests; try again in"
                f" {int(wait)} s",
                request,
                headers={"Retry-After": str(int(wait))},
            )
        elif request.method in SAFE_METHODS and not request.url.path.endswith("/typed-data"):
            # (typed data is handed out by GET, and the consent receipt it commits to is kept: a write)
            response = await call_next(request)
        else:
            await anyio.to_thread.run_sync(write_lock.acquire)
            try:
                response = await call_next(request)
            finally:
                write_lock.release()
        if response.status_code == 413 and not response.headers.get("content-type", "").startswith(
            problems.MEDIA_TYPE
        ):  # the body limit answers before any handler: in plain text, which is not how this API talks
            response = problems.problem(
                413,
                "too-large",
                "Request too large",
                "the request body is larger than this route accepts",
                request,
            )
        response.headers["X-Request-Id"] = request_id
        # the route's template, never the path itself: a path or query can hold a search for a name
        route = getattr(request.scope.get("route"), "path", "-")
        log.info(
            "%s %s %s %d %.1f ms",
            request_id,
            request.method,
            route,
            response.status_code,
            (time.perf_counter() - started) * 1000,
        )
        return response

    from api.http.routes import ROUTERS

    for router in ROUTERS:
        app.include_router(router)
    if importlib.util.find_spec("api.http.pages") is not None:  # the pages, where they are installed
        app.include_router(importlib.import_module("api.http.pages").router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.add_middleware(BodyLimit, default=MAX_BODY_BYTES, larger={"/v1/imports": MAX_UPLOAD_BYTES})

    @app.get("/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url="/openapi.json",
            title="ledgercrm API",
            swagger_js_url="/static/vendor/swagger-ui/swagger-ui-bundle.js",
            swagger_css_url="/static/vendor/swagger-ui/swagger-ui.css",
            swagger_favicon_url="/static/vendor/swagger-ui/favicon-32x32.png",
        )

    return app


def _openapi_problem_schema(app: FastAPI) -> None:
    """Put the Problem schema in OpenAPI's components, where every route's error responses point."""
    build = app.openapi

    def openapi() -> dict[str, object]:
        if app.openapi_schema is None:
            schema = build()
            components = schema.setdefault("components", {})
            components.setdefault("schemas", {})["Problem"] = Problem.model_json_schema()
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
