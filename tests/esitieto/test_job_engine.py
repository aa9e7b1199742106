"""procrastinate delivers the outbox's jobs on PostgreSQL: handed over at commit, run once
per lane's worker, handed over again by the relay when a hand-over is lost."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select, text

from esitieto.app import prepare, run_delivered_jobs
from esitieto.runtime import Runtime
from integrations.jobs import enqueue
from models import (
    Call,
    CallState,
    Job,
    JobKind,
    JobState,
    Recording,
    RecordingState,
    Transcript,
    utcnow,
)
from tests.conftest import _reset_pg, make_settings

pytestmark = pytest.mark.postgres


@pytest.fixture
def pg_runtime(postgres_url: str, tmp_path: Path) -> Iterator[Runtime]:
    _reset_pg(postgres_url)
    rt = Runtime(make_settings(tmp_path / "var", postgres_url, engine="procrastinate"))
    prepare(rt)
    yield rt
    rt.close()


def _ended_call(rt: Runtime, n: int) -> str:
    with rt.db.session() as s:
        call = Call(station_id="demo", call_sid=f"CA{n:032d}", to_number="+358900000000",
                    state=CallState.ENDED, ended_at=utcnow(), language="fi")  # fmt: skip
        s.add(call)
        s.flush()
        rec = Recording(call_id=call.id, recording_sid=f"RE{n:032d}", sequence=1,
                        prompt_key="reason", state=RecordingState.TRANSCRIBED)  # fmt: skip
        s.add(rec)
        s.flush()
        s.add(Transcript(recording_id=rec.id, call_id=call.id, engine="given", model="given",
                         language="fi", text="Yskää kolme päivää."))  # fmt: skip
        return call.id


def _delivered(rt: Runtime) -> list[tuple[str, str]]:
    with rt.db.engine.connect() as conn:
        rows = conn.execute(text("SELECT queue_name, args->>'job_id' FROM procrastinate_jobs"))
        return [(r[0], r[1]) for r in rows]


@pytest.fixture
def workers(pg_runtime: Runtime) -> Iterator[None]:
    stop = threading.Event()
    thread = threading.Thread(
        target=run_delivered_jobs, args=(pg_runtime, ["fetch", "transcribe", "cases"], stop)
    )
    thread.start()
    yield
    stop.set()
    thread.join(timeout=30)


def _wait_ready(rt: Runtime, call_id: str, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with rt.db.session() as s:
            call = s.get(Call, call_id)
            if call is not None and call.state == CallState.READY:
                return
        time.sleep(0.1)
    pytest.fail("the case did not reach the worklist")


def test_a_committed_job_is_handed_over_on_its_lanes_queue(pg_runtime: Runtime) -> None:
    call_id = _ended_call(pg_runtime, 1)
    with pg_runtime.db.session() as s:
        enqueue(s, JobKind.FINALIZE_CALL, call_id)
        assert _delivered(pg_runtime) == []  # nothing before the commit
    with pg_runtime.db.session() as s:
        job = s.scalar(select(Job).where(Job.key == call_id))
        assert job is not None
    assert _delivered(pg_runtime) == [("cases", job.id)]


def test_procrastinate_runs_the_case_to_the_worklist(pg_runtime: Runtime, workers: None) -> None:
    call_id = _ended_call(pg_runtime, 2)
    with pg_runtime.db.session() as s:
        enqueue(s, JobKind.FINALIZE_CALL, call_id)
    _wait_ready(pg_runtime, call_id)
    with pg_runtime.db.session() as s:
        job = s.scalar(select(Job).where(Job.key == call_id))
        assert job is not None and job.state == JobState.DONE and job.attempts == 1


def test_a_lost_hand_over_is_relayed_and_a_double_delivery_runs_once(
    pg_runtime: Runtime, workers: None
) -> None:
    call_id = _ended_call(pg_runtime, 3)
    delivery = pg_runtime.delivery
    assert delivery is not None
    with pg_runtime.db.session() as s:
        enqueue(s, JobKind.FINALIZE_CALL, call_id)
        s.info["enqueued"] = []  # the process "dies" between the commit and the hand-over
    assert _delivered(pg_runtime) == []
    assert delivery.relay(pg_runtime.db, after_s=0) == 1
    with pg_runtime.db.session() as s:
        job = s.scalar(select(Job).where(Job.key == call_id))
        assert job is not None
        job_id = job.id
    delivery.hand_over([(job_id, JobKind.FINALIZE_CALL, utcnow())])  # delivered twice
    _wait_ready(pg_runtime, call_id)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # both deliveries have been taken by a worker
        with pg_runtime.db.engine.connect() as conn:
            left = conn.execute(
                text("SELECT count(*) FROM procrastinate_jobs WHERE status = 'todo'")
            ).scalar_one()
        if left == 0:
            break
        time.sleep(0.1)
    with pg_runtime.db.session() as s:
        job = s.get(Job, job_id)
        assert job is not None and job.state == JobState.DONE and job.attempts == 1
