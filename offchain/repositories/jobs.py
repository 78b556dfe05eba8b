"""Jobs: long work started over HTTP, its progress and its result."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import update
from sqlmodel import Session, col, select

from offchain.models import Job


def add(db: Session, job: Job) -> Job:
    db.add(job)
    db.flush()
    return job


def get(db: Session, job_id: str) -> Job | None:
    return db.get(Job, job_id)


def change(db: Session, job_id: str, **values: Any) -> None:
    table = Job.__table__  # type: ignore[attr-defined]
    db.connection().execute(update(table).where(table.c.id == job_id).values(**values))


def fail_orphans(db: Session, runner: str, when: datetime) -> int:
    """Mark failed every unfinished job of a runner other than `runner` (a server that stopped): it is
    not running and never will. The number marked."""
    table = Job.__table__  # type: ignore[attr-defined]
    done = db.connection().execute(
        update(table)
        .where(table.c.runner != runner, table.c.status.in_(("queued", "running")))
        .values(
            status="failed", error="the server stopped while this job ran; start it again", updated_at=when
        )
    )
    return int(done.rowcount)


def latest(db: Session, owner: str, kind: str) -> Job | None:
    """The last job of `kind` that `owner` started."""
    query = select(Job).where(Job.owner == owner, Job.kind == kind).order_by(col(Job.created_at).desc())
    return db.exec(query.limit(1)).first()
