"""Housekeeping: a case whose next step was never queued is set going again."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

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
