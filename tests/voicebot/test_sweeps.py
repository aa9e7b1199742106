"""Housekeeping: a case whose next step was never queued is set going again."""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Iterator
from datetime import timedelta
from typing import ClassVar

import pytest
from sqlalchemy import select

from esitieto.app import make_worker, prepare
from esitieto.runtime import Runtime
from esitieto.settings import Settings
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
from tests.conftest import drain
from voicebot.tasks import Pipeline


def _ended_call(runtime: Runtime, sid: str, minutes_ago: float, recording: str) -> str:
    ended = utcnow() - timedelta(minutes=minutes_ago)
    with runtime.db.session() as s:
        call = Call(station_id="demo", call_sid=sid, to_number="+358900000000",
                    state=CallState.ENDED, started_at=ended - timedelta(minutes=2),
                    ended_at=ended, language="fi")  # fmt: skip
        s.add(call)
        s.flush()
        rec = Recording(call_id=call.id, recording_sid="RE" + sid[2:], sequence=1,
                        prompt_key="reason", state=recording)  # fmt: skip
        s.add(rec)
        s.flush()
        if recording == RecordingState.TRANSCRIBED:
            words = "Yskää kolme päivää."
            s.add(Transcript(recording_id=rec.id, call_id=call.id, engine="scripted",
                             model="scripted", language="fi", text=words))  # fmt: skip
        return call.id


def _state(runtime: Runtime, call_id: str) -> str:
    with runtime.db.session() as s:
        call = s.get(Call, call_id)
        assert call is not None
        return call.state


def test_a_case_left_waiting_for_nothing_is_finished(runtime: Runtime) -> None:
    stalled = _ended_call(runtime, "CA" + "1" * 32, 5, RecordingState.TRANSCRIBED)
    recent = _ended_call(runtime, "CA" + "2" * 32, 0, RecordingState.TRANSCRIBED)
    waiting = _ended_call(runtime, "CA" + "3" * 32, 5, RecordingState.TRANSCRIBED)
    with runtime.db.session() as s:  # this one has its next step queued: left alone
        enqueue(s, JobKind.FINALIZE_CALL, waiting)
    sweep = Pipeline(runtime.voicebot).sweep_stalled_cases
    assert sweep() == 1
    with runtime.db.session() as s:
        queued = {j.key for j in s.scalars(select(Job).where(Job.state == JobState.QUEUED))}
    assert queued == {stalled, waiting} and recent not in queued
    drain(runtime)
    assert _state(runtime, stalled) == CallState.READY
    assert sweep() == 0  # nothing is left waiting


def test_a_recording_twilio_never_reported_is_given_up_and_the_case_finished(
    runtime: Runtime,
) -> None:
    hours = runtime.settings.worker.abandoned_call_after_s / 60 + 1
    forgotten = _ended_call(runtime, "CA" + "4" * 32, hours, RecordingState.PENDING)
    assert Pipeline(runtime.voicebot).sweep_stalled_cases() == 1
    drain(runtime)
    with runtime.db.session() as s:
        call = s.get(Call, forgotten)
        assert call is not None and call.state == CallState.READY and call.route is not None
        rec = s.scalar(select(Recording).where(Recording.call_id == forgotten))
        assert rec is not None and rec.state == RecordingState.MISSING


# -- reconciliation with Twilio's Calls API ----------------------------------------------------


class _FakeCallsApi(http.server.BaseHTTPRequestHandler):
    """Twilio's Call resource, as ``GET /2010-04-01/Accounts/{sid}/Calls/{sid}.json`` answers
    it (the recorded shape, numbers left out); ``calls`` maps a CallSid to (status, duration)."""

    calls: ClassVar[dict[str, tuple[str, str | None]]] = {}
    seen: ClassVar[list[tuple[str, str | None]]] = []
    broken: ClassVar[bool] = False

    def do_GET(self) -> None:
        _FakeCallsApi.seen.append((self.path, self.headers.get("Authorization")))
        sid = self.path.rsplit("/", 1)[-1].removesuffix(".json")
        if _FakeCallsApi.broken:
            status, body = 503, {"code": 20500, "message": "Service unavailable", "status": 503}
        elif sid not in _FakeCallsApi.calls:
            status = 404
            body = {"code": 20404, "message": "The requested resource was not found",
                    "more_info": "https://www.twilio.com/docs/errors/20404",
                    "status": 404}  # fmt: skip
        else:
            call_status, duration = _FakeCallsApi.calls[sid]
            status = 200
            body = {"sid": sid, "account_sid": ACCOUNT, "status": call_status,
                    "duration": duration, "direction": "inbound", "api_version": "2010-04-01",
                    "start_time": "Mon, 30 Nov 2026 08:00:00 +0000",
                    "end_time": "Mon, 30 Nov 2026 08:01:10 +0000" if duration else None,
                    "uri": f"/2010-04-01/Accounts/{ACCOUNT}/Calls/{sid}.json"}  # fmt: skip
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:
        pass


ACCOUNT = "AC" + "0" * 32


@pytest.fixture
def twilio_calls(settings: Settings) -> Iterator[Runtime]:
    """A runtime whose Twilio REST host is a local fake of the Calls API."""
    _FakeCallsApi.calls, _FakeCallsApi.seen, _FakeCallsApi.broken = {}, [], False
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _FakeCallsApi)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    settings.twilio.api_base_url = f"http://127.0.0.1:{server.server_address[1]}"
    rt = Runtime(settings)
    prepare(rt)
    yield rt
    rt.close()
    server.shutdown()


def _live_call(runtime: Runtime, sid: str, minutes_ago: float) -> str:
    started = utcnow() - timedelta(minutes=minutes_ago)
    with runtime.db.session() as s:
        call = Call(station_id="demo", call_sid=sid, to_number="+358900000000",
                    started_at=started, language="fi")  # fmt: skip
        s.add(call)
        s.flush()
        return call.id


def test_a_call_whose_final_status_callback_was_lost_is_ended_from_twilios_calls_api(
    twilio_calls: Runtime,
) -> None:
    runtime = twilio_calls
    lost = _live_call(runtime, "CA" + "5" * 32, 10)
    going = _live_call(runtime, "CA" + "6" * 32, 10)
    unknown = _live_call(runtime, "CA" + "7" * 32, 10)
    young = _live_call(runtime, "CA" + "8" * 32, 0)
    _FakeCallsApi.calls = {
        "CA" + "5" * 32: ("completed", "70"),
        "CA" + "6" * 32: ("in-progress", None),
        "CA" + "8" * 32: ("completed", "5"),
    }
    reconcile = Pipeline(runtime.voicebot).reconcile_with_twilio
    assert reconcile() == 1
    paths = [p for p, _ in _FakeCallsApi.seen]
    assert f"/2010-04-01/Accounts/{ACCOUNT}/Calls/CA{'5' * 32}.json" in paths
    assert all(auth and auth.startswith("Basic ") for _, auth in _FakeCallsApi.seen)
    assert not any("8" * 32 in p for p in paths)  # a call just begun is not asked about
    drain(runtime)
    assert [_state(runtime, c) for c in (lost, going, unknown, young)] == [
        CallState.READY, CallState.IN_PROGRESS, CallState.IN_PROGRESS, CallState.IN_PROGRESS,
    ]  # fmt: skip
    with runtime.db.session() as s:
        call = s.get(Call, lost)
        assert call is not None and call.twilio_status == "completed" and call.duration_s == 70
        assert call.route is not None  # a nurse has the case
    assert reconcile() == 0  # ended once


def test_an_outage_of_twilios_api_leaves_calls_as_they_are(twilio_calls: Runtime) -> None:
    call = _live_call(twilio_calls, "CA" + "9" * 32, 10)
    _FakeCallsApi.calls = {"CA" + "9" * 32: ("completed", "70")}
    _FakeCallsApi.broken = True
    assert Pipeline(twilio_calls.voicebot).reconcile_with_twilio() == 0
    assert _state(twilio_calls, call) == CallState.IN_PROGRESS
    _FakeCallsApi.broken = False
    assert Pipeline(twilio_calls.voicebot).reconcile_with_twilio() == 1


def test_the_worker_reconciles_at_start(twilio_calls: Runtime) -> None:
    """The worker's housekeeping includes the reconciliation and runs it when it starts."""
    call = _live_call(twilio_calls, "CA" + "a" * 32, 10)
    _FakeCallsApi.calls = {"CA" + "a" * 32: ("no-answer", "0")}
    worker = make_worker(twilio_calls)
    worker.run_periodic([0.0] * len(worker.periodic))
    assert _state(twilio_calls, call) == CallState.ENDED
