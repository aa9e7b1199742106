"""What the Twilio webhooks do to the database; every function is idempotent.

A webhook may arrive twice (Twilio retries) or out of order (a recording callback before the
record action, a status callback before either). Every write is keyed on Twilio's own ids
(``CallSid``, ``RecordingSid``, the status) so a repeat finds its row and changes nothing.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from integrations.jobs import enqueue
from integrations.twilio import FINAL_STATUSES
from models import (
    Call,
    Callback,
    CallerFeedback,
    CallEvent,
    CallState,
    GivenTranscript,
    JobKind,
    Recording,
    RecordingState,
    Station,
)
from pretriage.callback_window import OpeningHours, OpeningHoursError
from pretriage.schemas import URGENCY_RANK
from pretriage.service import ensure_callback, estimate_callback
from voicebot.dialogue import FEEDBACK_QUESTIONS, Answers, Step
from voicebot.identity import IdentityError, IdentityVault
from voicebot.prompts import Catalogue

FINAL_CALL_STATUSES = FINAL_STATUSES

# Only these webhook fields are kept with an event: none identifies the caller.
_EVENT_FIELDS = (
    "CallStatus",
    "CallDuration",
    "Timestamp",
    "SequenceNumber",
    "RecordingSid",
    "RecordingStatus",
    "RecordingDuration",
    "RecordingChannels",
    "RecordingSource",
    "ErrorCode",
)


@dataclass(frozen=True)
class CallParams:
    """The fields every Twilio voice webhook carries."""

    call_sid: str
    account_sid: str | None
    from_number: str | None
    to_number: str

    @classmethod
    def from_form(cls, form: Mapping[str, str]) -> CallParams:
        """Checked at the edge: what Twilio sends has a known shape, and nothing longer than
        its column is ever stored."""
        call_sid = (form.get("CallSid") or "").strip()
        if not call_sid:
            raise ValueError("CallSid missing")
        if not CALL_SID.fullmatch(call_sid):
            raise ValueError("CallSid is not a Twilio call SID")
        account_sid = form.get("AccountSid") or None
        if account_sid is not None and not ACCOUNT_SID.fullmatch(account_sid):
            raise ValueError("AccountSid is not a Twilio account SID")
        from_number = (form.get("From") or "").strip() or None
        to_number = normalise_number(form.get("To") or form.get("Called") or "")
        if (from_number and len(from_number) > 32) or len(to_number) > 32:
            raise ValueError("From or To longer than a telephone number")
        return cls(call_sid, account_sid, from_number, to_number)


CALL_SID = re.compile(r"CA[0-9a-fA-F]{32}")
ACCOUNT_SID = re.compile(r"AC[0-9a-fA-F]{32}")
RECORDING_SID = re.compile(r"RE[0-9a-fA-F]{32}")
CALL_STATUSES = FINAL_CALL_STATUSES | {"queued", "initiated", "ringing", "in-progress"}


def normalise_number(number: str) -> str:
    return "".join(ch for ch in number if ch.isdigit() or ch == "+")


def find_station(session: Session, number: str) -> Station | None:
    if not number:
        return None
    return session.scalar(select(Station).where(Station.phone_number == normalise_number(number)))


def get_or_create_call(session: Session, station: Station, params: CallParams) -> Call:
    call = session.scalar(select(Call).where(Call.call_sid == params.call_sid))
    if call is not None:
        return call
    try:
        with session.begin_nested():
            call = Call(
                station_id=station.id,
                call_sid=params.call_sid,
                account_sid=params.account_sid,
                from_number=params.from_number,
                to_number=params.to_number,
                language=station.language,
            )
            session.add(call)
        return call
    except IntegrityError:  # the same webhook, delivered twice at once
        existing = session.scalar(select(Call).where(Call.call_sid == params.call_sid))
        if existing is None:  # pragma: no cover
            raise
        return existing


def find_call(session: Session, call_sid: str) -> Call | None:
    return session.scalar(select(Call).where(Call.call_sid == call_sid))


def store_event(
    session: Session,
    *,
    kind: str,
    dedupe_key: str,
    call: Call | None,
    call_sid: str,
    form: Mapping[str, str],
    status: str | None,
) -> bool:
    """Keep a callback once; False when this exact callback was already stored."""
    if session.scalar(select(CallEvent.id).where(CallEvent.dedupe_key == dedupe_key)):
        return False
    payload = {k: form[k] for k in _EVENT_FIELDS if k in form}
    try:
        with session.begin_nested():
            session.add(
                CallEvent(
                    call_id=call.id if call else None,
                    call_sid=call_sid,
                    kind=kind,
                    dedupe_key=dedupe_key[:200],
                    status=status,
                    payload=payload,
                )
            )
        return True
    except IntegrityError:
        return False


def upsert_recording(
    session: Session,
    call: Call,
    *,
    recording_sid: str,
    url: str | None,
    duration_s: int | None,
    prompt_key: str,
) -> Recording:
    """The recording row for ``recording_sid``, created once; a fetch job is queued for it."""
    rec = session.scalar(select(Recording).where(Recording.recording_sid == recording_sid))
    if rec is None:
        for _ in range(3):
            sequence = (
                session.scalar(
                    select(func.coalesce(func.max(Recording.sequence), 0)).where(
                        Recording.call_id == call.id
                    )
                )
                or 0
            ) + 1
            try:
                with session.begin_nested():
                    rec = Recording(
                        call_id=call.id,
                        recording_sid=recording_sid,
                        sequence=sequence,
                        prompt_key=prompt_key,
                        source_url=url,
                        duration_s=duration_s,
                    )
                    session.add(rec)
                break
            except IntegrityError:
                rec = session.scalar(
                    select(Recording).where(Recording.recording_sid == recording_sid)
                )
                if rec is not None:
                    break
        if rec is None:  # pragma: no cover - three lost races in a row
            raise RuntimeError("could not store the recording")
    if url and not rec.source_url:
        rec.source_url = url
    if duration_s is not None and rec.duration_s is None:
        rec.duration_s = duration_s
    if rec.state == RecordingState.PENDING and rec.source_url:
        enqueue(session, JobKind.FETCH_RECORDING, rec.id)
    return rec


def mark_recording_absent(session: Session, rec: Recording, error: str) -> None:
    if rec.state == RecordingState.PENDING:
        rec.state = RecordingState.MISSING
        rec.error = error
        enqueue(session, JobKind.FINALIZE_CALL, rec.call_id)


def progress(call: Call, status: str, sequence: int | None) -> None:
    """A progress status (``ringing``, ``in-progress``…): kept unless it is older news.

    Twilio numbers a call's status callbacks (``SequenceNumber``) but does not promise to
    deliver them in order: one that arrives after a later one is recorded as an event and
    changes nothing. A final status is the last word whatever arrives after it."""
    older = (
        sequence is not None
        and call.status_sequence is not None
        and sequence < call.status_sequence
    )
    if call.twilio_status in FINAL_CALL_STATUSES or older:
        return
    call.twilio_status = status
    if sequence is not None:
        call.status_sequence = sequence


def end_call(
    session: Session, call: Call, *, twilio_status: str, duration_s: int | None, now: datetime
) -> None:
    """The caller hung up (or the call never connected): process what we have."""
    call.twilio_status = twilio_status
    if duration_s is not None:
        call.duration_s = duration_s
    if call.state == CallState.IN_PROGRESS:
        call.state = CallState.ENDED
        call.ended_at = now
        call.dialogue_step = "done"
    for rec in call.recordings:
        if rec.state == RecordingState.PENDING and rec.source_url:
            enqueue(session, JobKind.FETCH_RECORDING, rec.id)
    enqueue(session, JobKind.FINALIZE_CALL, call.id)


# -- the dialogue ----------------------------------------------------------------------------


def load_answers(call: Call, station: Station) -> Answers:
    if call.dialogue:
        return Answers.from_json(call.dialogue)
    return Answers(language=call.language or station.language)


def save(call: Call, answers: Answers, step: Step) -> None:
    call.dialogue = answers.to_json()
    call.dialogue_step = step.state.value
    call.language = answers.language


def station_closed(station: Station, now: datetime) -> bool:
    """Whether the station is outside its opening hours now (nurses cannot take a call)."""
    local = now.astimezone(ZoneInfo(station.timezone))
    try:
        span = OpeningHours.parse(station.opening_hours).hours_on(local)
    except OpeningHoursError:
        return False  # checked at start-up; if it slips through, do not turn callers away
    return span is None or not span[0] <= local < span[1]


def feedback_question(call: Call) -> str:
    """One of the pilot's three questions per call, evenly spread (from the call's random id,
    so no query is needed on the hot path)."""
    return FEEDBACK_QUESTIONS[int(call.id[-6:], 16) % len(FEEDBACK_QUESTIONS)]


def callback_window_text(
    session: Session, call: Call, station: Station, cat: Catalogue, now: datetime
) -> str:
    """ "tänään kello 13.00–14.00": the window the caller is promised, in their language."""
    cb = session.scalar(select(Callback).where(Callback.call_id == call.id))
    tz = ZoneInfo(station.timezone)
    if cb is None or cb.window_start is None or cb.window_end is None:
        window = estimate_callback(session, station, now, call_id=call.id)
        start, end = window.start, window.end
    else:
        start, end = cb.window_start, cb.window_end
    start, end = start.astimezone(tz), end.astimezone(tz)
    today = now.astimezone(tz).date()
    times = {"start": start.strftime("%H.%M"), "end": end.strftime("%H.%M")}
    if cat.language == "en":
        times = {"start": start.strftime("%H:%M"), "end": end.strftime("%H:%M")}
    if start.date() == today:
        return cat.text("today", **times)
    return cat.text("another_day", day=cat.days[start.weekday()], **times)


def apply_outcome(session: Session, call: Call, answers: Answers, *, now: datetime) -> None:
    """Make what the caller was told happen: the queue, the SMS, the callback, the feedback."""
    if answers.outcome in ("emergency", "nurse_queue", "urgent_line"):
        # urgent_line: sent to Päivystysapu after hours; on the morning's worklist, urgent.
        urgency = "emergency" if answers.outcome == "emergency" else (call.urgency or "urgent")
        call.route = "nurse_queue"
        call.urgency = urgency
        call.urgency_rank = max(call.urgency_rank, URGENCY_RANK.get(urgency, 1))
    elif answers.outcome == "digital_path" and answers.sms_accepted:
        call.route = "digital_path"
        enqueue(session, JobKind.SEND_SMS, call.id)
    elif answers.outcome == "callback":
        cb = ensure_callback(session, call, now)
        if answers.callback_number:
            cb.phone_number = answers.callback_number
        call.route = call.route or "callback"
    if answers.feedback_answer is not None and answers.feedback_question:
        exists = session.scalar(
            select(CallerFeedback.id).where(
                CallerFeedback.call_id == call.id,
                CallerFeedback.question == answers.feedback_question,
            )
        )
        if exists is None:
            session.add(
                CallerFeedback(
                    call_id=call.id,
                    question=answers.feedback_question,
                    answer=answers.feedback_answer,
                )
            )


def reason_recording(session: Session, call: Call) -> tuple[str, str | None] | None:
    """The free answer's recording: its ``RecordingSid`` and where Twilio keeps it."""
    row = session.execute(
        select(Recording.recording_sid, Recording.source_url)
        .where(Recording.call_id == call.id, Recording.prompt_key == "reason")
        .order_by(Recording.sequence.desc())
        .limit(1)
    ).first()
    return (row[0], row[1]) if row else None


def given_words(session: Session, recording_sid: str) -> str | None:
    """Words given for a recording instead of recognising it (``simulate-call --as-heard``)."""
    return session.scalar(
        select(GivenTranscript.text).where(GivenTranscript.recording_sid == recording_sid)
    )


def give_words(session: Session, recording_sid: str, text: str) -> None:
    """Store the words a simulated caller is taken to have said for ``recording_sid``."""
    if session.get(GivenTranscript, recording_sid) is None:
        session.add(GivenTranscript(recording_sid=recording_sid, text=text))


def open_identity(key: bytes, call: Call) -> tuple[str, date, str] | None:
    """The call's keyed identity code, birth date and sex, unsealed (never logged); None when
    none was keyed or it cannot be opened."""
    if not call.identity_sealed:
        return None
    try:
        data = json.loads(IdentityVault(key).open(call.identity_sealed, context=call.id))
        return str(data["code"]), date.fromisoformat(data["birth_date"]), str(data["sex"])
    except (IdentityError, ValueError, KeyError):
        return None


def identity_facts(key: bytes, call: Call, *, today: date) -> tuple[int | None, str | None]:
    """Age and sex from the call's sealed identity code, for pretriage (never logged)."""
    opened = open_identity(key, call)
    if opened is None:
        return None, None
    _, birth, sex = opened
    age = today.year - birth.year - ((today.month, today.day) < (birth.month, birth.day))
    return age, sex
