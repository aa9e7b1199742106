"""The region's view: every station's adoption figures side by side, for any period.

One row per station with the pilot report's measures, counted by the same code as a station
lead's dashboard (``stats.compute_each``: the two always agree), by the database for all
stations at once. Sortable by any measure; the page, JSON and CSV show the same rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from esitieto.stats import USED, Stats, compute_each
from models import Station

MEASURES: tuple[str, ...] = (
    "calls",
    "pre_information",
    "completion_rate",
    "nurse_queue",
    "callback",
    "digital_path",
    "uncertain",
    "callback_delay_median_min",
    "callbacks_within_window",
    "summary_used",
    "nurses_using",
    "useful",
    "understandable",
    "recommend",
    "agreement_rate",
    "processing_median_s",
)
"""The columns, in order. Shares are 0–1; ``None`` where nothing was there to count."""


@dataclass(frozen=True)
class StationFigures:
    station_id: str
    name: str
    values: dict[str, float | int | None]


def region_figures(
    session: Session, stations: Sequence[Station], since: datetime, until: datetime
) -> list[StationFigures]:
    """Each station's measures for calls that started in [since, until)."""
    each = compute_each(session, [s.id for s in stations], since, until)
    return [StationFigures(s.id, s.name, _values(each[s.id])) for s in stations]


def sort_rows(rows: list[StationFigures], measure: str, descending: bool) -> list[StationFigures]:
    """Sorted by a measure; stations with nothing to show for it last, by name."""
    if measure == "name":
        return sorted(rows, key=lambda r: r.name.casefold(), reverse=descending)
    known = [r for r in rows if r.values.get(measure) is not None]
    unknown = sorted((r for r in rows if r.values.get(measure) is None), key=lambda r: r.name)
    known.sort(key=lambda r: (float(r.values[measure] or 0), r.name), reverse=descending)
    return known + unknown


def _values(stats: Stats) -> dict[str, float | int | None]:
    def share(part: int, whole: int) -> float | None:
        return round(part / whole, 3) if whole else None

    used = sum(stats.summary_use.get(u, 0) for u in USED)
    rated = sum(stats.summary_use.values())
    survey = {q: f.share_yes for q, f in stats.survey.items()}
    return {
        "calls": stats.calls,
        "pre_information": stats.submissions,
        "completion_rate": stats.completion_rate,
        "nurse_queue": share(stats.routing.get("nurse_queue", 0), stats.calls),
        "callback": share(stats.routing.get("callback", 0), stats.calls),
        "digital_path": share(stats.routing.get("digital_path", 0), stats.calls),
        "uncertain": share(stats.uncertain, stats.calls),
        "callback_delay_median_min": stats.callback_delay_median_min,
        "callbacks_within_window": stats.callbacks_within_window,
        "summary_used": share(used, rated),
        "nurses_using": share(stats.nurses_using, stats.nurses_giving),
        "useful": survey.get("useful"),
        "understandable": survey.get("understandable"),
        "recommend": survey.get("recommend"),
        "agreement_rate": stats.agreement_rate,
        "processing_median_s": stats.processing_median_s,
    }
