"""The worker that runs the durable jobs of the outbox (``integrations/jobs.py``).

The job row is written in the same transaction as the state change that needs it (an
outbox), so a committed webhook always has its follow-up work recorded. A worker claims a job
with a compare-and-set update and a lease: if the worker dies, the lease runs out and another
worker (or the same one after a restart) takes the job again. Handlers are idempotent, so a
job that runs twice changes nothing the second time. This works the same on SQLite and
PostgreSQL; a Redis-backed queue can later replace the polling, not the rows.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import and_, or_, select, update

from esitieto.db import Database
from esitieto.settings import WorkerSettings
from integrations.jobs import GiveUp, JobSpec, RetryLater
from models import Job, JobState, utcnow

log = logging.getLogger(__name__)


@dataclass
class ClaimedJob:
    id: str
    kind: str
    key: str
    attempts: int
    max_attempts: int


@dataclass(frozen=True)
class Periodic:
    """Housekeeping the worker runs at start and then every ``every_s`` seconds."""

    every_s: float
    run: Callable[[], object]


def make_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


@dataclass
class Worker:
    """Claims due jobs and runs them; ``run_forever`` until ``stop`` is set."""

    db: Database
    settings: WorkerSettings
    specs: dict[str, JobSpec]
    periodic: list[Periodic] = field(default_factory=list)
    name: str = "all"
    """The lanes it runs, for its thread's name and the log."""
    worker_id: str = field(default_factory=make_worker_id)
    stop: threading.Event = field(default_factory=threading.Event)
    wake: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None

    @property
    def alive(self) -> bool:
        return self.thread is not None and self.thread.is_alive()

    def _due(self, now: datetime) -> object:
        return or_(
            and_(Job.state == JobState.QUEUED, Job.run_after <= now),
            and_(Job.state == JobState.RUNNING, Job.locked_until < now),
        )

    def claim(self, job_id: str | None = None) -> ClaimedJob | None:
        """Claim a due job of this worker's kinds (``job_id``: that one, if it is due)."""
        if not self.specs:
            return None  # a housekeeping-only worker
        now = utcnow()
        if job_id is not None:
            candidates: list[str] = [job_id]
        else:
            with self.db.session() as session:
                candidates = list(
                    session.scalars(
                        select(Job.id)
                        .where(self._due(now), Job.kind.in_(list(self.specs)))  # type: ignore[arg-type]
                        .order_by(Job.run_after)
                        .limit(8)
                    )
                )
        for candidate in candidates:
            with self.db.session() as session:
                result = session.execute(
                    update(Job)
                    .where(
                        Job.id == candidate,
                        Job.kind.in_(list(self.specs)),
                        self._due(now),  # type: ignore[arg-type]
                    )
                    .values(
                        state=JobState.RUNNING,
                        locked_by=self.worker_id,
                        locked_until=now + timedelta(seconds=self.settings.lease_s),
                        attempts=Job.attempts + 1,
                        rerun=False,
                        updated_at=now,
                    )
                    .execution_options(synchronize_session=False)
                )
                if result.rowcount != 1:  # type: ignore[attr-defined]
                    continue  # another worker won it
                job = session.get(Job, candidate)
                assert job is not None
                return ClaimedJob(job.id, job.kind, job.key, job.attempts, job.max_attempts)
        return None

    def _finish(self, job: ClaimedJob, error: str | None, *, retry: bool) -> bool:
        """Record the outcome; True when the job has failed for good."""
        now = utcnow()
        with self.db.session() as session:
            row = session.get(Job, job.id)
            if row is None or row.locked_by != self.worker_id:
                return False  # our lease ran out and another worker has it
            row.locked_by = None
            row.locked_until = None
            row.updated_at = now
            if error is None:
                if row.rerun:
                    row.state, row.attempts, row.rerun, row.run_after = (
                        JobState.QUEUED,
                        0,
                        False,
                        now,
                    )
                else:
                    row.state, row.finished_at, row.last_error = JobState.DONE, now, None
                return False
            row.last_error = error[:2000]
            limit = self.specs[job.kind].max_attempts or row.max_attempts
            if retry and row.attempts < limit:
                backoff = self.settings.retry_base_s * (2 ** (row.attempts - 1))
                row.state = JobState.QUEUED
                row.run_after = now + timedelta(seconds=min(backoff, 300.0))
                return False
            row.state, row.finished_at = JobState.FAILED, now
            return True

    def run_one(self, job_id: str | None = None) -> bool:
        """Claim and run one due job (``job_id``: that one); False when there was none."""
        job = self.claim(job_id)
        if job is None:
            return False
        spec = self.specs[job.kind]
        started = time.perf_counter()
        try:
            spec.run(job.key)
        except RetryLater as exc:
            failed = self._record(job, str(exc), retry=True)
        except GiveUp as exc:
            failed = self._record(job, str(exc), retry=False)
        except Exception as exc:  # a bug or an outage: retried, then given up
            log.exception("job %s %s failed (attempt %d)", job.kind, job.id, job.attempts)
            failed = self._record(job, f"{type(exc).__name__}: {exc}", retry=True)
        else:
            failed = self._record(job, None, retry=False)
            log.info("job %s %s done in %.2fs", job.kind, job.id, time.perf_counter() - started)
            return True
        if failed and spec.on_give_up is not None:
            with_error = self._last_error(job.id)
            spec.on_give_up(job.key, with_error)
        return True

    def _record(self, job: ClaimedJob, error: str | None, *, retry: bool) -> bool:
        """``_finish``, tried again while the database is away (restarting): the outcome of
        a job that ran is not left for its lease (minutes) to run out. Gives up only when the
        lease has, as another worker may then have the job."""
        deadline = time.monotonic() + self.settings.lease_s
        wait = 0.2
        while True:
            try:
                return self._finish(job, error, retry=retry)
            except Exception as exc:
                if time.monotonic() + wait > deadline or self.stop.is_set():
                    raise
                log.warning(
                    "job %s %s: outcome not recorded yet (%s); trying again",
                    job.kind,
                    job.id,
                    type(exc).__name__,
                )
                time.sleep(wait)
                wait = min(wait * 2, 5.0)

    def _last_error(self, job_id: str) -> str:
        with self.db.session() as session:
            row = session.get(Job, job_id)
            return (row.last_error or "") if row else ""

    def release_dead_local_leases(self) -> int:
        """Requeue jobs held by dead processes on this host, so a restart resumes at once."""
        host = socket.gethostname()
        released = 0
        with self.db.session() as session:
            rows = session.scalars(
                select(Job).where(Job.state == JobState.RUNNING, Job.locked_by.like(f"{host}:%"))
            ).all()
            for row in rows:
                try:
                    pid = int((row.locked_by or "").split(":")[1])
                except (IndexError, ValueError):
                    continue
                if pid == os.getpid() or _pid_alive(pid):
                    continue
                row.state, row.locked_by, row.locked_until = JobState.QUEUED, None, None
                row.run_after = utcnow()
                released += 1
        return released

    def run_periodic(self, due: list[float]) -> None:
        """Run each housekeeping task whose time has come (``due``: when each is next due)."""
        for i, task in enumerate(self.periodic):
            if time.monotonic() < due[i]:
                continue
            try:
                task.run()
            except Exception:
                log.exception("periodic task failed")
            due[i] = time.monotonic() + task.every_s

    def run_forever(self) -> None:
        self.release_dead_local_leases()
        due = [0.0] * len(self.periodic)
        while not self.stop.is_set():
            self.run_periodic(due)
            try:
                worked = self.run_one()
            except Exception:  # database unavailable etc.: wait and try again
                log.exception("worker loop error")
                worked = False
            if not worked:
                self.wake.wait(self.settings.poll_interval_s)
                self.wake.clear()

    def start_thread(self) -> threading.Thread:
        self.thread = threading.Thread(
            target=self.run_forever, name=f"esitieto-worker-{self.name}", daemon=True
        )
        self.thread.start()
        return self.thread


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
