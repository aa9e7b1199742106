"""Stations and the staff who work for them."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Boolean, Float, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, IdMixin, utcnow


class Station(Base):
    """A health station; an incoming call is matched to one by the number called."""

    __tablename__ = "stations"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    phone_number: Mapped[str] = mapped_column(String(32), unique=True)
    language: Mapped[str] = mapped_column(String(8), default="fi")
    timezone: Mapped[str] = mapped_column(String(64), default="Europe/Helsinki")
    voice: Mapped[str | None] = mapped_column(String(64), default=None)
    speech_rate: Mapped[str | None] = mapped_column(String(8), default=None)
    urgent_number: Mapped[str] = mapped_column(String(32), default="116117")
    """Where an urgent caller is connected when the station is closed: Päivystysapu 116 117
    by default, or the county's own number in E.164."""
    """How fast the voice speaks (SSML prosody rate, e.g. ``"90%"``): slower for elderly callers."""
    note_language: Mapped[str | None] = mapped_column(String(8), default=None)
    """The nurses' documentation language (fi/sv/en); default: Swedish for a Swedish-speaking
    station, else Finnish."""
    note_headings: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    """The station's own note headings, e.g. ``{"reason": "Tulosyy"}``; the rest from the
    language's template."""
    digital_paths: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    """The digital paths the station offers, each with its SMS link:
    ``{"uti": {"enabled": true, "sms_link": "https://..."}}``. A path that is off, or has no
    link to send, is never offered; the caller gets a nurse callback instead."""
    opening_hours: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    """``{"mon-fri": "08:00-16:00", "sat": "closed"}`` in the station's time zone; default
    weekdays 8-16."""
    callback_nurses: Mapped[int] = mapped_column(Integer, default=2)
    """Nurses on callback duty, for the callback window the caller is promised."""
    callback_handling_min: Mapped[float] = mapped_column(Float, default=12.0)
    """Average minutes a nurse spends on one callback."""
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    @property
    def documentation_language(self) -> str:
        if self.note_language in ("fi", "sv", "en"):
            return self.note_language
        return "sv" if self.language == "sv" else "fi"


class Role(StrEnum):
    """What a staff member may do; which stations they see is set by memberships."""

    NURSE = "nurse"
    """Works the worklist and the cases."""
    STATION_LEAD = "station_lead"
    """A nurse who also follows the station's adoption figures."""
    ADMIN = "admin"
    """Also manages staff accounts and their stations."""
    REGION = "region"
    """The county's view: every station's adoption figures side by side, and nothing else
    (no cases, no health data)."""


class User(IdMixin, Base):
    __tablename__ = "users"
    __table_args__ = (UniqueConstraint("sso_issuer", "sso_subject", name="uq_users_sso"),)

    username: Mapped[str] = mapped_column(String(150), unique=True)
    display_name: Mapped[str] = mapped_column(String(200))
    password_hash: Mapped[str | None] = mapped_column(String(255))
    """None for an account that signs in only through single sign-on."""
    role: Mapped[str] = mapped_column(String(16), default=Role.NURSE)
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    language: Mapped[str | None] = mapped_column(String(8), default=None)
    """The staff pages' language (fi/sv/en); None: the browser's preference."""
    sso_issuer: Mapped[str | None] = mapped_column(String(255), default=None)
    sso_subject: Mapped[str | None] = mapped_column(String(255), default=None)
    """The county's OpenID Connect ``iss`` and ``sub`` for this account, once linked."""
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class StationMembership(Base):
    """Which stations a user may see: staff see only their own stations' cases."""

    __tablename__ = "station_memberships"

    user_id: Mapped[str] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    station_id: Mapped[str] = mapped_column(
        ForeignKey("stations.id", ondelete="CASCADE"), primary_key=True
    )


class StaffSession(IdMixin, Base):
    """A signed-in browser. The cookie carries only this row's id: signing out, an idle
    timeout or a deactivated account ends the row, and with it the cookie's power."""

    __tablename__ = "staff_sessions"

    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    method: Mapped[str] = mapped_column(String(16))
    """How the user proved who they are: ``password`` (or, later, ``oidc``)."""
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(default=utcnow)
    ended_at: Mapped[datetime | None] = mapped_column(default=None)
