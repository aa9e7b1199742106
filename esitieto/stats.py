"""The pilot's adoption figures for a station and period, computed from the data.

Every figure is counted from rows the call, the nurse and the caller left behind, so a station
lead can trust them and a test can count them by hand: calls, pre-information given, routing,
callbacks and their delay against the promised window, nurses' use of the summaries, the
callers' survey answers, how often nurses kept pretriage's decision, and the time from hang-up
to a finished summary.

The database does the counting (a month of a region is tens of thousands of calls): a few
grouped queries answer a few rows per station and category, durations come back as whole
milliseconds computed in SQL, never as datetime objects, and the medians are taken from those
plain numbers. The station lead's dashboard and the region's view are counted by the same code,
so they always agree; only the dashboard asks for the timeline.
"""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    String,
    and_,
    case,
    cast,
    exists,
    func,
    literal,
    or_,
    select,
)
from sqlalchemy.engine import Connection
from sqlalchemy.exc import CompileError
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import InstrumentedAttribute, Session, aliased
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement

from models import (
    Call,
    Callback,
    CallerFeedback,
    Recording,
    RecordingState,
    SummaryFeedback,
    TriageDecision,
)
from pretriage.service import PRETRIAGE, Agreement, agreement_by_station

YES = 1
"""The survey's keypad answer for yes (2 is no)."""
USED = ("as_is", "edited")
"""A summary counts as used when the nurse took it as it was or edited it."""
LOCAL_TZ = ZoneInfo("Europe/Helsinki")
"""Periods are the stations' local days: a station lead's 'Monday' starts at local midnight."""
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
DAY_MS = 86_400_000


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
    steps = _Steps.over(since, until)
    total = _Tally()
    for tally in _count(session, stations, since, until, steps).values():
        total.add(tally)
    return _figures(total, stations, since, until, steps)


def compute_each(
    session: Session, station_ids: Iterable[str], since: datetime, until: datetime
) -> dict[str, Stats]:
    """The same figures for each station on its own, counted for all of them at once (the
    region's thirty stations side by side; no timelines)."""
    stations = sorted(set(station_ids))
    each = _count(session, stations, since, until, steps=None)
    return {s: _figures(each[s], [s], since, until, steps=None) for s in stations}


MAX_BUCKETS = 400
"""A longer period is cut to this many bars (a year by day): enough for any chart."""


@dataclass(frozen=True)
class _Steps:
    """The timeline's bars: by hour for a period of one local day (23, 24 or 25 hours), else
    by local day. Bars start at local midnights, so a week across a change of the clocks still
    has seven days, each from midnight to midnight."""

    since: datetime
    name: str
    starts: tuple[datetime, ...]
    """Where each bar starts (UTC)."""
    offsets: tuple[tuple[datetime, timedelta], ...]
    """The local zone's UTC offset from each of its changes in the period (the first from
    ``since``): what turns a UTC instant into local time in the database."""

    @property
    def count(self) -> int:
        return len(self.starts)

    @classmethod
    def over(cls, since: datetime, until: datetime) -> _Steps:
        if until - since <= timedelta(hours=25):  # one local day, however long
            hours = -(-(until - since) // timedelta(hours=1))
            starts = tuple(since + i * timedelta(hours=1) for i in range(min(MAX_BUCKETS, hours)))
            return cls(since, "hour", starts, ())
        # The first bar from ``since`` (a local midnight, as every period of the pages is),
        # the others from each following local midnight.
        days, day = [since], since.astimezone(LOCAL_TZ).date()
        while len(days) < MAX_BUCKETS:
            day += timedelta(days=1)
            start = datetime.combine(day, time(0), LOCAL_TZ).astimezone(UTC)
            if start >= until:
                break
            days.append(start)
        return cls(since, "day", tuple(days), _offsets(since, until))

    def bar(self) -> ColumnElement[int]:
        """The index of the bar a call's start falls in, computed by the database (calls of
        the period never start before ``since``: integer division is the floor)."""
        since_ms = (self.since - EPOCH) // timedelta(milliseconds=1)
        if self.name == "hour":  # an hour is an hour in UTC too
            return ((epoch_ms(Call.started_at) - since_ms) // 3_600_000).label("bar")
        # Local days: the number of the local day of the call's start (UTC plus the offset
        # in force then, in whole days), counted from the local day ``since`` falls on.
        (_, first), *changes = self.offsets
        offset_ms: ColumnElement[int] = literal(first // timedelta(milliseconds=1))
        if changes:
            offset_ms = case(
                *((Call.started_at >= at, off // timedelta(milliseconds=1)) for at, off in
                  reversed(changes)),
                else_=offset_ms,
            )  # fmt: skip
        first_day = (since_ms + first // timedelta(milliseconds=1)) // DAY_MS
        return ((epoch_ms(Call.started_at) + offset_ms) // DAY_MS - first_day).label("bar")


def _offsets(since: datetime, until: datetime) -> tuple[tuple[datetime, timedelta], ...]:
    """The local zone's UTC offset at ``since`` and at each change before ``until`` (found to
    the minute: the zone changes on whole minutes)."""

    def offset(moment: datetime) -> timedelta:
        return moment.astimezone(LOCAL_TZ).utcoffset() or timedelta(0)

    found = [(since, offset(since))]
    day = since
    while day < until:
        following = min(day + timedelta(days=1), until)
        if offset(following) != found[-1][1]:
            low, high = day, following  # the change is in (low, high]
            while high - low > timedelta(minutes=1):
                middle = low + (high - low) / 2
                low, high = (middle, high) if offset(middle) == found[-1][1] else (low, middle)
            # The change is on a whole minute, the only one in (low, high]: high's minute.
            change = high.replace(second=0, microsecond=0)
            found.append((change, offset(change)))
        day = following
    return tuple(found)


@dataclass
class _Bar:
    calls: int = 0
    submissions: int = 0
    routing: Counter[str] = field(default_factory=Counter)


@dataclass
class _Tally:
    """What a station's figures are made of, as counted by the database: sums, which add up
    over stations, and the plain numbers (milliseconds) that a median needs."""

    calls: int = 0
    submissions: int = 0
    routing: Counter[str] = field(default_factory=Counter)
    urgency: Counter[str] = field(default_factory=Counter)
    uncertain: int = 0
    processing_ms: list[int] = field(default_factory=list)
    callbacks: int = 0
    callbacks_done: int = 0
    callbacks_within: int = 0
    callback_delays_ms: list[int] = field(default_factory=list)
    summary_use: Counter[str] = field(default_factory=Counter)
    nurses_giving: set[str] = field(default_factory=set)
    nurses_using: set[str] = field(default_factory=set)
    survey_answers: Counter[str] = field(default_factory=Counter)
    survey_yes: Counter[str] = field(default_factory=Counter)
    agreement: Agreement = field(default_factory=Agreement)
    timeline: dict[int, _Bar] = field(default_factory=dict)
    """Bar index → the calls that started in that bar."""

    def add(self, other: _Tally) -> None:
        """Count another station's tally in (a call belongs to one station: nothing twice)."""
        self.calls += other.calls
        self.submissions += other.submissions
        self.routing.update(other.routing)
        self.urgency.update(other.urgency)
        self.uncertain += other.uncertain
        self.processing_ms += other.processing_ms
        self.callbacks += other.callbacks
        self.callbacks_done += other.callbacks_done
        self.callbacks_within += other.callbacks_within
        self.callback_delays_ms += other.callback_delays_ms
        self.summary_use.update(other.summary_use)
        self.nurses_giving |= other.nurses_giving
        self.nurses_using |= other.nurses_using
        self.survey_answers.update(other.survey_answers)
        self.survey_yes.update(other.survey_yes)
        self.agreement += other.agreement
        for index, bar in other.timeline.items():
            mine = self.timeline.setdefault(index, _Bar())
            mine.calls += bar.calls
            mine.submissions += bar.submissions
            mine.routing.update(bar.routing)


class epoch_ms(FunctionElement[int]):
    """A timestamp column as whole milliseconds since 1970-01-01 UTC, cut (not rounded) to the
    millisecond, computed by the database: durations and timeline bars come back as plain
    integers, never as datetime objects (converting a month of a region's timestamps took
    longer than the queries). Cut, so that a call at 08:59:59.9996 stays in the 8 o'clock bar;
    both databases cut alike, so both give the same figures.
    """

    type = BigInteger()
    inherit_cache = True
    name = "epoch_ms"


@compiles(epoch_ms)
def _epoch_ms_elsewhere(element: epoch_ms, compiler: SQLCompiler, **kw: Any) -> str:
    raise CompileError(
        f"the figures are counted on SQLite or PostgreSQL, not {compiler.dialect.name}"
    )


@compiles(epoch_ms, "sqlite")
def _epoch_ms_sqlite(element: epoch_ms, compiler: SQLCompiler, **kw: Any) -> str:
    # SQLite keeps the text 'YYYY-MM-DD HH:MM:SS.ffffff'. julianday() of the whole seconds is a
    # float of days from which rounding gives back the exact second (Julian day 2440587.5 is
    # 1970-01-01T00:00Z); the milliseconds are the first three digits of the fraction (none:
    # 0). julianday() of the full text would round to the nearest millisecond instead.
    (ts,) = element.clauses
    text = compiler.process(ts, **kw)
    seconds = f"CAST(round((julianday(substr({text}, 1, 19)) - 2440587.5) * 86400) AS INTEGER)"
    return f"({seconds} * 1000 + CAST(substr({text}, 21, 3) AS INTEGER))"


@compiles(epoch_ms, "postgresql")
def _epoch_ms_postgresql(element: epoch_ms, compiler: SQLCompiler, **kw: Any) -> str:
    (ts,) = element.clauses
    return f"CAST(floor(EXTRACT(EPOCH FROM {compiler.process(ts, **kw)}) * 1000) AS BIGINT)"


def _count_if(condition: ColumnElement[bool]) -> ColumnElement[int]:
    """The group's rows for which ``condition`` holds (the same SQL on both databases)."""
    return func.sum(case((condition, 1), else_=0))


def _numbers(value: ColumnElement[int]) -> ColumnElement[str]:
    """The group's values as one comma-separated string (NULLs left out): a median's numbers
    in one row per group, not one row per call."""
    return func.aggregate_strings(cast(value, String), ",")


def _parse(numbers: str | None) -> list[int]:
    """The numbers of :func:`_numbers` (None: the group had none)."""
    return [int(n) for n in numbers.split(",")] if numbers else []


def _count(
    session: Session,
    stations: list[str],
    since: datetime,
    until: datetime,
    steps: _Steps | None,
) -> dict[str, _Tally]:
    """Each station's tally for calls that started in [since, until), counted by the
    database: a few grouped queries, each answering a few rows per station whatever the
    number of calls. ``steps``: also count the calls into the timeline's bars."""
    db = session.connection()
    tallies = {station: _Tally() for station in stations}
    in_period = and_(
        Call.station_id.in_(stations), Call.started_at >= since, Call.started_at < until
    )
    _count_calls(db, tallies, in_period, steps)
    _count_submissions(db, tallies, in_period, steps)
    _count_uncertain(db, tallies, in_period)
    _count_callbacks(db, tallies, in_period)
    _count_survey(db, tallies, in_period)
    _count_summary_use(db, tallies, in_period)
    for station, agreement in agreement_by_station(session, stations, since, until).items():
        tallies[station].agreement = agreement
    return tallies


def _count_calls(
    db: Connection, tallies: dict[str, _Tally], in_period: ColumnElement[bool], steps: _Steps | None
) -> None:
    """Calls by route and urgency, and the time from hang-up to ready on the worklist."""
    groups: list[ColumnElement[Any] | InstrumentedAttribute[Any]] = [
        Call.station_id,
        Call.route,
        Call.urgency,
    ]
    if steps is not None:
        groups.append(steps.bar())
    rows = db.execute(
        select(
            *groups,
            func.count().label("calls"),
            _numbers(epoch_ms(Call.ready_at) - epoch_ms(Call.ended_at)).label("processing"),
        )
        .where(in_period)
        .group_by(*groups)
    )
    for row in rows:
        tally = tallies[row.station_id]
        tally.calls += row.calls
        tally.processing_ms += _parse(row.processing)
        if row.route:
            tally.routing[row.route] += row.calls
        if row.urgency:
            tally.urgency[row.urgency] += row.calls
        if steps is not None and 0 <= row.bar < steps.count:
            bar = tally.timeline.setdefault(row.bar, _Bar())
            bar.calls += row.calls
            if row.route:
                bar.routing[row.route] += row.calls


def _count_submissions(
    db: Connection, tallies: dict[str, _Tally], in_period: ColumnElement[bool], steps: _Steps | None
) -> None:
    """Calls in which the caller gave pre-information: a recording with words in it."""
    with_words = exists().where(
        Recording.call_id == Call.id, Recording.state == RecordingState.TRANSCRIBED
    )
    groups: list[ColumnElement[Any] | InstrumentedAttribute[Any]] = [Call.station_id]
    if steps is not None:
        groups.append(steps.bar())
    rows = db.execute(
        select(*groups, func.count().label("calls")).where(in_period, with_words).group_by(*groups)
    )
    for row in rows:
        tally = tallies[row.station_id]
        tally.submissions += row.calls
        if steps is not None and 0 <= row.bar < steps.count:
            tally.timeline.setdefault(row.bar, _Bar()).submissions += row.calls


def _count_uncertain(
    db: Connection, tallies: dict[str, _Tally], in_period: ColumnElement[bool]
) -> None:
    """Calls pretriage found unclear (its own decision, whatever a nurse decided after)."""
    unclear = exists().where(
        TriageDecision.call_id == Call.id,
        TriageDecision.source == PRETRIAGE,
        TriageDecision.uncertain.is_(True),
    )
    rows = db.execute(
        select(Call.station_id, func.count().label("calls"))
        .where(in_period, unclear)
        .group_by(Call.station_id)
    )
    for row in rows:
        tallies[row.station_id].uncertain = row.calls


def _count_callbacks(
    db: Connection, tallies: dict[str, _Tally], in_period: ColumnElement[bool]
) -> None:
    """Callbacks, the completed ones, those within the promised window, and the delay from
    hang-up to each completed one."""
    done = and_(Callback.state == "done", Callback.completed_at.is_not(None))
    hung_up = func.coalesce(Call.ended_at, Call.started_at)
    delay = epoch_ms(Callback.completed_at) - epoch_ms(hung_up)
    rows = db.execute(
        select(
            Call.station_id,
            func.count().label("callbacks"),
            _count_if(done).label("done"),
            _count_if(and_(done, Callback.completed_at <= Callback.window_end)).label("within"),
            _numbers(case((done, delay))).label("delays"),
        )
        .join(Callback, Callback.call_id == Call.id)
        .where(in_period)
        .group_by(Call.station_id)
    )
    for row in rows:
        tally = tallies[row.station_id]
        tally.callbacks, tally.callbacks_done = row.callbacks, row.done
        tally.callbacks_within, tally.callback_delays_ms = row.within, _parse(row.delays)


def _count_survey(
    db: Connection, tallies: dict[str, _Tally], in_period: ColumnElement[bool]
) -> None:
    """The callers' answers and yeses, by question."""
    rows = db.execute(
        select(
            Call.station_id,
            CallerFeedback.question,
            func.count().label("answers"),
            _count_if(CallerFeedback.answer == YES).label("yes"),
        )
        .join(CallerFeedback, CallerFeedback.call_id == Call.id)
        .where(in_period)
        .group_by(Call.station_id, CallerFeedback.question)
    )
    for row in rows:
        tallies[row.station_id].survey_answers[row.question] = row.answers
        tallies[row.station_id].survey_yes[row.question] = row.yes


def _count_summary_use(
    db: Connection, tallies: dict[str, _Tally], in_period: ColumnElement[bool]
) -> None:
    """The nurses' word on the summaries, the latest on each call (a later word replaces an
    earlier one; of two at the same instant, one), counted by usage and nurse."""
    later = aliased(SummaryFeedback)
    replaced = (
        select(later.id)
        .where(
            later.call_id == SummaryFeedback.call_id,
            or_(
                later.created_at > SummaryFeedback.created_at,
                and_(later.created_at == SummaryFeedback.created_at, later.id > SummaryFeedback.id),
            ),
        )
        .exists()
    )
    groups = (Call.station_id, SummaryFeedback.usage, SummaryFeedback.user_id)
    rows = db.execute(
        select(*groups, func.count().label("calls"))
        .join(SummaryFeedback, SummaryFeedback.call_id == Call.id)
        .where(in_period, ~replaced)
        .group_by(*groups)
    )
    for row in rows:
        tally = tallies[row.station_id]
        tally.summary_use[row.usage] += row.calls
        tally.nurses_giving.add(row.user_id)
        if row.usage in USED:
            tally.nurses_using.add(row.user_id)


def _median(values_ms: list[int], unit_ms: int) -> float | None:
    return round(statistics.median(values_ms) / unit_ms, 1) if values_ms else None


def _figures(
    tally: _Tally, stations: list[str], since: datetime, until: datetime, steps: _Steps | None
) -> Stats:
    agreed = tally.agreement
    done = tally.callbacks_done
    return Stats(
        stations=stations,
        period_from=since,
        period_to=until,
        calls=tally.calls,
        submissions=tally.submissions,
        routing=dict(tally.routing),
        urgency=dict(tally.urgency),
        uncertain=tally.uncertain,
        callbacks=tally.callbacks,
        callbacks_done=done,
        callback_delay_median_min=_median(tally.callback_delays_ms, 60_000),
        callbacks_within_window=round(tally.callbacks_within / done, 3) if done else None,
        summary_use=dict(tally.summary_use),
        nurses_giving=len(tally.nurses_giving),
        nurses_using=len(tally.nurses_using),
        survey={
            q: SurveyFigure(tally.survey_answers[q], tally.survey_yes[q])
            for q in sorted(tally.survey_answers)
        },
        agreement_assessed=agreed.assessed,
        agreement_rate=agreed.rate,
        raised=agreed.raised,
        lowered=agreed.lowered,
        rerouted=agreed.rerouted,
        processing_median_s=_median(tally.processing_ms, 1000),
        timeline=_timeline(tally, steps) if steps is not None else [],
        timeline_step=steps.name if steps is not None else "day",
    )


def _timeline(tally: _Tally, steps: _Steps) -> list[Bucket]:
    """Every bar of the period, the empty ones too."""
    buckets = []
    for i, start in enumerate(steps.starts):
        bar = tally.timeline.get(i, _Bar())
        buckets.append(Bucket(start, bar.calls, bar.submissions, dict(bar.routing)))
    return buckets
