"""What a finished case hands to the FHIR export: plain values, no database rows."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime


@dataclass(frozen=True)
class ReportedSymptom:
    icpc2: str
    label: str
    words: str
    """The caller's own words for it (the summary's evidence)."""


@dataclass(frozen=True)
class CaseRecord:
    """A finished case as the county's record system should receive it."""

    case_id: str
    station_id: str
    station_name: str
    started_at: datetime
    ended_at: datetime | None
    language: str
    for_whom: str
    """``self``, ``other`` or ``child``: who the call was about."""
    reason: str
    note: str
    urgency: str
    route: str
    ruleset_version: str
    decided_by: str
    """``pretriage`` or ``nurse`` (the effective decision)."""
    uncertain: bool = False
    digital_path: str | None = None
    reasons: tuple[str, ...] = ()
    symptoms: tuple[ReportedSymptom, ...] = ()
    temperature_c: float | None = None
    identity_code: str | None = None
    """The keyed henkilötunnus, opened only for the export; None when none was keyed."""
    birth_date: date | None = None
    sex: str | None = None
    callback_start: datetime | None = None
    callback_end: datetime | None = None
