"""The job outbox and the contract of a job handler.

A job row is written in the same transaction as the state change that needs it (an outbox),
so a committed webhook always has its follow-up work recorded; a worker (``esitieto worker``,
or the thread inside ``esitieto serve``) claims and runs it. Handlers are idempotent and own
their transactions: they raise :class:`RetryLater` when the work cannot be done yet and
:class:`GiveUp` when retrying cannot help.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from models import Job, JobState, utcnow


class RetryLater(Exception):
    """The job cannot finish yet (e.g. the recording is not ready); retry with backoff."""


class GiveUp(Exception):
    """Retrying cannot help; the job fails at once and its give-up hook runs."""


@dataclass(frozen=True)
class JobSpec:
    run: Callable[[str], None]
    """Runs the job for its key; owns its transactions; must be idempotent."""
    on_give_up: Callable[[str, str], None] | None = None
    """Called with (key, error) when the job fails for good, so nothing is left hanging."""
    max_attempts: int | None = None
    lane: str = "cases"
    """The worker lane that runs it (see ``LANES``): one slow kind never holds up another."""


LANES = ("fetch", "transcribe", "cases", "housekeeping")
"""Worker lanes, each with its own thread (or process): recording downloads wait on the
network, transcription on the CPU, cases (summary, pretriage, SMS) are quick; housekeeping
runs the periodic sweeps and the reconciliation with Twilio."""


def enqueue(session: Session, kind: str, key: str, *, delay_s: float = 0.0) -> None:
    """Make sure a run of (kind, key) happens after this transaction commits.

    Queued: nothing to do. Running: it runs once more when it finishes (the change that
    enqueued may have come too late for the current run). Done or failed: queued again.
    The job is also noted in ``session.info["enqueued"]``, so a job engine can be told of it
    once the transaction has committed (``esitieto/job_engine.py``).
    """
    run_after = utcnow() + timedelta(seconds=delay_s)
    job = session.scalar(select(Job).where(Job.kind == kind, Job.key == key))
    if job is None:
        try:
            with session.begin_nested():
                job = Job(kind=kind, key=key, run_after=run_after)
                session.add(job)
            session.info.setdefault("enqueued", []).append(job)
            return
        except IntegrityError:
            job = session.scalar(select(Job).where(Job.kind == kind, Job.key == key))
            if job is None:  # pragma: no cover - the unique row cannot vanish
                raise
    if job.state == JobState.RUNNING:
        job.rerun = True
    elif job.state in (JobState.DONE, JobState.FAILED):
        job.state = JobState.QUEUED
        job.attempts = 0
        job.run_after = run_after
        job.last_error = None
        job.finished_at = None
        session.info.setdefault("enqueued", []).append(job)
