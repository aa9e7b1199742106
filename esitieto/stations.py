"""Station settings from a file an administrator keeps (``esitieto stations load``).

One YAML file lists the stations: their number, languages, opening hours, callback capacity,
note headings and which digital paths they offer with which SMS link. Loading checks every
station before anything is written, so a typo never half-applies.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from sqlalchemy import select
from sqlalchemy.orm import Session

from models import AuditEvent, Station
from pretriage.service import PathSetting, check_station
from summarizer.text.note import HEADING_ORDER


class StationFileError(ValueError):
    """The stations file is wrong; the message says where."""


class StationConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1, max_length=64, pattern=r"^[a-z0-9][a-z0-9_-]*$")
    name: str = Field(min_length=1, max_length=200)
    phone_number: str = Field(pattern=r"^\+[1-9][0-9]{6,14}$")
    language: Literal["fi", "sv", "en"] = "fi"
    note_language: Literal["fi", "sv", "en"] | None = None
    timezone: str = "Europe/Helsinki"
    voice: str | None = None
    speech_rate: str | None = Field(default=None, pattern=r"^([5-9][0-9]|1[0-4][0-9]|150)%$")
    urgent_number: str = Field(default="116117", pattern=r"^(\+[1-9][0-9]{6,14}|[0-9]{3,6})$")
    """Where an urgent caller goes when the station is closed (Päivystysapu 116 117)."""
    opening_hours: dict[str, str] | None = None
    callback_nurses: int = Field(default=2, ge=1, le=200)
    callback_handling_min: float = Field(default=12.0, gt=0, le=240)
    note_headings: dict[str, str] | None = None
    digital_paths: dict[str, PathSetting] = Field(default_factory=dict)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, v: str) -> str:
        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {v!r}") from exc
        return v

    @field_validator("note_headings")
    @classmethod
    def _known_headings(cls, v: dict[str, str] | None) -> dict[str, str] | None:
        unknown = set(v or {}) - set(HEADING_ORDER)
        if unknown:
            raise ValueError(
                f"unknown note headings {sorted(unknown)}; known: {', '.join(HEADING_ORDER)}"
            )
        return v


class StationsFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    stations: list[StationConfig]


def read_stations(path: Path) -> list[StationConfig]:
    try:
        raw: Any = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise StationFileError(f"{path}: {exc}") from exc
    try:
        parsed = StationsFile.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        raise StationFileError(f"{path}: {where}: {err['msg']}") from exc
    ids = [s.id for s in parsed.stations]
    numbers = [s.phone_number for s in parsed.stations]
    for label, values in (("id", ids), ("phone_number", numbers)):
        dupes = sorted({v for v in values if values.count(v) > 1})
        if dupes:
            raise StationFileError(f"{path}: the same {label} twice: {', '.join(dupes)}")
    return parsed.stations


def apply_stations(session: Session, configs: list[StationConfig]) -> list[str]:
    """Create or update the stations; returns the ids changed. Stations not in the file stay
    as they are (their calls and cases are kept)."""
    changed = []
    for cfg in configs:
        station = session.get(Station, cfg.id)
        clash = session.scalar(
            select(Station.id).where(Station.phone_number == cfg.phone_number, Station.id != cfg.id)
        )
        if clash is not None:
            raise StationFileError(f"station {cfg.id}: number {cfg.phone_number} is {clash}'s")
        if station is None:
            station = Station(id=cfg.id)
            session.add(station)
        values = cfg.model_dump(mode="json", exclude={"id"})
        for key, value in values.items():
            setattr(station, key, value)
        check_station(station)
        session.add(
            AuditEvent(
                action="configure_station",
                object_type="station",
                object_id=cfg.id,
                station_id=cfg.id,
                detail={"paths": sorted(p for p, s in cfg.digital_paths.items() if s.enabled)},
            )
        )
        changed.append(cfg.id)
    session.flush()
    return changed
