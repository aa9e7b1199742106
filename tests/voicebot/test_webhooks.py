"""Twilio webhooks: signatures, stations, TwiML, idempotency and out-of-order delivery."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from sqlalchemy import func, select

from esitieto.runtime import Runtime
from models import Call, CallEvent, CallState, Job, JobKind, Recording, RecordingState
from tests.conftest import Twilio, call_params
from voicebot.prompts import catalogue


def _count(runtime: Runtime, model: type, *where: object) -> int:
    with runtime.db.session() as s:
        return int(s.scalar(select(func.count()).select_from(model).where(*where)) or 0)  # type: ignore[arg-type]


def _verbs(body: str) -> list[ET.Element]:
    return list(ET.fromstring(body))


def test_missing_or_wrong_signature_is_rejected(twilio: Twilio, runtime: Runtime) -> None:
    params = call_params()
    assert twilio.post("/twilio/voice", params, signature="").status_code == 403
    assert twilio.post("/twilio/voice", params, signature="bm90IGEgc2lnbmF0dXJl").status_code == 403
    # Signed for other parameters: tampering is caught too.
    other = Twilio(twilio.client, "another-accounts-token")
    assert other.post("/twilio/voice", params).status_code == 403
    assert _count(runtime, Call) == 0


def test_incoming_call_is_greeted_warned_and_recorded(twilio: Twilio, runtime: Runtime) -> None:
    params = call_params()
    response = twilio.post("/twilio/voice", params)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/xml")
    verbs = _verbs(response.text)
    said = " ".join(v.text or "" for v in verbs if v.tag == "Say")
    fi = catalogue("fi")
    assert fi.text("ai_disclosure") in said
    assert "112" in said
    assert fi.text("ask_reason") in said
    record = next(v for v in verbs if v.tag == "Record")
    assert record.get("action", "").startswith("/twilio/recorded")
    assert record.get("recordingStatusCallback", "").startswith("/twilio/recording-status")
    assert verbs[-1].tag == "Redirect"  # silence falls through to the no-answer step
    with runtime.db.session() as s:
        call = s.scalar(select(Call).where(Call.call_sid == params["CallSid"]))
        assert call is not None
        assert call.station_id == "demo"
        assert call.state == CallState.IN_PROGRESS


def test_unknown_station_gets_a_clear_message_and_no_case(twilio: Twilio, runtime: Runtime) -> None:
    response = twilio.post("/twilio/voice", call_params(To="+358999999999"))
    assert response.status_code == 200
    verbs = _verbs(response.text)
    assert [v.tag for v in verbs] == ["Say", "Hangup"]
    assert verbs[0].text == catalogue("fi").text("unknown_number")
    assert _count(runtime, Call) == 0


def test_retried_incoming_call_creates_one_case(twilio: Twilio, runtime: Runtime) -> None:
    params = call_params()
    first = twilio.post("/twilio/voice", params)
    second = twilio.post("/twilio/voice", params)
    assert first.status_code == second.status_code == 200
    assert first.text == second.text
    assert _count(runtime, Call) == 1


def _record(twilio: Twilio, params: dict[str, str], sid: str) -> None:
    body = {
        **params,
        "RecordingSid": sid,
        "RecordingUrl": f"http://127.0.0.1:9/2010-04-01/Accounts/AC0/Recordings/{sid}",
        "RecordingDuration": "7",
    }
    assert twilio.post("/twilio/recorded?step=reason", body).status_code == 200


def test_repeated_recording_webhooks_store_one_recording_and_one_job(
    twilio: Twilio, runtime: Runtime
) -> None:
    params = call_params()
    twilio.post("/twilio/voice", params)
    sid = "RE" + "1" * 32
    _record(twilio, params, sid)
    _record(twilio, params, sid)
    status = {
        **params,
        "RecordingSid": sid,
        "RecordingStatus": "completed",
        "RecordingUrl": f"http://127.0.0.1:9/2010-04-01/Accounts/AC0/Recordings/{sid}",
        "RecordingDuration": "7",
    }
    for _ in range(2):
        assert twilio.post("/twilio/recording-status?step=reason", status).status_code == 200
    assert _count(runtime, Recording) == 1
    assert _count(runtime, Job, Job.kind == JobKind.FETCH_RECORDING) == 1
    assert _count(runtime, CallEvent, CallEvent.kind == "recording") == 1


def test_record_action_says_goodbye_and_hangs_up(twilio: Twilio, runtime: Runtime) -> None:
    params = call_params()
    twilio.post("/twilio/voice", params)
    body = {**params, "RecordingSid": "RE" + "2" * 32, "RecordingUrl": "http://x/y"}
    response = twilio.post("/twilio/recorded?step=reason", body)
    verbs = _verbs(response.text)
    assert [v.tag for v in verbs] == ["Say", "Hangup"]
    assert verbs[0].text == catalogue("fi").text("closing")


def test_recording_callback_before_the_call_webhook_is_kept(
    twilio: Twilio, runtime: Runtime
) -> None:
    """Out of order: the recording callback arrives first; the call is created from it."""
    params = call_params()
    sid = "RE" + "3" * 32
    status = {
        **params,
        "RecordingSid": sid,
        "RecordingStatus": "completed",
        "RecordingUrl": "http://127.0.0.1:9/r",
        "RecordingDuration": "3",
    }
    assert twilio.post("/twilio/recording-status", status).status_code == 200
    assert twilio.post("/twilio/voice", params).status_code == 200
    _record(twilio, params, sid)
    assert _count(runtime, Call) == 1
    assert _count(runtime, Recording) == 1


def test_status_callback_ends_the_call_once(twilio: Twilio, runtime: Runtime) -> None:
    params = call_params()
    twilio.post("/twilio/voice", params)
    done = {**params, "CallStatus": "completed", "CallDuration": "42"}
    for _ in range(3):
        assert twilio.post("/twilio/status", done).status_code == 200
    assert _count(runtime, CallEvent, CallEvent.kind == "status") == 1
    assert _count(runtime, Job, Job.kind == JobKind.FINALIZE_CALL) == 1
    with runtime.db.session() as s:
        call = s.scalar(select(Call).where(Call.call_sid == params["CallSid"]))
        assert call is not None
        assert call.state == CallState.ENDED
        assert call.duration_s == 42
        event = s.scalar(select(CallEvent))
        assert event is not None
        assert "From" not in event.payload  # no caller identity kept with events


def test_absent_recording_is_marked_missing(twilio: Twilio, runtime: Runtime) -> None:
    params = call_params()
    twilio.post("/twilio/voice", params)
    absent = {**params, "RecordingSid": "RE" + "4" * 32, "RecordingStatus": "absent"}
    assert twilio.post("/twilio/recording-status", absent).status_code == 200
    with runtime.db.session() as s:
        rec = s.scalar(select(Recording))
        assert rec is not None
        assert rec.state == RecordingState.MISSING


def test_silence_goes_to_the_no_answer_step(twilio: Twilio, runtime: Runtime) -> None:
    params = call_params()
    twilio.post("/twilio/voice", params)
    response = twilio.post("/twilio/no-recording?step=reason", params)
    verbs = _verbs(response.text)
    assert verbs[0].text == catalogue("fi").text("no_answer")
    assert verbs[-1].tag == "Hangup"


def test_malformed_requests_get_clear_errors(twilio: Twilio) -> None:
    # No CallSid: a clear 400, not a crash.
    params = {"AccountSid": "AC00000000000000000000000000000000", "To": "+358900000000"}
    response = twilio.post("/twilio/voice", params)
    assert response.status_code == 400
    assert "CallSid" in response.json()["detail"]
    response = twilio.post("/twilio/recording-status", call_params())
    assert response.status_code == 400
