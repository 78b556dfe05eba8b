"""Imports as jobs: the UCI Online Retail II file (uploaded, multipart) and seeded synthetic data."""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Request, Response, UploadFile
from pydantic import BaseModel, ConfigDict, Field

from api.http.deps import CrmDep, PartnerDep, needs
from api.http.idempotency import IdempotentRoute
from api.http.problems import responses
from api.http.routes.decisions import JobStarted
from api.progress import Progress
from api.usecases import consent, imports

MAX_UPLOAD_BYTES = 200 * 1024 * 1024  # Online Retail II is 45 MiB as CSV, 15 MiB gzipped
PROGRESS_EVERY = 0.5  # seconds between two progress writes of a job (each is a store write)
router = APIRouter(
    prefix="/v1/imports",
    tags=["imports"],
    route_class=IdempotentRoute,
    max_body_size=MAX_UPLOAD_BYTES,
)
ERRORS = responses(401, 403, 409, 413, 422)


class SyntheticIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    seed: int = Field(default=7, ge=0, le=2**32 - 1, description="the same seed gives the same data")
    customers: int = Field(default=1000, ge=1, le=100_000)
    interactions: int = Field(default=10_000, ge=1, le=1_000_000)
    purposes: list[str] = Field(
        default=["loyalty"], min_length=1, max_length=10, description="the consent the source holds"
    )


def _progress(report: Callable[[float, str], None]) -> Progress:
    """The import's progress(phase, done, total) as the job's (fraction, line), at most every
    PROGRESS_EVERY seconds (an import reports per chunk; each job update is a store write)."""
    last = [0.0]

    def progress(phase: str, done: int, total: int | None) -> None:
        now = time.monotonic()
        if now - last[0] < PROGRESS_EVERY:
            return
        last[0] = now
        report(done / total if total else 0.0, f"{phase} {done:,}" + (f" of {total:,}" if total else ""))

    return progress


def _started(request: Request, response: Response, who: Any, kind: str, work: Any) -> JobStarted:
    job = request.app.state.jobs.start(who, kind, work)
    response.headers["Location"] = f"/v1/jobs/{job}"
    return JobStarted(job=job, status="queued")


@router.post(
    "/online-retail",
    status_code=202,
    response_model=JobStarted,
    responses=ERRORS,
    **needs("imports:write"),
)
def online_retail(
    file: Annotated[UploadFile, File(description="online_retail_II.csv, gzipped or not")],
    who: PartnerDep,
    crm: CrmDep,
    request: Request,
    response: Response,
    purposes: Annotated[
        str, Form(max_length=200, description="comma-separated purposes the source holds consent for")
    ] = "loyalty",
) -> JobStarted:
    """Import the UCI Online Retail II data set from the uploaded file (200 MiB at most): a job (202,
    `Location: /v1/jobs/{id}`) with progress; its result is the import's report. Idempotent: importing
    the same file again adds only what is missing."""
    chosen = consent.check_purposes([p.strip() for p in purposes.split(",") if p.strip()])
    # the upload is kept in the home (readable by its owner only) until the job has read it
    handle, name = tempfile.mkstemp(prefix="upload-", suffix=".csv", dir=crm.settings.home)
    with os.fdopen(handle, "wb") as out:
        shutil.copyfileobj(file.file, out, length=1024 * 1024)
    path = Path(name)

    def work(report: Callable[[float, str], None]) -> dict[str, Any]:
        try:
            done = imports.import_online_retail(crm, who, path, progress=_progress(report), purposes=chosen)
        finally:
            path.unlink(missing_ok=True)
        return done.as_dict()

    try:
        return _started(request, response, who, "import-online-retail", work)
    except BaseException:
        path.unlink(missing_ok=True)
        raise


@router.post(
    "/synthetic", status_code=202, response_model=JobStarted, responses=ERRORS, **needs("imports:write")
)
def synthetic(
    body: SyntheticIn, who: PartnerDep, crm: CrmDep, request: Request, response: Response
) -> JobStarted:
    """Import seeded synthetic customers (generated names and e-mails), purchases, returns and support
    tickets: a job (202, `Location: /v1/jobs/{id}`) whose result is the import's report."""
    chosen = consent.check_purposes(body.purposes)

    def work(report: Callable[[float, str], None]) -> dict[str, Any]:
        done = imports.import_synthetic(
            crm,
            who,
            seed=body.seed,
            customers=body.customers,
            interactions=body.interactions,
            progress=_progress(report),
            purposes=chosen,
        )
        return done.as_dict()

    return _started(request, response, who, "import-synthetic", work)
