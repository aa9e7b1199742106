"""The audit log: every case view and every change by staff."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, IdMixin, utcnow


class AuditEvent(IdMixin, Base):
    __tablename__ = "audit_events"

    at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    user_id: Mapped[str | None] = mapped_column(ForeignKey("users.id"), default=None, index=True)
    action: Mapped[str] = mapped_column(String(64))
    object_type: Mapped[str] = mapped_column(String(32))
    object_id: Mapped[str | None] = mapped_column(String(64), default=None)
    station_id: Mapped[str | None] = mapped_column(String(64), default=None)
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class LoginThrottle(Base):
    """Sign-in attempts per username and per source address, for growing delays. Each attempt
    is claimed with a compare-and-set on this row before any password is checked, so parallel
    guesses cannot all slip through on one stale count."""

    __tablename__ = "login_throttles"

    key: Mapped[str] = mapped_column(String(160), primary_key=True)
    """``user:<name>`` or ``addr:<address>``."""
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    next_allowed_at: Mapped[datetime] = mapped_column(default=utcnow)
