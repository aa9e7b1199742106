"""The durable job queue: once-only enqueue, exclusive claims, retries, leases, restarts."""

from __future__ import annotations

import multiprocessing
import os
import socket
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.exc import OperationalError

from esitieto.app import start_lanes, stop_lanes
from esitieto.runtime import Runtime
from esitieto.worker import Worker
from integrations.jobs import LANES, GiveUp, JobSpec, RetryLater, enqueue
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
from tests.conftest import _reset_pg
from tests.integrations.test_recordings import SLOW_S, host  # noqa: F401 - the fixture


def _job(runtime: Runtime, kind: str = "k", key: str = "1") -> Job:
    with runtime.db.session() as s:
        job = s.scalar(select(Job).where(Job.kind == kind, Job.key == key))
        assert job is not None
        return job


def _worker(runtime: Runtime, run, on_give_up=None, **kw) -> Worker:
    return Worker(runtime.db, runtime.settings.worker, {"k": JobSpec(run, on_give_up, **kw)})


def test_enqueue_is_idempotent(runtime: Runtime) -> None:
    with runtime.db.session() as s:
        enqueue(s, "k", "1")
        enqueue(s, "k", "1")
    with runtime.db.session() as s:
        enqueue(s, "k", "1")
        assert len(s.scalars(select(Job)).all()) == 1


def test_a_job_runs_once_and_is_done(runtime: Runtime) -> None:
    ran: list[str] = []
    with runtime.db.session() as s:
        enqueue(s, "k", "1")
    worker = _worker(runtime, ran.append)
    assert worker.run_one() is True
    assert worker.run_one() is False
    assert ran == ["1"]
    assert _job(runtime).state == JobState.DONE


def test_enqueue_while_running_runs_again_afterwards(runtime: Runtime) -> None:
    """A change that arrives during a run is not lost: the job runs once more."""
    ran: list[str] = []

    def run(key: str) -> None:
        ran.append(key)
        if len(ran) == 1:
            with runtime.db.session() as s:
                enqueue(s, "k", key)

    with runtime.db.session() as s:
        enqueue(s, "k", "1")
    worker = _worker(runtime, run)
    while worker.run_one():
        pass
    assert ran == ["1", "1"]
    assert _job(runtime).state == JobState.DONE


def test_only_one_worker_claims_a_job(runtime: Runtime) -> None:
    with runtime.db.session() as s:
        enqueue(s, "k", "1")
    a = _worker(runtime, lambda key: None)
    b = _worker(runtime, lambda key: None)
    assert a.claim() is not None
    assert b.claim() is None


def test_failures_are_retried_with_backoff_then_given_up(runtime: Runtime) -> None:
    gave_up: list[tuple[str, str]] = []

    def run(key: str) -> None:
        raise RetryLater("not ready")

    with runtime.db.session() as s:
        enqueue(s, "k", "1")
    worker = _worker(runtime, run, lambda k, e: gave_up.append((k, e)), max_attempts=3)
    for attempt in range(1, 4):
        with runtime.db.session() as s:  # make the backoff due now
            row = s.scalar(select(Job))
            assert row is not None
            row.run_after = utcnow()
        assert worker.run_one()
        assert _job(runtime).attempts == attempt
    assert _job(runtime).state == JobState.FAILED
    assert gave_up == [("1", "not ready")]


def test_give_up_fails_at_once(runtime: Runtime) -> None:
    gave_up: list[str] = []

    def run(key: str) -> None:
        raise GiveUp("no such thing")

    with runtime.db.session() as s:
        enqueue(s, "k", "1")
    _worker(runtime, run, lambda k, e: gave_up.append(e)).run_one()
    assert _job(runtime).state == JobState.FAILED
    assert gave_up == ["no such thing"]


def test_an_unexpected_error_is_retried(runtime: Runtime) -> None:
    calls: list[int] = []

    def run(key: str) -> None:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("database blip")

    with runtime.db.session() as s:
        enqueue(s, "k", "1")
    worker = _worker(runtime, run)
    worker.run_one()
    job = _job(runtime)
    assert job.state == JobState.QUEUED
    assert "database blip" in (job.last_error or "")
    with runtime.db.session() as s:
        row = s.scalar(select(Job))
        assert row is not None
        row.run_after = utcnow()
    worker.run_one()
    assert _job(runtime).state == JobState.DONE


def test_an_expired_lease_is_taken_over(runtime: Runtime) -> None:
    """A worker that died mid-job: once its lease runs out another worker runs the job."""
    ran: list[str] = []
    with runtime.db.session() as s:
        enqueue(s, "k", "1")
    dead = _worker(runtime, ran.append)
    assert dead.claim() is not None  # claimed, then the worker "dies"
    alive = _worker(runtime, ran.append)
    assert alive.run_one() is False  # the lease still holds
    with runtime.db.session() as s:
        job = s.scalar(select(Job))
        assert job is not None
        job.locked_until = utcnow() - timedelta(seconds=1)
    assert alive.run_one() is True
    assert ran == ["1"]
    assert _job(runtime).state == JobState.DONE
    # The dead worker's late report changes nothing.
    assert _job(runtime).locked_by is None


@pytest.mark.skipif(sys.platform != "linux", reason="uses a finished child process's pid")
def test_restart_releases_jobs_of_dead_local_processes(runtime: Runtime) -> None:
    child = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    dead_pid = int(child.stdout)
    with runtime.db.session() as s:
        enqueue(s, "k", "1")
        enqueue(s, "k", "2")
    with runtime.db.session() as s:
        for job in s.scalars(select(Job)):
            job.state = JobState.RUNNING
            job.locked_until = utcnow() + timedelta(hours=1)
            job.locked_by = (
                f"{socket.gethostname()}:{dead_pid}:x"
                if job.key == "1"
                else f"{socket.gethostname()}:{os.getpid()}:y"
            )
    worker = _worker(runtime, lambda key: None)
    assert worker.release_dead_local_leases() == 1
    assert _job(runtime, key="1").state == JobState.QUEUED
    assert _job(runtime, key="2").state == JobState.RUNNING


# -- lanes -------------------------------------------------------------------------------------


def test_a_slow_download_never_holds_up_another_calls_case(
    runtime: Runtime,
    host: str,  # noqa: F811
) -> None:
    """One call's recording hangs on a slow host; another call, ready to be summarised, still
    reaches the worklist while that download is going (each lane has its own worker)."""
    with runtime.db.session() as s:
        slow = Call(station_id="demo", call_sid="CA" + "1" * 32, to_number="+358900000000",
                    state=CallState.ENDED, ended_at=utcnow(), language="fi")  # fmt: skip
        ready = Call(station_id="demo", call_sid="CA" + "2" * 32, to_number="+358900000000",
                     state=CallState.ENDED, ended_at=utcnow(), language="fi")  # fmt: skip
        s.add_all([slow, ready])
        s.flush()
        rec = Recording(call_id=slow.id, recording_sid="RE" + "1" * 32, sequence=1,
                        prompt_key="reason", source_url=f"{host}/slow.wav")  # fmt: skip
        done = Recording(call_id=ready.id, recording_sid="RE" + "2" * 32, sequence=1,
                         prompt_key="reason", state=RecordingState.TRANSCRIBED)  # fmt: skip
        s.add_all([rec, done])
        s.flush()
        s.add(Transcript(recording_id=done.id, call_id=ready.id, engine="scripted",
                         model="scripted", language="fi", text="Yskää kolme päivää."))  # fmt: skip
        enqueue(s, JobKind.FETCH_RECORDING, rec.id)
        enqueue(s, JobKind.FINALIZE_CALL, ready.id)
        slow_id, ready_id = slow.id, ready.id
    workers = start_lanes(runtime, LANES)
    try:
        deadline = time.monotonic() + SLOW_S
        while time.monotonic() < deadline:
            with runtime.db.session() as s:
                call = s.get(Call, ready_id)
                assert call is not None
                if call.state == CallState.READY:
                    fetch = s.scalar(select(Job).where(Job.kind == JobKind.FETCH_RECORDING))
                    assert fetch is not None and fetch.state == JobState.RUNNING
                    assert s.get(Call, slow_id).state == CallState.ENDED  # type: ignore[union-attr]
                    break
            time.sleep(0.05)
        else:
            pytest.fail("the ready call waited for the slow download")
    finally:
        stop_lanes(workers, timeout_s=0.1)


def test_unknown_lanes_are_refused(runtime: Runtime) -> None:
    with pytest.raises(ValueError, match="unknown worker lane"):
        start_lanes(runtime, ["fetch", "gpu"])


def test_an_outcome_the_database_could_not_take_is_recorded_once_it_is_back(
    runtime: Runtime,
) -> None:
    """The job ran, but the database restarted just then: the worker records the outcome
    when it is back instead of leaving the job RUNNING until its lease (minutes) runs out."""
    with runtime.db.session() as s:
        enqueue(s, "k", "1")
    ran: list[str] = []
    worker = _worker(runtime, ran.append)
    real_finish, outages = worker._finish, [2]

    def finish(*args: object, **kwargs: object) -> bool:
        if outages[0]:
            outages[0] -= 1
            raise OperationalError("UPDATE jobs", {}, Exception("shutting down"))
        return real_finish(*args, **kwargs)  # type: ignore[arg-type]

    worker._finish = finish  # type: ignore[method-assign]
    assert worker.run_one()
    assert ran == ["1"] and outages == [0]
    assert _job(runtime).state == JobState.DONE


# -- start-up --------------------------------------------------------------------------------


def _start(data_dir: str, database_url: str | None) -> str:
    """One process's start-up (in a child process)."""
    from esitieto.app import prepare as prepare_
    from tests.conftest import make_settings

    rt = Runtime(make_settings(Path(data_dir), database_url))
    try:
        prepare_(rt)
        return "ok"
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"[:300]
    finally:
        rt.close()


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_replicas_starting_together_on_a_fresh_database_all_start(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """Web replicas and workers started at the same moment on an empty database: before,
    one died with "table jobs already exists" (SQLite) or a duplicate demo station
    (PostgreSQL), found by the fault run."""
    url = None
    if backend == "postgres":
        url = request.getfixturevalue("postgres_url")
        _reset_pg(url)
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(3) as pool:
        results = pool.starmap(_start, [(str(tmp_path / "var"), url)] * 3)
    assert results == ["ok", "ok", "ok"]
