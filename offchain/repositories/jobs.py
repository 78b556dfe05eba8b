"""Jobs: long work started over HTTP, its progress and its result."""

from __future__ import annotations

from collections.abc import Sequence
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


def unfinished_runners(db: Session, other_than: str) -> list[str]:
    """The runners, other than `other_than`, that have a job queued or running."""
    query = select(Job.runner).where(Job.runner != other_than, col(Job.status).in_(("queued", "running")))
    return sorted(set(db.exec(query.distinct()).all()))


def fail_orphans(db: Session, stopped: Sequence[str], when: datetime) -> int:
    """Mark failed every unfinished job of the runners `stopped` (servers that stopped): it is not
    running and never will. The number marked."""
    if not stopped:
        return 0
    table = Job.__table__  # type: ignore[attr-defined]
    done = db.connection().execute(
        update(table)
        .where(table.c.runner.in_(list(stopped)), table.c.status.in_(("queued", "running")))
        .values(
            status="failed", error="the server stopped while this job ran; start it again", updated_at=when
        )
    )
    return int(done.rowcount)


def latest(db: Session, owner: str, kind: str) -> Job | None:
    """The last job of `kind` that `owner` started."""
    query = select(Job).where(Job.owner == owner, Job.kind == kind).order_by(col(Job.created_at).desc())
    return db.exec(query.limit(1)).first()
