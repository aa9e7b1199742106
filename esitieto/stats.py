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

from sqlalchemy import select
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
from pretriage.service import PRETRIAGE, count_agreement, handled_decisions

YES = 1
"""The survey's keypad answer for yes (2 is no)."""
USED = ("as_is", "edited")
"""A summary counts as used when the nurse took it as it was or edited it."""
LOCAL_TZ = ZoneInfo("Europe/Helsinki")
"""Periods are the stations' local days: a station lead's 'Monday' starts at local midnight."""


def local_today() -> date:
    return datetime.now(LOCAL_TZ).date()


def local_days(first: date, last: date) -> tuple[datetime, datetime]:
    """[since, until) in UTC covering the local days ``first`` to ``last`` inclusive."""
    since = datetime.combine(first, time(0), LOCAL_TZ).astimezone(UTC)
    until = datetime.combine(last + timedelta(days=1), time(0), LOCAL_TZ).astimezone(UTC)
    return since, until


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
    nurses_giving: int
    """Nurses who said whether they used a summary (on a call of the period)."""
    nurses_using: int
    """... and of them, those who used one as it was or edited at least once."""
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
    return _aggregate(_fetch(session, stations, since, until), stations, since, until)


def compute_each(
    session: Session, station_ids: Iterable[str], since: datetime, until: datetime
) -> dict[str, Stats]:
    """The same figures for each station on its own, read from the database once (the
    region's thirty stations side by side; no timelines)."""
    stations = sorted(set(station_ids))
    each = _fetch(session, stations, since, until).by_station(stations)
    return {s: _aggregate(each[s], [s], since, until, timeline=False) for s in stations}


@dataclass
class _Rows:
    """What the figures are counted from, for calls that started in the period."""

    calls: list[Any]
    """(id, station_id, route, urgency, started_at, ended_at, ready_at)"""
    with_words: set[str]
    callbacks: list[Any]
    """(call_id, state, completed_at, window_end)"""
    latest_use: dict[str, tuple[str, str]]
    """call id → (nurse, usage): a nurse's later word replaces the earlier one."""
    survey: list[tuple[str, str, int]]
    uncertain: set[str]
    decisions: list[tuple[str, str, str, str]]

    def by_station(self, stations: list[str]) -> dict[str, _Rows]:
        """The rows of each station, in one pass over each kind."""
        out = {st: _Rows([], set(), [], {}, [], set(), []) for st in stations}
        station_of = {c.id: c.station_id for c in self.calls}
        for c in self.calls:
            out[c.station_id].calls.append(c)
        for call_id in self.with_words:
            out[station_of[call_id]].with_words.add(call_id)
        for cb in self.callbacks:
            out[station_of[cb.call_id]].callbacks.append(cb)
        for call_id, use in self.latest_use.items():
            out[station_of[call_id]].latest_use[call_id] = use
        for row in self.survey:
            out[station_of[row[0]]].survey.append(row)
        for call_id in self.uncertain:
            out[station_of[call_id]].uncertain.add(call_id)
        for d in self.decisions:
            out[station_of[d[0]]].decisions.append(d)
        return out


def _fetch(session: Session, stations: list[str], since: datetime, until: datetime) -> _Rows:
    # Columns through the Core connection, not ORM rows: a month of a busy station is thousands
    # of rows, and the ORM's row handling was half the dashboard's time.
    db = session.connection()
    in_period = (Call.station_id.in_(stations), Call.started_at >= since, Call.started_at < until)
    calls = db.execute(
        select(Call.id, Call.station_id, Call.route, Call.urgency, Call.started_at,
               Call.ended_at, Call.ready_at)
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
    callbacks = db.execute(
        select(Callback.call_id, Callback.state, Callback.completed_at, Callback.window_end)
        .where(Callback.call_id.in_(ids))
    ).all()  # fmt: skip
    latest_use: dict[str, tuple[str, str]] = {}
    for call_id, user_id, usage in db.execute(
        select(SummaryFeedback.call_id, SummaryFeedback.user_id, SummaryFeedback.usage)
        .where(SummaryFeedback.call_id.in_(ids))
        .order_by(SummaryFeedback.created_at)
    ):
        latest_use[call_id] = (user_id, usage)
    survey = [
        (r[0], r[1], r[2])
        for r in db.execute(
            select(CallerFeedback.call_id, CallerFeedback.question, CallerFeedback.answer).where(
                CallerFeedback.call_id.in_(ids)
            )
        )
    ]
    uncertain = set(
        db.scalars(
            select(TriageDecision.call_id).where(
                TriageDecision.call_id.in_(ids),
                TriageDecision.source == PRETRIAGE,
                TriageDecision.uncertain.is_(True),
            )
        )
    )
    decisions = handled_decisions(session, stations, since, until)
    return _Rows(list(calls), with_words, list(callbacks), latest_use, survey, uncertain, decisions)


def _aggregate(
    rows: _Rows, stations: list[str], since: datetime, until: datetime, *, timeline: bool = True
) -> Stats:
    calls = rows.calls
    by_id = {c.id: c for c in calls}
    done = [cb for cb in rows.callbacks if cb.state == "done" and cb.completed_at is not None]
    delays = []
    within = 0
    for cb in done:
        call = by_id[cb.call_id]
        hung_up = call.ended_at or call.started_at
        delays.append((cb.completed_at - hung_up).total_seconds() / 60)
        if cb.window_end is not None and cb.completed_at <= cb.window_end:
            within += 1
    survey: dict[str, SurveyFigure] = {}
    for question in sorted({q for _, q, _ in rows.survey}):
        answers = [a for _, q, a in rows.survey if q == question]
        survey[question] = SurveyFigure(len(answers), sum(a == YES for a in answers))
    processing = [
        (c.ready_at - c.ended_at).total_seconds()
        for c in calls
        if c.ready_at is not None and c.ended_at is not None
    ]
    agreed = count_agreement(rows.decisions)
    step_name, buckets = (
        _timeline(calls, rows.with_words, since, until) if timeline else ("day", [])
    )
    return Stats(
        stations=stations,
        period_from=since,
        period_to=until,
        calls=len(calls),
        submissions=len(rows.with_words),
        routing=dict(Counter(c.route for c in calls if c.route)),
        urgency=dict(Counter(c.urgency for c in calls if c.urgency)),
        uncertain=len(rows.uncertain),
        callbacks=len(rows.callbacks),
        callbacks_done=len(done),
        callback_delay_median_min=round(statistics.median(delays), 1) if delays else None,
        callbacks_within_window=round(within / len(done), 3) if done else None,
        summary_use=dict(Counter(usage for _, usage in rows.latest_use.values())),
        nurses_giving=len({nurse for nurse, _ in rows.latest_use.values()}),
        nurses_using=len({n for n, usage in rows.latest_use.values() if usage in USED}),
        survey=survey,
        agreement_assessed=agreed.assessed,
        agreement_rate=agreed.rate,
        raised=agreed.raised,
        lowered=agreed.lowered,
        rerouted=agreed.rerouted,
        processing_median_s=round(statistics.median(processing), 1) if processing else None,
        timeline=buckets,
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
