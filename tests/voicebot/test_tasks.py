"""The after-call pipeline on real audio and real Whisper, through the real webhooks."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select

from esitieto.runtime import Runtime
from models import (
    Call,
    Callback,
    CallState,
    JobKind,
    Recording,
    RecordingState,
    Summary,
    Transcript,
    TriageDecision,
)
from tests.conftest import Twilio, call_params, drain
from voicebot.simulator import RecordingServer

pytestmark = pytest.mark.slow


def _count(runtime: Runtime, model: type) -> int:
    with runtime.db.session() as s:
        return int(s.scalar(select(func.count()).select_from(model)) or 0)


def _call(runtime: Runtime, call_sid: str) -> Call:
    with runtime.db.session() as s:
        call = s.scalar(select(Call).where(Call.call_sid == call_sid))
        assert call is not None
        return call


def _place_call(twilio: Twilio, media: RecordingServer, audio: Path | None) -> dict[str, str]:
    params = call_params()
    assert twilio.post("/twilio/voice", params).status_code == 200
    if audio is not None:
        sid = "RE" + params["CallSid"][2:]
        url = media.add(sid, audio)
        rec = {**params, "RecordingSid": sid, "RecordingUrl": url, "RecordingDuration": "5"}
        assert twilio.post("/twilio/recorded?step=reason", rec).status_code == 200
        done = {**rec, "RecordingStatus": "completed"}
        assert twilio.post("/twilio/recording-status?step=reason", done).status_code == 200
    end = {**params, "CallStatus": "completed", "CallDuration": "30"}
    assert twilio.post("/twilio/status", end).status_code == 200
    return params


@pytest.fixture
def media(runtime: Runtime):
    s = runtime.settings
    with RecordingServer(s.twilio.account_sid, s.twilio_auth_token.get_secret_value()) as server:
        yield server


def test_a_recorded_call_becomes_a_case(
    twilio: Twilio, runtime: Runtime, media: RecordingServer, finnish_caller_wav: Path
) -> None:
    params = _place_call(twilio, media, finnish_caller_wav)
    drain(runtime)
    call = _call(runtime, params["CallSid"])
    assert call.state == CallState.READY
    assert call.route in ("nurse_queue", "callback", "digital_path")
    assert call.urgency in ("emergency", "urgent", "non_urgent")
    with runtime.db.session() as s:
        rec = s.scalar(select(Recording))
        assert rec is not None
        assert rec.state == RecordingState.TRANSCRIBED
        assert rec.sha256 and rec.size_bytes
        assert runtime.storage.exists(rec.storage_key or "")
        transcript = s.scalar(select(Transcript))
        assert transcript is not None
        assert transcript.language == "fi"
        assert len(transcript.text) > 10
        assert transcript.segments and transcript.segments[0].end_s > 0
        summary = s.scalar(select(Summary))
        assert summary is not None
        assert summary.source_text == transcript.text
        assert summary.note
        decision = s.scalar(select(TriageDecision))
        assert decision is not None
        assert decision.ruleset_version
    # Running the whole pipeline again (a retried job, a restart) duplicates nothing.
    with runtime.db.session() as s:
        from integrations.jobs import enqueue

        enqueue(s, JobKind.FINALIZE_CALL, call.id)
        enqueue(s, JobKind.FETCH_RECORDING, rec.id)
        enqueue(s, JobKind.TRANSCRIBE, rec.id)
    drain(runtime)
    assert (_count(runtime, Transcript), _count(runtime, Summary)) == (1, 1)
    assert _count(runtime, TriageDecision) == 1


def test_hang_up_before_speaking_still_leaves_a_case(
    twilio: Twilio, runtime: Runtime, media: RecordingServer
) -> None:
    params = _place_call(twilio, media, None)
    drain(runtime)
    call = _call(runtime, params["CallSid"])
    assert call.state == CallState.READY
    assert call.route == "callback"  # nothing said: a nurse calls back
    assert _count(runtime, Callback) == 1


def test_a_recording_that_never_appears_is_marked_missing(
    twilio: Twilio, runtime: Runtime, media: RecordingServer
) -> None:
    params = call_params()
    twilio.post("/twilio/voice", params)
    url = media.add("RE" + "9" * 32, Path("/nonexistent.wav"))  # the server answers 404
    rec = {**params, "RecordingSid": "RE" + "9" * 32, "RecordingUrl": url}
    twilio.post("/twilio/recorded?step=reason", rec)
    twilio.post("/twilio/status", {**params, "CallStatus": "completed"})
    drain(runtime)
    with runtime.db.session() as s:
        recording = s.scalar(select(Recording))
        assert recording is not None
        assert recording.state == RecordingState.MISSING
        assert "404" in (recording.error or "")
    call = _call(runtime, params["CallSid"])
    assert call.state == CallState.READY
    assert call.route == "callback"


def test_silent_recording_is_kept_as_silent(
    twilio: Twilio, runtime: Runtime, media: RecordingServer, silent_wav: Path
) -> None:
    params = _place_call(twilio, media, silent_wav)
    drain(runtime)
    with runtime.db.session() as s:
        recording = s.scalar(select(Recording))
        assert recording is not None
        assert recording.state == RecordingState.SILENT
    call = _call(runtime, params["CallSid"])
    assert call.state == CallState.READY
    assert call.route == "callback"


def test_corrupt_recording_fails_clearly_and_the_case_goes_on(
    twilio: Twilio, runtime: Runtime, media: RecordingServer, tmp_path: Path
) -> None:
    corrupt = tmp_path / "corrupt.wav"
    corrupt.write_bytes(b"RIFF\x00\x00garbage" * 50)
    params = _place_call(twilio, media, corrupt)
    drain(runtime)
    with runtime.db.session() as s:
        recording = s.scalar(select(Recording))
        assert recording is not None
        assert recording.state == RecordingState.FAILED
        assert recording.error
    call = _call(runtime, params["CallSid"])
    assert call.state == CallState.READY
    assert call.route == "callback"


def test_wrong_credentials_for_the_recording_are_not_silently_accepted(
    twilio: Twilio, runtime: Runtime, finnish_caller_wav: Path
) -> None:
    """Recording downloads authenticate; a server that refuses us leaves the recording missing."""
    with RecordingServer(runtime.settings.twilio.account_sid, "another-token") as other:
        params = _place_call(twilio, other, finnish_caller_wav)
        drain(runtime)
    with runtime.db.session() as s:
        recording = s.scalar(select(Recording))
        assert recording is not None
        assert recording.state == RecordingState.MISSING
        assert "401" in (recording.error or "")
    assert _call(runtime, params["CallSid"]).state == CallState.READY
