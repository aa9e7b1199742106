"""Jobs delivered by procrastinate on PostgreSQL (``ESITIETO_WORKER__ENGINE=procrastinate``).

The outbox stays what it is (``integrations/jobs.py``): the job row is written in the same
transaction as the state change that needs it. What changes is how a worker learns of it.
The embedded worker polls the outbox; with procrastinate, the commit that wrote a job row
hands it over as a procrastinate job (the outbox id, on the queue of its lane) and
procrastinate's workers wake at once through PostgreSQL's LISTEN/NOTIFY, one worker per lane,
so a backlog of recordings never holds up a case. Running a delivered job is the same claim
(compare-and-set and a lease) as the embedded worker's, so a job delivered twice runs once.

What could be lost between the commit and the hand-over (the process killed there,
PostgreSQL restarting) is handed over again by the relay in the housekeeping lane: any outbox
job due for a while, or whose lease has run out, is delivered again. procrastinate was chosen
over Dramatiq on RabbitMQ after measuring both here (README, "Scaling out"): both keep up
with far more than a region needs, and procrastinate adds no service to run, secure and back
up — the jobs stay in the database that already holds the outbox.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import procrastinate
from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from esitieto.db import Database
from integrations.jobs import LANES
from models import Job, JobState, utcnow

log = logging.getLogger(__name__)

TASK = "esitieto.run_outbox_job"
PRIORITY = {"cases": 30, "fetch": 20, "transcribe": 10}
"""Within a queue, which job goes first (higher first)."""
RELAY_AFTER_S = 15.0
"""An outbox job due this long without being run is handed over again."""


def conninfo(database_url: str) -> str:
    """SQLAlchemy's ``postgresql+psycopg://…`` as psycopg's own connection string."""
    scheme, _, rest = database_url.partition("://")
    if not scheme.startswith("postgresql"):
        raise ValueError("procrastinate needs PostgreSQL (ESITIETO_DATABASE__URL)")
    return "postgresql://" + rest


class Delivery:
    """Hands committed outbox jobs over to procrastinate, and runs what it delivers."""

    def __init__(self, database_url: str, lane_of: dict[str, str]) -> None:
        self.lane_of = lane_of
        self._conninfo = conninfo(database_url)
        self._lock = threading.Lock()
        self._sender: procrastinate.App | None = None

    def _app(self, connector: Any) -> procrastinate.App:
        app = procrastinate.App(connector=connector)
        app.task(name=TASK, pass_context=False)(_run_delivered)
        return app

    def install_schema(self) -> None:
        """procrastinate's tables and functions, once per database (idempotent)."""
        sender = self.sender()
        with sender.connector.get_sync_connector().pool.connection() as conn:  # type: ignore[attr-defined]
            exists = conn.execute("SELECT to_regclass('procrastinate_jobs')").fetchone()
        if not (exists and exists[0]):
            sender.schema_manager.apply_schema()

    def sender(self) -> procrastinate.App:
        with self._lock:
            if self._sender is None:
                connector = procrastinate.SyncPsycopgConnector(
                    conninfo=self._conninfo, min_size=1, max_size=4
                )
                self._sender = self._app(connector)
                self._sender.open()
            return self._sender

    def hand_over(self, jobs: list[tuple[str, str, datetime]]) -> None:
        """Deliver (outbox id, kind, run after) jobs; a failure is logged, the relay retries."""
        try:
            app = self.sender()
            task = app.tasks[TASK]
            for job_id, kind, run_after in jobs:
                lane = self.lane_of.get(kind, "cases")
                options: dict[str, Any] = {"queue": lane, "priority": PRIORITY.get(lane, 0)}
                if run_after > utcnow():
                    options["schedule_at"] = run_after
                task.configure(**options).defer(job_id=job_id)
        except Exception as exc:  # PostgreSQL restarting etc.: the relay delivers later
            log.warning("job hand-over failed (%s); the relay will deliver", type(exc).__name__)

    def after_commit(self, session: Session) -> None:
        """SQLAlchemy ``after_commit``: hand over the jobs this transaction queued."""
        queued: list[Job] = session.info.pop("enqueued", [])
        jobs = [(j.id, j.kind, j.run_after) for j in queued if j.state == JobState.QUEUED]
        if jobs:
            self.hand_over(jobs)

    def relay(self, db: Database, *, after_s: float = RELAY_AFTER_S) -> int:
        """Deliver again what a lost hand-over or a dead worker left behind."""
        now = utcnow()
        stale = now - timedelta(seconds=after_s)
        with db.session() as session:
            rows = session.execute(
                select(Job.id, Job.kind, Job.run_after).where(
                    or_(
                        and_(Job.state == JobState.QUEUED, Job.run_after <= stale),
                        and_(Job.state == JobState.RUNNING, Job.locked_until < now),
                    )
                )
            ).all()
        if rows:
            log.info("relaying %d job(s) that were not delivered", len(rows))
            self.hand_over([(r.id, r.kind, now) for r in rows])
        return len(rows)

    def run_workers(
        self, lanes: list[str], runner: Callable[[str], None], stop: threading.Event
    ) -> None:
        """One procrastinate worker per lane (each its own job at a time) until ``stop``."""
        global _runner
        _runner = runner
        app = self._app(procrastinate.PsycopgConnector(conninfo=self._conninfo))

        async def main() -> None:
            async with app.open_async():
                workers = [
                    asyncio.create_task(
                        app.run_worker_async(
                            queues=[lane],
                            concurrency=1,
                            install_signal_handlers=False,
                            name=f"esitieto-{lane}",
                        )
                    )
                    for lane in lanes
                    if lane in LANES and lane != "housekeeping"
                ]
                while not stop.is_set() and not any(w.done() for w in workers):
                    await asyncio.sleep(0.2)
                for w in workers:
                    w.cancel()
                await asyncio.gather(*workers, return_exceptions=True)

        asyncio.run(main())

    def close(self) -> None:
        with self._lock:
            if self._sender is not None:
                self._sender.close()
                self._sender = None


_runner: Callable[[str], None] | None = None


def _run_delivered(job_id: str) -> None:
    """procrastinate's task: run the outbox job (the claim makes a second delivery a no-op)."""
    if _runner is None:  # pragma: no cover - run_workers sets it before any job
        raise RuntimeError("no outbox runner in this process")
    _runner(job_id)
