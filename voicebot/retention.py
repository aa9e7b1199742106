"""Retention: health data is kept only as long as a station needs it, then deleted daily.

Three kinds, each with its own time from the end of the call (``ESITIETO_RETENTION__*``):

* **recordings** — the audio files (the transcript stays);
* **transcripts** — what was recognised or given, the words heard in the call and the
  summary's copy of them (the nurse note stays);
* **cases** — everything that identifies the caller or tells their matter: the note and
  summary, the pretriage reasons (they quote the caller), numbers, the sealed identity code,
  the keypad answers and comments. What is left is anonymous: station, times, urgency, route,
  outcome and feedback scores, so the statistics still count the call.

Only finished cases (ready or failed) are touched. Each run leaves one audit record with what
it deleted (counts and cut-off times, never content). Deletion is idempotent: a run stopped
half-way is completed by the next one.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from integrations.storage import Storage
from models import (
    AuditEvent,
    Call,
    Callback,
    CallState,
    GivenTranscript,
    Recording,
    Summary,
    SummaryFeedback,
    Transcript,
    TriageDecision,
)

log = logging.getLogger(__name__)

FINISHED = (CallState.READY, CallState.FAILED)
BATCH = 500


@dataclass(frozen=True)
class RetentionPolicy:
    """Days from the end of the call; None keeps that kind for good."""

    recordings_days: int | None
    transcripts_days: int | None
    cases_days: int | None


@dataclass
class RetentionReport:
    recordings: int = 0
    transcripts: int = 0
    cases: int = 0


def apply_retention(
    session: Callable[[], AbstractContextManager[Session]],
    storage: Storage,
    policy: RetentionPolicy,
    now: datetime,
) -> RetentionReport:
    """Delete what has outlived its retention time; returns what was deleted."""
    report = RetentionReport()
    cutoffs = {
        kind: now - timedelta(days=days)
        for kind, days in asdict(policy).items()
        if days is not None
    }
    # When the case goes, its recordings and transcripts go with it.
    case_cutoff = cutoffs.get("cases_days")
    rec_cutoff = _latest(cutoffs.get("recordings_days"), case_cutoff)
    text_cutoff = _latest(cutoffs.get("transcripts_days"), case_cutoff)
    if rec_cutoff is not None:
        report.recordings = _delete_recordings(session, storage, rec_cutoff)
    if text_cutoff is not None:
        report.transcripts = _in_batches(session, text_cutoff, now, _delete_transcripts)
    if case_cutoff is not None:
        report.cases = _in_batches(session, case_cutoff, now, _anonymise_case)
    with session() as s:
        s.add(
            AuditEvent(
                action="retention_delete",
                object_type="retention",
                detail={
                    **asdict(report),
                    "cutoffs": {k: v.isoformat() for k, v in cutoffs.items()},
                },
            )
        )
    if report.recordings or report.transcripts or report.cases:
        log.info(
            "retention: deleted %d recordings, the transcripts of %d calls, anonymised %d cases",
            report.recordings,
            report.transcripts,
            report.cases,
        )
    return report


def _latest(*cutoffs: datetime | None) -> datetime | None:
    given = [c for c in cutoffs if c is not None]
    return max(given) if given else None


def _ended_before(cutoff: datetime) -> object:
    return (Call.state.in_(FINISHED)) & (func.coalesce(Call.ended_at, Call.started_at) < cutoff)


def _delete_recordings(
    session: Callable[[], AbstractContextManager[Session]], storage: Storage, cutoff: datetime
) -> int:
    deleted = 0
    while True:
        with session() as s:
            rows = s.execute(
                select(Recording.id, Recording.storage_key)
                .join(Call, Recording.call_id == Call.id)
                .where(Recording.storage_key.is_not(None), _ended_before(cutoff))  # type: ignore[arg-type]
                .limit(BATCH)
            ).all()
            for rec_id, key in rows:
                storage.delete(str(key))  # the file first: a crash leaves a key to a missing file
                s.execute(update(Recording).where(Recording.id == rec_id).values(storage_key=None))
            deleted += len(rows)
        if len(rows) < BATCH:
            return deleted


def _in_batches(
    session: Callable[[], AbstractContextManager[Session]],
    cutoff: datetime,
    now: datetime,
    step: Callable[[Session, Call, datetime], None],
) -> int:
    """Run ``step`` on every finished call older than ``cutoff`` it has not yet run on (each
    step stamps the call, so the selection shrinks and a stopped run resumes)."""
    stamp = Call.transcripts_deleted_at if step is _delete_transcripts else Call.anonymised_at
    done = 0
    while True:
        with session() as s:
            calls = s.scalars(
                select(Call).where(_ended_before(cutoff), stamp.is_(None)).limit(BATCH)  # type: ignore[arg-type]
            ).all()
            for call in calls:
                step(s, call, now)
            done += len(calls)
        if len(calls) < BATCH:
            return done


def _delete_transcripts(s: Session, call: Call, now: datetime) -> None:
    sids = [r.recording_sid for r in call.recordings]
    for transcript in s.scalars(select(Transcript).where(Transcript.call_id == call.id)):
        s.delete(transcript)  # its segments go with it
    if sids:
        s.execute(delete(GivenTranscript).where(GivenTranscript.recording_sid.in_(sids)))
    summary = s.scalar(select(Summary).where(Summary.call_id == call.id))
    if summary is not None:
        summary.source_text = ""
    if call.dialogue and call.dialogue.get("heard") is not None:
        call.dialogue = {**call.dialogue, "heard": None}
    call.transcripts_deleted_at = now


def _anonymise_case(s: Session, call: Call, now: datetime) -> None:
    if call.transcripts_deleted_at is None:
        _delete_transcripts(s, call, now)
    s.execute(delete(Summary).where(Summary.call_id == call.id))
    s.execute(
        update(TriageDecision)
        .where(TriageDecision.call_id == call.id)
        .values(reasons=[], uncertain_reasons=[], comment=None)
    )
    s.execute(
        update(SummaryFeedback).where(SummaryFeedback.call_id == call.id).values(comment=None)
    )
    s.execute(update(Callback).where(Callback.call_id == call.id).values(phone_number=None))
    call.from_number = call.identity_sealed = call.reason = call.processing_error = None
    call.dialogue = None
    call.anonymised_at = now
