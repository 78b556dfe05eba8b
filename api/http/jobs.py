"""Long work started over HTTP runs as a job: `202 Accepted` with `Location: /v1/jobs/{id}`, then the job
reports its progress and, at the end, its result or its problem. One worker thread runs the jobs of a
server in turn (they all write to the chain through one outbox). A server that starts marks the jobs of
a server that stopped as failed: a job is never reported running when nothing runs it. Another server
running over the same store holds its runner's lease (`offchain.repositories.runners`): its jobs run on."""

from __future__ import annotations

import json
import logging
import threading
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from api.context import Crm
from api.errors import CrmError, NotFound
from api.messages import describe
from api.principal import Principal
from ledger.errors import LedgerError
from offchain.errors import VaultError
from offchain.models import Job
from offchain.repositories import jobs, runners

log = logging.getLogger("ledgercrm.http")
# What a job does: given a way to report progress (0..1 and a line), return a JSON-able result
Work = Callable[[Callable[[float, str], None]], Any]


@dataclass(frozen=True)
class JobView:
    id: str
    kind: str
    status: str
    progress: float
    message: str
    result: Any
    error: str | None
    created_at: datetime
    updated_at: datetime


class JobRunner:
    def __init__(self, crm: Crm, write_lock: threading.Lock | None = None) -> None:
        self.crm = crm
        # held while a job that writes runs, as a write request holds it (see create_app)
        self.write_lock = write_lock or threading.Lock()
        self._local = threading.local()
        self.runner = str(uuid.uuid4())
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ledgercrm-job")
        # held while this runner lives: another server over the same store leaves its jobs alone
        self._lease = runners.hold(crm.engine, self.runner)
        with crm.unit_of_work(writes=True) as db:
            others = jobs.unfinished_runners(db, self.runner)
            stopped = [runner for runner in others if not runners.alive(crm.engine, runner)]
            orphans = jobs.fail_orphans(db, stopped, datetime.now(UTC))
        if orphans:
            log.warning("%d job(s) of a stopped server marked failed", orphans)

    def start(self, owner: Principal, kind: str, work: Work, *, writes: bool = True) -> str:
        """Queue `work`; its id. A job that `writes` holds the server's write lock while it runs."""
        job_id = str(uuid.uuid4())
        now = datetime.now(UTC)
        with self.crm.unit_of_work() as db:
            jobs.add(
                db,
                Job(
                    id=job_id,
                    owner=str(owner),
                    kind=kind,
                    status="queued",
                    runner=self.runner,
                    created_at=now,
                    updated_at=now,
                ),
            )
        self._pool.submit(self._run, job_id, work, writes)
        return job_id

    def _set(self, job_id: str, **values: Any) -> None:
        # a job's own record is a write too: under the write lock, which a writing job holds already
        if getattr(self._local, "holding", False):
            self._write(job_id, values)
        else:
            with self.write_lock:
                self._write(job_id, values)

    def _write(self, job_id: str, values: dict[str, Any]) -> None:
        with self.crm.unit_of_work(writes=True) as db:
            jobs.change(db, job_id, updated_at=datetime.now(UTC), **values)

    def _run(self, job_id: str, work: Work, writes: bool) -> None:
        if writes:
            with self.write_lock:
                self._local.holding = True
                try:
                    self._execute(job_id, work)
                finally:
                    self._local.holding = False
        else:
            self._execute(job_id, work)

    def _execute(self, job_id: str, work: Work) -> None:
        self._set(job_id, status="running")

        def progress(fraction: float, message: str) -> None:
            self._set(job_id, progress=max(0.0, min(1.0, fraction)), message=message)

        try:
            result = work(progress)
        except (CrmError, LedgerError, VaultError) as exc:
            self._set(job_id, status="failed", error=describe(exc))
        except Exception as exc:  # a job must end in a state, whatever happened; details stay out of logs
            log.error("job %s failed: %s", job_id, type(exc).__name__)
            self._set(
                job_id, status="failed", error="the job failed on the server; nothing after the failure ran"
            )
        else:
            self._set(job_id, status="succeeded", progress=1.0, result_json=json.dumps(result))

    def view(self, who: Principal, job_id: str) -> JobView:
        """A job `who` started; NotFound for anyone else's, as for one that does not exist."""
        with self.crm.unit_of_work() as db:
            job = jobs.get(db, job_id)
        if job is None or job.owner != str(who):
            raise NotFound(f"no job {job_id}")
        return JobView(
            job.id,
            job.kind,
            job.status,
            job.progress,
            job.message,
            None if job.result_json is None else json.loads(job.result_json),
            job.error,
            job.created_at,
            job.updated_at,
        )

    def latest(self, who: Principal, kind: str) -> JobView | None:
        """The last job of `kind` that `who` started, or None."""
        with self.crm.unit_of_work() as db:
            job = jobs.latest(db, str(who), kind)
        return None if job is None else self.view(who, job.id)

    def wait_idle(self, timeout: float = 60.0) -> None:
        """Block until every job submitted so far has ended (tests, shutdown)."""
        done = threading.Event()
        self._pool.submit(done.set)
        done.wait(timeout)

    def shutdown(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._lease.release()
