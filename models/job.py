"""Durable jobs: the pipeline's units of work, claimed with a lease (see esitieto.worker)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, IdMixin, TimestampMixin, utcnow


class JobState:
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


class Job(IdMixin, TimestampMixin, Base):
    __tablename__ = "jobs"
    __table_args__ = (
        UniqueConstraint("kind", "key"),
        Index("ix_jobs_due", "state", "run_after"),
    )

    kind: Mapped[str] = mapped_column(String(32))
    key: Mapped[str] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(16), default=JobState.QUEUED)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer, default=6)
    run_after: Mapped[datetime] = mapped_column(default=utcnow)
    locked_by: Mapped[str | None] = mapped_column(String(64), default=None)
    locked_until: Mapped[datetime | None] = mapped_column(default=None)
    rerun: Mapped[bool] = mapped_column(Boolean, default=False)
    """Set when the job is enqueued again while running: it runs once more afterwards."""
    last_error: Mapped[str | None] = mapped_column(Text, default=None)
    finished_at: Mapped[datetime | None] = mapped_column(default=None)


class JobKind:
    """The pipeline's job kinds (stored in ``jobs.kind``)."""

    FETCH_RECORDING = "fetch_recording"  # key: recording id
    TRANSCRIBE = "transcribe"  # key: recording id
    FINALIZE_CALL = "finalize_call"  # key: call id: summary, pretriage, worklist
    SEND_SMS = "send_sms"  # key: call id: the digital path's link, as the caller agreed
    EXPORT_FHIR = "export_fhir"  # key: call id: the case to the county's FHIR server
