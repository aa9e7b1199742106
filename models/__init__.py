"""The SQLAlchemy data model and its Alembic migrations (``models/migrations``)."""

from models.audit import AuditEvent, LoginThrottle
from models.base import Base, utcnow
from models.call import (
    Call,
    Callback,
    CallerFeedback,
    CallEvent,
    CallState,
    GivenTranscript,
    Recording,
    RecordingState,
    Summary,
    SummaryFeedback,
    Transcript,
    TranscriptSegment,
    TriageDecision,
)
from models.job import Job, JobKind, JobState
from models.station import Role, StaffSession, Station, StationMembership, User

__all__ = [
    "AuditEvent",
    "Base",
    "Call",
    "CallEvent",
    "CallState",
    "Callback",
    "CallerFeedback",
    "GivenTranscript",
    "Job",
    "JobKind",
    "JobState",
    "LoginThrottle",
    "Recording",
    "RecordingState",
    "Role",
    "StaffSession",
    "Station",
    "StationMembership",
    "Summary",
    "SummaryFeedback",
    "Transcript",
    "TranscriptSegment",
    "TriageDecision",
    "User",
    "utcnow",
]
