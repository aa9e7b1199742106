"""The pilot's adoption figures for a station and period, computed from the data.

Every figure is counted from rows the call, the nurse and the caller left behind, so a station
lead can trust them and a test can count them by hand: calls, pre-information given, routing,
callbacks and their delay against the promised window, nurses' use of the summaries, the
callers' survey answers, how often nurses kept pretriage's decision, and the time from hang-up
to a finished summary.
"""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from models import (
    Call,
    Callback,
    CallerFeedback,
    Recording,
    RecordingState,
    SummaryFeedback,
    TriageDecision,
)
from pretriage.service import PRETRIAGE, agreement

YES = 1
LOCAL_TZ = ZoneInfo("Europe/Helsinki")
"""Periods are the stations' local days: a station lead's 'Monday' starts at local midnight."""


def local_today() -> date:
    return datetime.now(LOCAL_TZ).date()


def local_days(first: date, last: date) -> tuple[datetime, datetime]:
    """[since, until) in UTC covering the local days ``first`` to ``last`` inclusive."""
    since = datetime.combine(first, time(0), LOCAL_TZ).astimezone(UTC)
    until = datetime.combine(last + timedelta(days=1), time(0), LOCAL_TZ).astimezone(UTC)
    return since, until


"""The survey's keypad answer for yes (2 is no)."""


@dataclass(frozen=True)
class SurveyFigure:
    answers: int
    yes: int

    @property
    def share_yes(self) -> float | None:
        return round(self.yes / self.answers, 3) if self.answers else None


@dataclass(frozen=True)
class Bucket:
    """One bar of the timeline: calls that started in [start, start + step)."""

    start: datetime
    calls: int
    submissions: int
    routing: dict[str, int]


@dataclass(frozen=True)
class Stats:
    stations: list[str]
    period_from: datetime
    period_to: datetime
    calls: int
    submissions: int
    """Calls in which the caller gave pre-information (a recording with words in it)."""
    routing: dict[str, int]
    urgency: dict[str, int]
    uncertain: int
    """Calls pretriage did not understand well enough to trust a non-urgent route (policy v2):
    shown to nurses as unclear, never as non-urgent."""
    callbacks: int
    callbacks_done: int
    callback_delay_median_min: float | None
    """From hang-up to the nurse's completed callback, over completed callbacks."""
    callbacks_within_window: float | None
    """Share of completed callbacks done by the end of the window the caller was promised."""
    summary_use: dict[str, int]
    survey: dict[str, SurveyFigure]
    agreement_assessed: int
    agreement_rate: float | None
    raised: int
    lowered: int
    rerouted: int
    processing_median_s: float | None
    """From hang-up to the case being ready on the worklist."""
    timeline: list[Bucket] = field(default_factory=list)
    """Calls over the period: by hour for a period of a day or less, else by day."""
    timeline_step: str = "day"
    notes: list[str] = field(default_factory=list)

    @property
    def completion_rate(self) -> float | None:
        return round(self.submissions / self.calls, 3) if self.calls else None

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["period_from"] = self.period_from.isoformat()
        out["period_to"] = self.period_to.isoformat()
        out["completion_rate"] = self.completion_rate
        out["timeline"] = [{**asdict(b), "start": b.start.isoformat()} for b in self.timeline]
        out["survey"] = {
            q: {"answers": f.answers, "yes": f.yes, "share_yes": f.share_yes}
            for q, f in self.survey.items()
        }
        return out

    def csv_rows(self) -> list[tuple[str, str]]:
        """One ``figure,value`` row per number (nested figures flattened with dots)."""
        rows: list[tuple[str, str]] = []

        def walk(prefix: str, value: object) -> None:
            if prefix == "timeline" and isinstance(value, list):
                for bucket in value:  # timeline.<start>.calls, … one row each
                    start = bucket["start"]
                    walk(f"timeline.{start}", {k: v for k, v in bucket.items() if k != "start"})
            elif isinstance(value, dict):
                for k, v in value.items():
                    walk(f"{prefix}.{k}" if prefix else str(k), v)
            elif isinstance(value, list):
                rows.append((prefix, " ".join(str(v) for v in value)))
            else:
                rows.append((prefix, "" if value is None else str(value)))

        walk("", self.as_dict())
        return rows


def compute(
    session: Session, station_ids: Iterable[str], since: datetime, until: datetime
) -> Stats:
    """The figures for calls that started in [since, until) at these stations."""
    stations = sorted(set(station_ids))
    # Columns through the Core connection, not ORM rows: a month of a busy station is thousands
    # of rows, and the ORM's row handling was half the dashboard's time.
    db = session.connection()
    in_period = (Call.station_id.in_(stations), Call.started_at >= since, Call.started_at < until)
    calls = db.execute(
        select(Call.id, Call.route, Call.urgency, Call.started_at, Call.ended_at, Call.ready_at)
        .where(*in_period)
    ).all()  # fmt: skip
    ids = select(Call.id).where(*in_period).scalar_subquery()
    with_words = set(
        db.scalars(
            select(Recording.call_id)
            .where(Recording.call_id.in_(ids), Recording.state == RecordingState.TRANSCRIBED)
            .distinct()
        )
    )
    by_id = {c.id: c for c in calls}
    callbacks = db.execute(
        select(Callback.call_id, Callback.state, Callback.completed_at, Callback.window_end)
        .where(Callback.call_id.in_(ids))
    ).all()  # fmt: skip
    done = [cb for cb in callbacks if cb.state == "done" and cb.completed_at is not None]
    delays = []
    within = 0
    for cb in done:
        call = by_id[cb.call_id]
        hung_up = call.ended_at or call.started_at
        delays.append((cb.completed_at - hung_up).total_seconds() / 60)
        if cb.window_end is not None and cb.completed_at <= cb.window_end:
            within += 1
    latest_use: dict[str, str] = {}
    for call_id, usage in db.execute(
        select(SummaryFeedback.call_id, SummaryFeedback.usage)
        .where(SummaryFeedback.call_id.in_(ids))
        .order_by(SummaryFeedback.created_at)
    ):
        latest_use[call_id] = usage  # a nurse's later word replaces the earlier one
    survey_rows = db.execute(
        select(CallerFeedback.question, CallerFeedback.answer).where(
            CallerFeedback.call_id.in_(ids)
        )
    ).all()
    survey: dict[str, SurveyFigure] = {}
    for question in sorted({q for q, _ in survey_rows}):
        answers = [a for q, a in survey_rows if q == question]
        survey[question] = SurveyFigure(len(answers), sum(a == YES for a in answers))
    processing = [
        (c.ready_at - c.ended_at).total_seconds()
        for c in calls
        if c.ready_at is not None and c.ended_at is not None
    ]
    uncertain = db.scalar(
        select(func.count())
        .select_from(TriageDecision)
        .where(
            TriageDecision.call_id.in_(ids),
            TriageDecision.source == PRETRIAGE,
            TriageDecision.uncertain.is_(True),
        )
    )
    agreed = agreement(session, stations, since, until)
    step_name, timeline = _timeline(calls, with_words, since, until)
    return Stats(
        stations=stations,
        period_from=since,
        period_to=until,
        calls=len(calls),
        submissions=len(with_words),
        routing=dict(Counter(c.route for c in calls if c.route)),
        urgency=dict(Counter(c.urgency for c in calls if c.urgency)),
        uncertain=int(uncertain or 0),
        callbacks=len(callbacks),
        callbacks_done=len(done),
        callback_delay_median_min=round(statistics.median(delays), 1) if delays else None,
        callbacks_within_window=round(within / len(done), 3) if done else None,
        summary_use=dict(Counter(latest_use.values())),
        survey=survey,
        agreement_assessed=agreed.assessed,
        agreement_rate=agreed.rate,
        raised=agreed.raised,
        lowered=agreed.lowered,
        rerouted=agreed.rerouted,
        processing_median_s=round(statistics.median(processing), 1) if processing else None,
        timeline=timeline,
        timeline_step=step_name,
    )


MAX_BUCKETS = 400
"""A longer period is cut to this many bars (a year by day): enough for any chart."""


def _timeline(
    calls: Iterable[Any], with_words: set[str], since: datetime, until: datetime
) -> tuple[str, list[Bucket]]:
    step_name, step = (
        ("hour", timedelta(hours=1)) if until - since <= timedelta(days=1)
        else ("day", timedelta(days=1))
    )  # fmt: skip
    count = min(MAX_BUCKETS, max(1, -(-(until - since) // step)))
    totals = [0] * count
    words = [0] * count
    routes: list[Counter[str]] = [Counter() for _ in range(count)]
    origin, step_s = since.timestamp(), step.total_seconds()
    for call in calls:
        index = int((call.started_at.timestamp() - origin) // step_s)
        if 0 <= index < count:
            totals[index] += 1
            words[index] += call.id in with_words
            if call.route:
                routes[index][call.route] += 1
    return step_name, [
        Bucket(since + i * step, totals[i], words[i], dict(routes[i])) for i in range(count)
    ]
