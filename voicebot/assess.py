"""The free answer, transcribed and pretriaged while the caller waits (within a time budget).

What comes out is only used to talk to the caller: the emergency advice, a follow-up question,
the outcome. The after-call pipeline still transcribes every recording and makes the case's
own decision, which can only add urgency to what the caller was told.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from integrations.twilio import RecordingFetchError, RecordingNotReady
from pretriage.detector import Detection, DetectorError, SignDetector
from pretriage.engine import decide
from pretriage.ruleset import default_ruleset
from pretriage.schemas import TriageDecision
from summarizer.speech.audio import AudioError
from summarizer.speech.stt import (
    SpeechToText,
    TranscriptionError,
    average_confidence,
    transcribe_within,
)
from summarizer.text.extract import summarize
from summarizer.text.schemas import CallContext, Summary
from voicebot.deps import FetchRecording
from voicebot.dialogue import Answers, Assessment

log = logging.getLogger(__name__)

FETCH_RETRY_S = 0.25


@dataclass(frozen=True)
class Heard:
    text: str
    confidence: float | None


def hear(
    fetch: FetchRecording,
    engine: SpeechToText,
    recording_url: str,
    *,
    language: str,
    budget_s: float,
) -> Heard | None:
    """Fetch and transcribe the answer within ``budget_s``, the download included; None when
    it is not done in time or cannot be done (the caller then goes to a nurse)."""
    deadline = time.monotonic() + budget_s
    data: bytes | None = None
    while data is None:
        try:
            data = fetch(recording_url, timeout_s=deadline - time.monotonic()).data
        except RecordingNotReady:
            if time.monotonic() + FETCH_RETRY_S >= deadline:
                return None
            time.sleep(FETCH_RETRY_S)
        except RecordingFetchError as exc:
            log.warning("in-call fetch failed: %s", type(exc).__name__)
            return None
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        return None
    try:
        transcript = transcribe_within(engine, data, budget_s=remaining, language=language)
    except (AudioError, TranscriptionError) as exc:
        log.warning("in-call transcription failed: %s", type(exc).__name__)
        return None
    if transcript is None:
        return None
    return Heard(transcript.text, average_confidence(transcript))


def context_of(answers: Answers, age: int | None, sex: str | None) -> CallContext:
    about_caller = answers.for_whom in (None, "self")
    child_age = answers.child_age if answers.for_whom == "child" else None
    return CallContext.model_validate(
        {
            "age": child_age if child_age is not None else (age if about_caller else None),
            "sex": sex if about_caller else None,
            "language": answers.language,
            "for_whom": answers.for_whom,
            "emergency_key": bool(answers.emergency_key),
            "wants_nurse": answers.wants_nurse,
        }
    )  # fmt: skip


def assess(
    answers: Answers,
    heard: Heard | None,
    context: CallContext,
    enabled_paths: dict[str, str | None],
    detector: SignDetector | None = None,
) -> tuple[Assessment, TriageDecision | None]:
    """In-call pretriage of what was heard plus the keypad answers: the rules, then (unless
    they found an emergency) the detector by meaning. Words the machine did not understand go
    to a nurse, never to "non-urgent"; a possible emergency sign is asked back."""
    if heard is None or not heard.text.strip():
        return Assessment(urgency=None, route=None), None
    summary = summarize(heard.text, context, note_language=answers.language)
    _add_keyed(summary, answers)

    def triage(detection: Detection | None) -> TriageDecision:
        return decide(
            summary,
            heard.text,
            context,
            asr_confidence=heard.confidence,
            enabled_paths=enabled_paths,
            language=answers.language,
            detection=detection,
        )

    decision = triage(None)
    if detector is not None and decision.urgency != "emergency":
        try:
            decision = triage(detector.detect(heard.text, summary))
        except DetectorError as exc:
            log.warning("in-call sign detection failed: %s", exc)
            return Assessment(urgency=None, route=None), decision
    unsure = (
        heard.confidence is not None and heard.confidence < default_ruleset().min_asr_confidence
    )
    if (unsure or decision.uncertain) and decision.urgency == "non_urgent":
        return Assessment(urgency=None, route=None), decision
    missing = missing_facts(summary, context, answers) if decision.urgency == "non_urgent" else ()
    assessment = Assessment(
        urgency=decision.urgency,
        route=decision.route,
        missing=missing,
        digital_path=decision.digital_path,
        confirm_sign=decision.confirm_sign,
    )
    return assessment, decision


def missing_facts(summary: Summary, context: CallContext, answers: Answers) -> tuple[str, ...]:
    """Follow-ups whose answer can change a non-urgent decision: who the call is about and a
    child's age (adult-only paths, child rules), how long (duration limits), how high the
    fever (high-fever rules). Facts the caller already gave, by voice or keypad, are not asked."""
    out = []
    said_whom = "for_whom" in summary.evidence or context.for_whom is not None
    if not said_whom and context.age is None and summary.age is None:
        out.append("who")
    if (answers.for_whom == "child" or summary.for_whom == "child") and summary.age is None:
        out.append("child_age")
    if summary.duration_days is None and summary.request == "symptom":
        out.append("duration")
    if summary.has("A03") and summary.temperature_c is None:
        out.append("temperature")
    return tuple(out)


def _add_keyed(summary: Summary, answers: Answers) -> None:
    """Keypad answers fill what the words did not say (the words win when both exist)."""
    if summary.duration_days is None and answers.duration_days is not None:
        summary.duration_days = answers.duration_days
    if summary.temperature_c is None and answers.temperature_c is not None:
        summary.temperature_c = answers.temperature_c
    if answers.for_whom == "child" and summary.age is None and answers.child_age is not None:
        summary.age = answers.child_age
