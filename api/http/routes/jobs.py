"""Long work's progress and result: `GET /v1/jobs/{id}`, for whoever started the job."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from api.http.deps import CallerDep, role
from api.http.problems import responses

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])


class JobOut(BaseModel):
    id: str
    kind: str
    status: Literal["queued", "running", "succeeded", "failed"]
    progress: float = Field(ge=0, le=1)
    message: str = Field(description="what the job is doing now")
    result: Any = Field(default=None, description="once succeeded")
    error: str | None = Field(default=None, description="once failed: why, in words")
    created_at: datetime
    updated_at: datetime


@router.get("/{job_id}", response_model=JobOut, responses=responses(401, 404), **role("any"))
def job(job_id: str, caller: CallerDep, request: Request) -> JobOut:
    """A job you started (anyone else's: 404, as for one that does not exist)."""
    view = request.app.state.jobs.view(caller.principal, job_id)
    return JobOut(**view.__dict__)
