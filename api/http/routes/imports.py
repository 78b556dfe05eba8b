"""Imports as jobs: the UCI Online Retail II file, uploaded (multipart).

Synthetic data has no route: generated requests (a client's mistake, a fuzzer) could start imports of
any size, and `ledgercrm import synthetic` serves the demo and the tests."""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Request, Response, UploadFile

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
