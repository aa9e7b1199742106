"""The after-call pipeline as durable jobs: fetch → transcribe → summarise + pretriage → worklist.

Each step reads its input from the database, does its work outside any transaction (a
transcription can take seconds), and writes its result in one transaction that also queues
the next step. A step that finds its work already done returns, so a retried or duplicated
job changes nothing. When a step gives up, the recording or call is marked so and the case
still reaches the nurse with whatever there is: a call is never lost.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import delete, select

from integrations.jobs import GiveUp, JobSpec, RetryLater, enqueue
from integrations.twilio import RecordingFetchError, RecordingNotReady, TwilioApiError
from models import (
    Call,
    CallState,
    Job,
    JobKind,
    JobState,
    Recording,
    RecordingState,
    Station,
    Summary,
    Transcript,
    TranscriptSegment,
)
from pretriage.engine import describe
from pretriage.service import fall_back_to_callback, offered_paths, settle_case
from summarizer.speech.audio import AudioError
from summarizer.speech.schemas import Transcript as SttTranscript
from summarizer.speech.schemas import TranscriptSegment as SttSegment
from summarizer.speech.stt import average_confidence
from summarizer.text.schemas import CallContext
from voicebot import service as call_service
from voicebot.assess import context_of
from voicebot.deps import VoicebotDeps
from voicebot.dialogue import Answers
from voicebot.prompts import catalogue
from voicebot.service import identity_facts

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _FinalizeInputs:
    text: str
    context: CallContext
    asr_confidence: float | None
    note_language: str
    headings: dict[str, str]
    enabled_paths: dict[str, str | None]


STALLED_AFTER_S = 60.0
"""An ended call is looked at once nothing has happened to it for this long."""
RECONCILE_AFTER_S = 120.0
"""A call younger than this is not asked about: it is most likely still going."""
RECONCILE_BATCH = 200


class Pipeline:
    def __init__(self, deps: VoicebotDeps) -> None:
        self.deps = deps

    def specs(self) -> dict[str, JobSpec]:
        return {
            JobKind.FETCH_RECORDING: JobSpec(
                self.fetch_recording, on_give_up=self._recording_gave_up, lane="fetch"
            ),
            JobKind.TRANSCRIBE: JobSpec(
                self.transcribe,
                on_give_up=self._recording_gave_up,
                max_attempts=3,
                lane="transcribe",
            ),
            JobKind.FINALIZE_CALL: JobSpec(self.finalize_call, on_give_up=self._call_gave_up),
            JobKind.SEND_SMS: JobSpec(self.send_sms, on_give_up=self._sms_gave_up),
            JobKind.EXPORT_FHIR: JobSpec(
                self.export_fhir, on_give_up=self._fhir_gave_up, max_attempts=12, lane="fetch"
            ),
        }

    # -- the case into the county's record system ---------------------------------------------

    def export_fhir(self, call_id: str) -> None:
        """The finished case as a FHIR transaction to the county's server. Idempotent: every
        entry is a conditional create, so a retry after a lost answer adds nothing."""
        from integrations.fhir.bundle import FhirBuildError, build_bundle
        from integrations.fhir.client import FhirError
        from voicebot.export import NotExportable, case_record

        post = self.deps.export_fhir
        if post is None:
            return
        with self.deps.session() as session:
            call = session.get(Call, call_id)
            if call is None:
                raise GiveUp("no such call")
            try:
                record = case_record(session, call, self.deps.identity_key)
                bundle = build_bundle(record, case_system=self.deps.fhir_case_system)
            except (NotExportable, FhirBuildError) as exc:
                raise GiveUp(str(exc)) from exc
        try:
            post(bundle)
        except FhirError as exc:
            if exc.retryable:
                raise RetryLater(str(exc)) from exc
            raise GiveUp(str(exc)) from exc
        with self.deps.session() as session:
            call = session.get(Call, call_id)
            if call is not None:
                call.fhir_exported_at = self.deps.clock()
                call.fhir_error = None

    def _fhir_gave_up(self, call_id: str, error: str) -> None:
        """Shown on the case page; the case itself stays on the worklist as it was."""
        log.warning("FHIR export of case %s failed for good: %s", call_id, error)
        with self.deps.session() as session:
            call = session.get(Call, call_id)
            if call is not None:
                call.fhir_error = error[:300]

    # -- the caller's SMS link ---------------------------------------------------------------

    def send_sms(self, call_id: str) -> None:
        """The digital path's link, which the caller accepted during the call; sent once."""
        from integrations.sms import SmsError
        from voicebot.dialogue import Answers
        from voicebot.prompts import catalogue

        with self.deps.session() as session:
            call = session.get(Call, call_id)
            station = session.get(Station, call.station_id) if call else None
            if call is None or station is None:
                raise GiveUp("no such call")
            answers = Answers.from_json(call.dialogue)
            if answers.sms_sid or not answers.sms_accepted or not answers.digital_path:
                return
            link = offered_paths(station).get(answers.digital_path)
            to, name = call.from_number, station.name
        sender = self.deps.sms
        if sender is None or not link or not to:
            raise GiveUp("no SMS sender, link or number")
        cat = catalogue(answers.language)
        body = cat.text(
            "sms_body", station=name, service=cat.services.get(answers.digital_path, ""), link=link
        )
        try:
            result = sender.send(to, body)
        except SmsError as exc:
            if exc.retryable:
                raise RetryLater(str(exc)) from exc
            raise GiveUp(str(exc)) from exc
        except ValueError as exc:
            raise GiveUp(str(exc)) from exc
        with self.deps.session() as session:
            call = session.get(Call, call_id)
            if call is not None:
                answers = Answers.from_json(call.dialogue)
                answers.sms_sid = result.sid
                call.dialogue = answers.to_json()

    def _sms_gave_up(self, call_id: str, error: str) -> None:
        """No SMS could be sent: a nurse calls back instead, so the caller is not left waiting."""
        with self.deps.session() as session:
            call = session.get(Call, call_id)
            if call is None:
                return
            fall_back_to_callback(session, call, self.deps.clock())

    # -- fetch ---------------------------------------------------------------------------

    def fetch_recording(self, recording_id: str) -> None:
        with self.deps.session() as session:
            rec = session.get(Recording, recording_id)
            if rec is None:
                raise GiveUp("no such recording")
            if rec.state != RecordingState.PENDING:
                return
            url = rec.source_url
            call_sid = session.get(Call, rec.call_id).call_sid  # type: ignore[union-attr]
        if not url:
            raise RetryLater("recording URL not known yet")
        try:
            fetched = self.deps.fetch_recording(url)
        except RecordingNotReady as exc:
            raise RetryLater(str(exc)) from exc
        except RecordingFetchError as exc:
            raise RetryLater(str(exc)) from exc
        ext = "mp3" if "mpeg" in fetched.content_type else "wav"
        key = f"{call_sid}/{recording_id}.{ext}"
        self.deps.storage.put(key, fetched.data)
        with self.deps.session() as session:
            rec = session.get(Recording, recording_id)
            if rec is None or rec.state != RecordingState.PENDING:
                return
            rec.state = RecordingState.FETCHED
            rec.storage_key = key
            rec.content_type = fetched.content_type
            rec.size_bytes = len(fetched.data)
            rec.sha256 = hashlib.sha256(fetched.data).hexdigest()
            enqueue(session, JobKind.TRANSCRIBE, rec.id)

    # -- transcribe ------------------------------------------------------------------------

    def transcribe(self, recording_id: str) -> None:
        with self.deps.session() as session:
            rec = session.get(Recording, recording_id)
            if rec is None:
                raise GiveUp("no such recording")
            if rec.state != RecordingState.FETCHED or not rec.storage_key:
                return
            call = session.get(Call, rec.call_id)
            language = call.language if call else None
            key = rec.storage_key
            given = call_service.given_words(session, rec.recording_sid)
        try:
            if given is not None:
                transcript = given_transcript(given, language, rec.duration_s)
            else:
                audio = self.deps.storage.get(key)
                transcript = self.deps.speech_to_text().transcribe(audio, language=language)
        except AudioError as exc:
            self._finish_recording(recording_id, RecordingState.FAILED, error=str(exc))
            return
        state = RecordingState.SILENT if transcript.is_empty else RecordingState.TRANSCRIBED
        with self.deps.session() as session:
            rec = session.get(Recording, recording_id)
            if rec is None or rec.state != RecordingState.FETCHED:
                return
            session.execute(delete(Transcript).where(Transcript.recording_id == rec.id))
            row = Transcript(
                recording_id=rec.id,
                call_id=rec.call_id,
                engine=transcript.engine,
                model=transcript.model[:200],
                language=transcript.language,
                language_probability=transcript.language_probability,
                text=transcript.text,
                confidence=average_confidence(transcript),
                audio_duration_s=transcript.audio_duration_s,
                processing_s=transcript.processing_s,
            )
            row.segments = [
                TranscriptSegment(
                    seq=i,
                    start_s=s.start,
                    end_s=s.end,
                    text=s.text,
                    avg_logprob=s.avg_logprob,
                    no_speech_prob=s.no_speech_prob,
                )
                for i, s in enumerate(transcript.segments)
            ]
            session.add(row)
            rec.state = state
            enqueue(session, JobKind.FINALIZE_CALL, rec.call_id)
        log.info(
            "recording %s transcribed: %.1fs audio in %.2fs",
            recording_id,
            transcript.audio_duration_s,
            transcript.processing_s,
        )

    def _finish_recording(self, recording_id: str, state: str, *, error: str) -> None:
        with self.deps.session() as session:
            rec = session.get(Recording, recording_id)
            if rec is None or rec.state in RecordingState.TERMINAL:
                return
            rec.state = state
            rec.error = error[:500]
            enqueue(session, JobKind.FINALIZE_CALL, rec.call_id)

    def _recording_gave_up(self, recording_id: str, error: str) -> None:
        self._finish_recording(recording_id, RecordingState.MISSING, error=error)

    # -- finalize --------------------------------------------------------------------------

    def finalize_call(self, call_id: str) -> None:
        """Summarise and pretriage once the call has ended and every recording is settled.

        The analysis runs between two transactions: a configured language model may take
        seconds, and no row stays locked meanwhile."""
        inputs = self._finalize_inputs(call_id)
        if inputs is None:
            return
        result = self.deps.analyze(
            call_id,
            inputs.text,
            inputs.context,
            asr_confidence=inputs.asr_confidence,
            note_language=inputs.note_language,
            headings=inputs.headings,
            enabled_paths=inputs.enabled_paths,
        )
        text = inputs.text
        with self.deps.session() as session:
            call = session.get(Call, call_id)
            if call is None:
                raise GiveUp("no such call")
            summary, decision = result.summary, result.triage
            data = summary.model_dump(mode="json")
            row = session.scalar(select(Summary).where(Summary.call_id == call.id))
            if row is None:
                row = Summary(call_id=call.id, generator=result.generator)
                session.add(row)
            row.generator = result.generator
            row.source_text = text
            row.reason = summary.reason[:300]
            row.note = summary.note
            row.data = data
            row.schema_version = summary.schema_version

            call.reason = summary.reason[:300]
            told = Answers.from_json(call.dialogue).outcome
            settle_case(session, call, decision, told=told, now=self.deps.clock())
            if call.route == "callback" and decision.route == "callback":
                # The note says when the nurse will call, not "the same day" (after closing
                # time that is the next opening).
                station = session.get(Station, call.station_id)
                if station is not None:
                    window = call_service.callback_window_text(
                        session, call, station, catalogue(inputs.note_language), self.deps.clock()
                    )
                    row.note = row.note.replace(
                        describe(decision, inputs.note_language),
                        describe(decision, inputs.note_language, window=window),
                    )
            call.state = CallState.READY
            call.ready_at = call.ready_at or self.deps.clock()
            call.processing_error = None
            if self.deps.export_fhir is not None:
                enqueue(session, JobKind.EXPORT_FHIR, call.id)

    def _finalize_inputs(self, call_id: str) -> _FinalizeInputs | None:
        """What the analysis needs, or None while the call or a recording is still going."""
        with self.deps.session() as session:
            call = session.get(Call, call_id)
            if call is None:
                raise GiveUp("no such call")
            if call.state == CallState.IN_PROGRESS:
                return None  # the status callback queues this again at hang-up
            if any(r.state not in RecordingState.TERMINAL for r in call.recordings):
                return None  # each recording queues this again when it settles
            transcripts = [r.transcript for r in call.recordings if r.transcript is not None]
            confidences = [t.confidence for t in transcripts if t.confidence is not None]
            station = session.get(Station, call.station_id)
            if station is None:
                raise GiveUp("the call's station is gone")
            paths = offered_paths(station)
            answers = Answers.from_json(call.dialogue)
            age, sex = identity_facts(self.deps.identity_key, call, today=self.deps.clock().date())
            return _FinalizeInputs(
                text=" ".join(t.text.strip() for t in transcripts if t.text.strip()),
                context=context_of(answers, age, sex)
                if call.dialogue
                else CallContext.model_validate(
                    {"language": call.language, "age": age, "sex": sex}
                ),
                asr_confidence=min(confidences) if confidences else None,
                note_language=station.documentation_language,
                headings=dict(station.note_headings or {}),
                enabled_paths=paths,
            )

    def _call_gave_up(self, call_id: str, error: str) -> None:
        """Summarising failed for good: the case still goes to a nurse for a callback."""
        with self.deps.session() as session:
            call = session.get(Call, call_id)
            if call is None:
                return
            call.state = CallState.FAILED
            call.processing_error = error[:500]
            if call.route is None:
                fall_back_to_callback(session, call, self.deps.clock())

    # -- housekeeping ----------------------------------------------------------------------

    def sweep_abandoned_calls(self) -> int:
        """Close calls whose final status callback never came, so they reach a nurse."""
        now = self.deps.clock()
        limit = now - timedelta(seconds=self.deps.abandoned_call_after_s)
        with self.deps.session() as session:
            calls = session.scalars(
                select(Call).where(Call.state == CallState.IN_PROGRESS, Call.started_at < limit)
            ).all()
            for call in calls:
                call_service.end_call(
                    session, call, twilio_status="abandoned", duration_s=None, now=now
                )
            return len(calls)

    def reconcile_with_twilio(self, *, older_than_s: float = RECONCILE_AFTER_S) -> int:
        """Ask Twilio how every call we still think is in progress stands, and end those that
        have ended: a final status callback lost while the server was down (or on the way)
        would otherwise leave the case without summary or pretriage until the abandoned-call
        sweep. Runs at worker start and every few minutes; returns the number of calls ended.
        """
        lookup = self.deps.call_at_twilio
        if lookup is None:
            return 0
        now = self.deps.clock()
        with self.deps.session() as session:
            sids = session.scalars(
                select(Call.call_sid)
                .where(
                    Call.state == CallState.IN_PROGRESS,
                    Call.started_at < now - timedelta(seconds=older_than_s),
                )
                .order_by(Call.started_at)
                .limit(RECONCILE_BATCH)
            ).all()
        ended = 0
        for sid in sids:
            try:
                at_twilio = lookup(sid)
            except TwilioApiError as exc:
                log.warning("reconciliation with Twilio stopped: %s", exc)
                break  # an outage: the next round tries again
            if at_twilio is None or not at_twilio.ended:
                continue  # still going, or a call Twilio never had (the simulator's)
            with self.deps.session() as session:
                call = call_service.find_call(session, sid)
                if call is None or call.state != CallState.IN_PROGRESS:
                    continue  # the callback arrived meanwhile
                call_service.store_event(
                    session,
                    kind="reconciled",
                    dedupe_key=f"reconciled:{sid}",
                    call=call,
                    call_sid=sid,
                    form={"CallStatus": at_twilio.status},
                    status=at_twilio.status,
                )
                call_service.end_call(
                    session,
                    call,
                    twilio_status=at_twilio.status,
                    duration_s=at_twilio.duration_s,
                    now=self.deps.clock(),
                )
                ended += 1
        if ended:
            log.warning("ended %d call(s) whose final status callback never came", ended)
        return ended

    def sweep_stalled_cases(self, *, after_s: float = STALLED_AFTER_S) -> int:
        """Set going again any ended call that waits for nothing: no job of it queued or
        running, yet not ready. Each step queues the next, so this should never find one; if
        a wake-up is lost all the same (a crash between two commits, an outage), the case
        still reaches a nurse. A recording Twilio never reported is given up on after the
        abandoned-call time."""
        now = self.deps.clock()
        healed = 0
        with self.deps.session() as session:
            calls = session.scalars(
                select(Call).where(
                    Call.state == CallState.ENDED, Call.ended_at < now - timedelta(seconds=after_s)
                )
            ).all()
            for call in calls:
                keys = [call.id, *(r.id for r in call.recordings)]
                active = session.scalar(
                    select(Job.id)
                    .where(Job.key.in_(keys), Job.state.in_([JobState.QUEUED, JobState.RUNNING]))
                    .limit(1)
                )
                if active is not None:
                    continue
                long_ago = call.ended_at is not None and call.ended_at < now - timedelta(
                    seconds=self.deps.abandoned_call_after_s
                )
                for rec in call.recordings:
                    if rec.state == RecordingState.PENDING and rec.source_url:
                        enqueue(session, JobKind.FETCH_RECORDING, rec.id)
                    elif rec.state == RecordingState.PENDING and long_ago:
                        rec.state = RecordingState.MISSING
                        rec.error = "Twilio never reported the recording"
                    elif rec.state == RecordingState.FETCHED:
                        enqueue(session, JobKind.TRANSCRIBE, rec.id)
                enqueue(session, JobKind.FINALIZE_CALL, call.id)
                healed += 1
        if healed:
            log.warning("set %d stalled case(s) going again", healed)
        return healed


GIVEN = "given"
"""The engine name of a transcript whose words were given, not recognised."""


def given_transcript(text: str, language: str | None, duration_s: int | None) -> SttTranscript:
    """A transcript of words given for a recording: one segment over the whole recording, no
    recognition confidence (nothing was recognised)."""
    end = float(duration_s or 1)
    return SttTranscript(
        text=text,
        language=language or "",
        segments=[SttSegment(start=0.0, end=end, text=text)],
        audio_duration_s=end,
        engine=GIVEN,
        model=GIVEN,
    )
