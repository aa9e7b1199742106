"""Retention: recordings, transcripts and cases are deleted after their time, once, with an
audit record; what is left of an old case is anonymous and still counted."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import func, select

from esitieto.runtime import Runtime
from models import (
    AuditEvent,
    Call,
    Callback,
    CallState,
    GivenTranscript,
    Recording,
    RecordingState,
    Summary,
    Transcript,
    TranscriptSegment,
    TriageDecision,
    utcnow,
)
from voicebot.retention import RetentionPolicy, apply_retention

POLICY = RetentionPolicy(recordings_days=30, transcripts_days=90, cases_days=365)
WORDS = "Rintaan sattuu ja vasen käsi puutuu"


def _case(rt: Runtime, n: int, days_ago: float, state: str = CallState.READY) -> str:
    ended = utcnow() - timedelta(days=days_ago)
    sid = f"{n:032d}"
    with rt.db.session() as s:
        call = Call(station_id="demo", call_sid="CA" + sid, to_number="+358900000000",
                    from_number="+358401234567", state=state, started_at=ended,
                    ended_at=ended, reason="Rintakipu", urgency="urgent", route="nurse_queue",
                    dialogue={"heard": WORDS, "language": "fi"})  # fmt: skip
        s.add(call)
        s.flush()
        rec = Recording(call_id=call.id, recording_sid="RE" + sid, sequence=1,
                        prompt_key="reason", state=RecordingState.TRANSCRIBED,
                        storage_key=f"CA{sid}/RE{sid}.wav")  # fmt: skip
        s.add(rec)
        s.flush()
        t = Transcript(recording_id=rec.id, call_id=call.id, engine="given", model="given",
                       language="fi", text=WORDS)  # fmt: skip
        t.segments = [TranscriptSegment(seq=0, start_s=0, end_s=2, text=WORDS)]
        s.add_all([t, GivenTranscript(recording_sid=rec.recording_sid, text=WORDS)])
        s.add(Summary(call_id=call.id, generator="rules", source_text=WORDS,
                      reason="Rintakipu", note=f"'{WORDS}'", data={"q": WORDS}))  # fmt: skip
        s.add(TriageDecision(call_id=call.id, source="pretriage", urgency="urgent",
                             route="nurse_queue", reasons=[{"evidence": WORDS}],
                             ruleset_version="test"))  # fmt: skip
        s.add(Callback(call_id=call.id, station_id="demo", phone_number="+358401234567"))
    rt.storage.put(f"CA{sid}/RE{sid}.wav", b"RIFF" + bytes(100))
    return call.id


def _view(rt: Runtime, call_id: str) -> dict[str, object]:
    with rt.db.session() as s:
        call = s.get(Call, call_id)
        assert call is not None
        rec = call.recordings[0]
        decision = s.scalar(select(TriageDecision).where(TriageDecision.call_id == call_id))
        summary = s.scalar(select(Summary).where(Summary.call_id == call_id))
        callback = s.scalar(select(Callback).where(Callback.call_id == call_id))
        assert decision is not None and callback is not None
        return {
            "audio": rec.storage_key is not None and rt.storage.exists(rec.storage_key),
            "transcript": s.scalar(select(Transcript).where(Transcript.call_id == call_id))
            is not None,
            "given": s.get(GivenTranscript, rec.recording_sid) is not None,
            "heard": (call.dialogue or {}).get("heard"),
            "summary_text": summary.source_text if summary else None,
            "note": summary.note if summary else None,
            "number": call.from_number,
            "callback_number": callback.phone_number,
            "reasons": decision.reasons,
            "urgency": decision.urgency,
            "route": call.route,
        }


def _run(rt: Runtime, now: datetime | None = None) -> tuple[int, int, int]:
    report = apply_retention(rt.db.session, rt.storage, POLICY, now or utcnow())
    return report.recordings, report.transcripts, report.cases


def test_each_kind_goes_after_its_own_time_once_and_is_audited(runtime: Runtime) -> None:
    fresh = _case(runtime, 1, 1)
    month = _case(runtime, 2, 40)
    quarter = _case(runtime, 3, 100)
    year = _case(runtime, 4, 400)
    unfinished = _case(runtime, 5, 400, state=CallState.ENDED)  # still being processed
    assert _run(runtime) == (3, 2, 1)

    assert _view(runtime, fresh)["audio"] and _view(runtime, fresh)["transcript"]
    assert _view(runtime, unfinished)["audio"] and _view(runtime, unfinished)["number"]

    m = _view(runtime, month)
    assert not m["audio"] and m["transcript"] and m["heard"] == WORDS

    q = _view(runtime, quarter)
    assert not q["audio"] and not q["transcript"] and not q["given"] and q["heard"] is None
    assert q["summary_text"] == "" and q["note"] == f"'{WORDS}'"  # the note stays a year
    assert q["number"] == "+358401234567"

    y = _view(runtime, year)
    assert not y["audio"] and not y["transcript"] and y["summary_text"] is None
    assert y["number"] is None and y["callback_number"] is None and y["reasons"] == []
    assert y["urgency"] == "urgent" and y["route"] == "nurse_queue"  # still counted

    assert _run(runtime) == (0, 0, 0)  # nothing is deleted twice
    with runtime.db.session() as s:
        audits = s.scalars(
            select(AuditEvent)
            .where(AuditEvent.action == "retention_delete")
            .order_by(AuditEvent.at)
        ).all()
        assert [a.detail["recordings"] for a in audits] == [3, 0]
        assert audits[0].detail["cases"] == 1 and "cases_days" in audits[0].detail["cutoffs"]
        assert WORDS not in str(audits[0].detail)


def test_a_kind_kept_for_good_is_never_deleted(runtime: Runtime) -> None:
    old = _case(runtime, 6, 4000)
    report = apply_retention(
        runtime.db.session, runtime.storage, RetentionPolicy(None, None, None), utcnow()
    )
    assert (report.recordings, report.transcripts, report.cases) == (0, 0, 0)
    assert _view(runtime, old)["audio"] and _view(runtime, old)["number"]
    with runtime.db.session() as s:
        assert s.scalar(select(func.count()).select_from(Transcript)) == 1


def test_the_worker_runs_retention_in_its_housekeeping(runtime: Runtime) -> None:
    from esitieto.app import make_worker

    old = _case(runtime, 7, 40)
    worker = make_worker(runtime)
    worker.run_periodic([0.0] * len(worker.periodic))
    assert not _view(runtime, old)["audio"]
