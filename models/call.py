"""A call and everything that comes of it: recordings, transcripts, summary, triage, callback."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from models.base import Base, IdMixin, TimestampMixin, utcnow
from models.encryption import EncryptedJSON, EncryptedText


class CallState:
    """The call's life; the database is the source of truth the worker resumes from."""

    IN_PROGRESS = "in_progress"  # caller on the line
    ENDED = "ended"  # hung up; the pipeline is working on it
    READY = "ready"  # case complete on the worklist
    FAILED = "failed"  # pipeline gave up; the case is still shown with what we have


class RecordingState:
    PENDING = "pending"  # Twilio told us of it; audio not yet fetched
    FETCHED = "fetched"
    TRANSCRIBED = "transcribed"
    SILENT = "silent"  # audio without speech
    MISSING = "missing"  # Twilio had no audio (absent) or it could not be fetched
    FAILED = "failed"  # audio unreadable

    TERMINAL = frozenset({TRANSCRIBED, SILENT, MISSING, FAILED})


class Call(IdMixin, TimestampMixin, Base):
    __tablename__ = "calls"
    __table_args__ = (
        Index("ix_calls_station_worklist", "station_id", "state", "urgency_rank"),
        # The calls of a period at some stations (the dashboard, the region's view), read
        # from the index alone when only the id is needed to join what the call left behind.
        Index("ix_calls_station_started", "station_id", "started_at", "id"),
    )

    station_id: Mapped[str] = mapped_column(ForeignKey("stations.id"))
    call_sid: Mapped[str] = mapped_column(String(64), unique=True)
    account_sid: Mapped[str | None] = mapped_column(String(64), default=None)
    from_number: Mapped[str | None] = mapped_column(EncryptedText, default=None)
    """The caller's number, sealed (checked as E.164 at the edge)."""
    to_number: Mapped[str] = mapped_column(String(32))
    language: Mapped[str] = mapped_column(String(8), default="fi")
    state: Mapped[str] = mapped_column(String(16), default=CallState.IN_PROGRESS)
    dialogue_step: Mapped[str] = mapped_column(String(32), default="greeting")
    twilio_status: Mapped[str | None] = mapped_column(String(32), default=None)
    status_sequence: Mapped[int | None] = mapped_column(Integer, default=None)
    """The ``SequenceNumber`` of the status callback ``twilio_status`` came from."""
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    ended_at: Mapped[datetime | None] = mapped_column(default=None)
    ready_at: Mapped[datetime | None] = mapped_column(default=None)
    duration_s: Mapped[int | None] = mapped_column(Integer, default=None)
    # The effective decision (pretriage, or the latest nurse override), kept on the call so
    # the worklist sorts with one indexed query.
    urgency: Mapped[str | None] = mapped_column(String(16), default=None)
    urgency_rank: Mapped[int] = mapped_column(Integer, default=-1)
    route: Mapped[str | None] = mapped_column(String(16), default=None)
    uncertain: Mapped[bool] = mapped_column(default=False)
    """Shown as "unclear – a nurse assesses", never as non-urgent; sorts before the callbacks
    pretriage is sure of."""
    reason: Mapped[str | None] = mapped_column(String(300), default=None)
    processing_error: Mapped[str | None] = mapped_column(String(500), default=None)
    dialogue: Mapped[dict[str, Any] | None] = mapped_column(EncryptedJSON, default=None)
    """The caller's keypad answers, the words heard in the call and the call's outcome
    (``voicebot.dialogue.Answers``), sealed."""
    identity_sealed: Mapped[str | None] = mapped_column(Text, default=None)
    """The keyed identity code, birth date and sex, sealed (AES-GCM, the call id as context)."""
    transcripts_deleted_at: Mapped[datetime | None] = mapped_column(default=None)
    """When retention deleted what was heard (``voicebot/retention.py``)."""
    anonymised_at: Mapped[datetime | None] = mapped_column(default=None)
    """When retention removed all that identifies the caller or tells their matter."""
    fhir_exported_at: Mapped[datetime | None] = mapped_column(default=None)
    """When the case reached the county's FHIR server (``integrations/fhir``)."""
    fhir_error: Mapped[str | None] = mapped_column(String(300), default=None)
    """Why the export failed for good (shown on the case page; never health data)."""

    recordings: Mapped[list[Recording]] = relationship(
        back_populates="call", order_by="Recording.sequence"
    )


class CallEvent(IdMixin, Base):
    """A Twilio status or recording callback as received (identity-free fields only)."""

    __tablename__ = "call_events"

    call_id: Mapped[str | None] = mapped_column(ForeignKey("calls.id"), default=None, index=True)
    call_sid: Mapped[str] = mapped_column(String(64), index=True)
    kind: Mapped[str] = mapped_column(String(32))
    dedupe_key: Mapped[str] = mapped_column(String(200), unique=True)
    status: Mapped[str | None] = mapped_column(String(32), default=None)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    received_at: Mapped[datetime] = mapped_column(default=utcnow)


class Recording(IdMixin, TimestampMixin, Base):
    """One recorded answer of the caller."""

    __tablename__ = "recordings"
    __table_args__ = (UniqueConstraint("call_id", "sequence"),)

    call_id: Mapped[str] = mapped_column(ForeignKey("calls.id"), index=True)
    recording_sid: Mapped[str] = mapped_column(String(64), unique=True)
    sequence: Mapped[int] = mapped_column(Integer)
    prompt_key: Mapped[str] = mapped_column(String(32))
    source_url: Mapped[str | None] = mapped_column(String(500), default=None)
    duration_s: Mapped[int | None] = mapped_column(Integer, default=None)
    state: Mapped[str] = mapped_column(String(16), default=RecordingState.PENDING)
    storage_key: Mapped[str | None] = mapped_column(String(300), default=None)
    content_type: Mapped[str | None] = mapped_column(String(64), default=None)
    size_bytes: Mapped[int | None] = mapped_column(Integer, default=None)
    sha256: Mapped[str | None] = mapped_column(String(64), default=None)
    error: Mapped[str | None] = mapped_column(String(500), default=None)

    call: Mapped[Call] = relationship(back_populates="recordings")
    transcript: Mapped[Transcript | None] = relationship(back_populates="recording")


class Transcript(IdMixin, Base):
    __tablename__ = "transcripts"

    recording_id: Mapped[str] = mapped_column(ForeignKey("recordings.id"), unique=True)
    call_id: Mapped[str] = mapped_column(ForeignKey("calls.id"), index=True)
    engine: Mapped[str] = mapped_column(String(32))
    model: Mapped[str] = mapped_column(String(200))
    language: Mapped[str] = mapped_column(String(8))
    language_probability: Mapped[float | None] = mapped_column(Float, default=None)
    text: Mapped[str] = mapped_column(EncryptedText)
    confidence: Mapped[float | None] = mapped_column(Float, default=None)
    audio_duration_s: Mapped[float] = mapped_column(Float, default=0.0)
    processing_s: Mapped[float] = mapped_column(Float, default=0.0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    recording: Mapped[Recording] = relationship(back_populates="transcript")
    segments: Mapped[list[TranscriptSegment]] = relationship(
        back_populates="transcript", order_by="TranscriptSegment.seq", cascade="all, delete-orphan"
    )


class GivenTranscript(Base):
    """Words given for a recording instead of recognised from it (``simulate-call
    --as-heard``, for demos and training). Only the simulator writes these, with the database
    access it shares with the app; the transcript then records ``engine == "given"``."""

    __tablename__ = "given_transcripts"

    recording_sid: Mapped[str] = mapped_column(String(64), primary_key=True)
    text: Mapped[str] = mapped_column(EncryptedText)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class TranscriptSegment(IdMixin, Base):
    __tablename__ = "transcript_segments"
    __table_args__ = (UniqueConstraint("transcript_id", "seq"),)

    transcript_id: Mapped[str] = mapped_column(ForeignKey("transcripts.id", ondelete="CASCADE"))
    seq: Mapped[int] = mapped_column(Integer)
    start_s: Mapped[float] = mapped_column(Float)
    end_s: Mapped[float] = mapped_column(Float)
    text: Mapped[str] = mapped_column(EncryptedText)
    avg_logprob: Mapped[float | None] = mapped_column(Float, default=None)
    no_speech_prob: Mapped[float | None] = mapped_column(Float, default=None)

    transcript: Mapped[Transcript] = relationship(back_populates="segments")


class Summary(IdMixin, TimestampMixin, Base):
    """The nurse summary of a call; ``data`` is the summary-schema JSON with evidence."""

    __tablename__ = "summaries"

    call_id: Mapped[str] = mapped_column(ForeignKey("calls.id"), unique=True)
    schema_version: Mapped[int] = mapped_column(Integer, default=1)
    generator: Mapped[str] = mapped_column(String(64))
    source_text: Mapped[str] = mapped_column(EncryptedText)
    reason: Mapped[str] = mapped_column(String(300))
    note: Mapped[str] = mapped_column(EncryptedText)
    data: Mapped[dict[str, Any]] = mapped_column(EncryptedJSON)


class TriageDecision(IdMixin, Base):
    """Pretriage's decision (one per call) and any nurse overrides after it; all are kept."""

    __tablename__ = "triage_decisions"

    call_id: Mapped[str] = mapped_column(ForeignKey("calls.id"), index=True)
    source: Mapped[str] = mapped_column(String(16))  # "pretriage" | "nurse"
    urgency: Mapped[str] = mapped_column(String(16))
    route: Mapped[str] = mapped_column(String(16))
    digital_path: Mapped[str | None] = mapped_column(String(64), default=None)
    reasons: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    uncertain: Mapped[bool] = mapped_column(default=False)
    """The matter was not understood well enough to trust a non-urgent route (policy v2)."""
    uncertain_reasons: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    ruleset_version: Mapped[str] = mapped_column(String(64))
    decided_by: Mapped[str | None] = mapped_column(ForeignKey("users.id"), default=None)
    comment: Mapped[str | None] = mapped_column(Text, default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Callback(IdMixin, TimestampMixin, Base):
    """A promised nurse callback; one per call."""

    __tablename__ = "callbacks"

    call_id: Mapped[str] = mapped_column(ForeignKey("calls.id"), unique=True)
    station_id: Mapped[str] = mapped_column(ForeignKey("stations.id"), index=True)
    phone_number: Mapped[str | None] = mapped_column(EncryptedText, default=None)
    state: Mapped[str] = mapped_column(String(16), default="open")
    window_start: Mapped[datetime | None] = mapped_column(default=None)
    window_end: Mapped[datetime | None] = mapped_column(default=None)
    outcome: Mapped[str | None] = mapped_column(String(32), default=None)
    completed_at: Mapped[datetime | None] = mapped_column(default=None)
    completed_by: Mapped[str | None] = mapped_column(ForeignKey("users.id"), default=None)


class SummaryFeedback(IdMixin, Base):
    """A nurse's word on whether the summary was used as is, edited or not used."""

    __tablename__ = "summary_feedback"

    call_id: Mapped[str] = mapped_column(ForeignKey("calls.id"), index=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"))
    usage: Mapped[str] = mapped_column(String(16))
    comment: Mapped[str | None] = mapped_column(Text, default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class CallerFeedback(IdMixin, Base):
    """The caller's one-keypress answer to a pilot survey question."""

    __tablename__ = "caller_feedback"
    __table_args__ = (UniqueConstraint("call_id", "question"),)

    call_id: Mapped[str] = mapped_column(ForeignKey("calls.id"))
    question: Mapped[str] = mapped_column(String(32))
    answer: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
