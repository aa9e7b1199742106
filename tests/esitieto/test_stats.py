"""The adoption figures against a small fixture counted by hand."""

from __future__ import annotations

import csv
import io
import random
import re
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from esitieto.app import prepare
from esitieto.runtime import Runtime
from esitieto.stats import Stats, compute, compute_each, local_days
from models import (
    Call,
    Callback,
    CallerFeedback,
    CallState,
    Recording,
    RecordingState,
    Station,
    SummaryFeedback,
    TriageDecision,
    User,
)
from tests.conftest import _reset_pg, fresh_sqlite, make_settings

DAY = datetime(2026, 11, 16, tzinfo=UTC)  # a Monday


def _call(s: Session, station: str, hour: int, **kw: object) -> Call:
    started = DAY + timedelta(hours=hour)
    call = Call(
        station_id=station,
        call_sid="CA" + uuid.uuid4().hex,
        to_number="+358900000000",
        state=CallState.READY,
        started_at=started,
        ended_at=started + timedelta(minutes=3),
        **kw,
    )
    s.add(call)
    s.flush()
    return call


def _words(s: Session, call: Call, state: str = RecordingState.TRANSCRIBED) -> None:
    s.add(
        Recording(
            call_id=call.id,
            recording_sid="RE" + uuid.uuid4().hex,
            sequence=1,
            prompt_key="reason",
            state=state,
        )
    )


def _decision(
    s: Session, call: Call, source: str, urgency: str, route: str, *, uncertain: bool = False
) -> None:
    s.add(
        TriageDecision(
            call_id=call.id,
            source=source,
            urgency=urgency,
            route=route,
            ruleset_version="t",
            uncertain=uncertain,
        )
    )


def fixture(runtime: Runtime) -> None:
    """Five calls at the demo station on one day, one elsewhere, one the day after.

    Hand count (demo, that day): calls 5; with words 3 (c1, c2, c3; c4's recording was silent);
    routes: callback 3 (c1, c2, c5), nurse_queue 1 (c3), digital_path 1 (c4); callbacks 3, done
    2: c1 done 60 min after hang-up inside its window, c2 done 240 min after, past its window:
    median delay 150 min, within window 1/2; summary use: c1 as_is (after an earlier
    "edited"), c2 edited: {as_is 1, edited 1}; survey: useful 2 answers, 1 yes; recommend 1
    answer, 1 yes; agreement: c1 kept (callback done), c2 raised by the nurse, c3 not handled:
    assessed 2, agreed 1, raised 1; processing: c1 2 min, c2 4 min, c3 6 min → median 240 s;
    unclear to pretriage: 1 (c5; the other station's unclear call is not counted).
    """
    with runtime.db.session() as s:
        s.add(Station(id="other", name="Toinen", phone_number="+358900000099"))
        nurse = User(username="n-" + uuid.uuid4().hex[:6], display_name="N", password_hash="x")
        s.add(nurse)
        s.flush()
        c1 = _call(s, "demo", 8, route="callback", urgency="non_urgent")
        c2 = _call(s, "demo", 9, route="callback", urgency="urgent")
        c3 = _call(s, "demo", 10, route="nurse_queue", urgency="urgent")
        c4 = _call(s, "demo", 11, route="digital_path", urgency="non_urgent")
        c5 = _call(s, "demo", 12, route="callback", urgency="non_urgent")
        for call, minutes in ((c1, 2), (c2, 4), (c3, 6)):
            assert call.ended_at is not None
            call.ready_at = call.ended_at + timedelta(minutes=minutes)
        for call in (c1, c2, c3):
            _words(s, call)
        _words(s, c4, RecordingState.SILENT)
        for call, urgency, route in (
            (c1, "non_urgent", "callback"),
            (c2, "non_urgent", "callback"),
            (c3, "urgent", "nurse_queue"),
        ):
            _decision(s, call, "pretriage", urgency, route)
        _decision(s, c2, "nurse", "urgent", "callback")
        _decision(s, c5, "pretriage", "non_urgent", "callback", uncertain=True)
        for call, after, window_end_after, state in (
            (c1, 60, 120, "done"),
            (c2, 240, 120, "done"),
            (c5, None, 120, "open"),
        ):
            assert call.ended_at is not None
            s.add(
                Callback(
                    call_id=call.id,
                    station_id="demo",
                    state=state,
                    window_start=call.ended_at,
                    window_end=call.ended_at + timedelta(minutes=window_end_after),
                    completed_at=call.ended_at + timedelta(minutes=after) if after else None,
                )
            )
        s.add(SummaryFeedback(call_id=c1.id, user_id=nurse.id, usage="edited",
                              created_at=DAY + timedelta(hours=13)))  # fmt: skip
        s.add(SummaryFeedback(call_id=c1.id, user_id=nurse.id, usage="as_is",
                              created_at=DAY + timedelta(hours=14)))  # fmt: skip
        s.add(SummaryFeedback(call_id=c2.id, user_id=nurse.id, usage="edited"))
        s.add(CallerFeedback(call_id=c1.id, question="useful", answer=1))
        s.add(CallerFeedback(call_id=c2.id, question="useful", answer=2))
        s.add(CallerFeedback(call_id=c3.id, question="recommend", answer=1))
        # outside the station or the period: never counted
        elsewhere = _call(s, "other", 9, route="callback")
        _words(s, elsewhere)
        _decision(s, elsewhere, "pretriage", "non_urgent", "callback", uncertain=True)
        _call(s, "demo", 30, route="callback")


def test_the_figures_match_the_hand_count(runtime: Runtime) -> None:
    fixture(runtime)
    with runtime.db.session() as s:
        got = compute(s, ["demo"], DAY, DAY + timedelta(days=1))
    assert (got.calls, got.submissions, got.completion_rate) == (5, 3, 0.6)
    assert got.routing == {"callback": 3, "nurse_queue": 1, "digital_path": 1}
    assert got.urgency == {"non_urgent": 3, "urgent": 2}
    assert (got.callbacks, got.callbacks_done) == (3, 2)
    assert got.callback_delay_median_min == 150.0 and got.callbacks_within_window == 0.5
    assert got.summary_use == {"as_is": 1, "edited": 1}
    assert {q: (f.answers, f.yes) for q, f in got.survey.items()} == {
        "useful": (2, 1),
        "recommend": (1, 1),
    }
    assert (got.agreement_assessed, got.agreement_rate, got.raised) == (2, 0.5, 1)
    assert got.processing_median_s == 240.0
    assert got.uncertain == 1


def test_an_empty_period_has_no_rates_rather_than_zeros(runtime: Runtime) -> None:
    with runtime.db.session() as s:
        got = compute(s, ["demo"], DAY, DAY + timedelta(days=1))
    assert got.calls == 0 and got.completion_rate is None
    assert got.callback_delay_median_min is None and got.agreement_rate is None


def _login(client: TestClient, username: str = "osastonhoitaja") -> None:
    token = re.search(r'name="csrf" value="([^"]+)"', client.get("/login").text)
    assert token
    client.post(
        "/login",
        data={"username": username, "password": "demo-password", "csrf": token.group(1)},
    )


def test_the_stats_api_as_json_and_csv_for_the_users_stations(
    client: TestClient, runtime: Runtime
) -> None:
    assert client.get("/api/v1/stats").status_code == 401
    fixture(runtime)
    _login(client)
    got = client.get("/api/v1/stats?station=demo&from=2026-11-16&to=2026-11-17").json()
    assert got["calls"] == 5 and got["completion_rate"] == 0.6
    assert got["survey"]["useful"] == {"answers": 2, "yes": 1, "share_yes": 0.5}
    as_csv = client.get("/api/v1/stats?station=demo&from=2026-11-16&to=2026-11-17&format=csv")
    assert as_csv.headers["content-type"].startswith("text/csv")
    rows = dict(csv.reader(io.StringIO(as_csv.text)))
    assert rows["calls"] == "5" and rows["routing.callback"] == "3"
    # another station's figures are not the station lead's to see
    assert client.get("/api/v1/stats?station=other").status_code == 404
    assert client.get("/api/v1/stats?from=yesterday").status_code == 400
    assert client.get("/api/v1/stats?from=2026-11-17&to=2026-11-16").status_code == 400


def test_the_dashboard_shows_the_figures_as_charts(client: TestClient, runtime: Runtime) -> None:
    fixture(runtime)
    _login(client)
    page = client.get("/dashboard?station=demo&period=day&to=2026-11-16")
    assert page.status_code == 200
    assert 'id="fig-calls">5<' in page.text and 'id="fig-submissions">3<' in page.text
    assert "60 %" in page.text  # completion rate
    routing = re.search(r'<svg class="bars" id="chart-routing".*?</svg>', page.text, re.S)
    assert routing and routing.group(0).count("<rect") == 3
    assert "Takaisinsoitto" in routing.group(0)
    survey = re.search(r'<svg class="bars" id="chart-survey".*?</svg>', page.text, re.S)
    assert survey and "50 % / 2" in survey.group(0)
    assert "format=csv" in page.text
    timeline = re.search(r'<svg class="timeline" id="chart-timeline".*?</svg>', page.text, re.S)
    assert timeline and timeline.group(0).count('<g class="tbar">') == 24  # by hour
    assert timeline.group(0).count("<rect") == 5  # one routed call in each of five hours
    assert timeline.group(0).count('class="r-callback"') == 3
    assert "16.11. 08:00: 1" not in timeline.group(0)  # hours are the station's local time
    assert "16.11. 10:00: 1" in timeline.group(0)  # c1 at 08:00 UTC is 10:00 in Helsinki
    week = client.get("/dashboard?station=demo&period=week&to=2026-11-17").text
    assert 'id="fig-calls">6<' in week  # the day after is in the week


def test_nurses_work_cases_and_station_leads_see_the_figures(
    client: TestClient, runtime: Runtime
) -> None:
    _login(client, "hoitaja")
    api = client.get("/api/v1/stats")
    assert api.status_code == 403 and api.json()["detail"]
    page = client.get("/dashboard")
    assert page.status_code == 403 and "Ei käyttöoikeutta" in page.text  # a page, not JSON
    assert 'href="/dashboard"' not in client.get("/").text
    client.cookies.clear()
    _login(client, "osastonhoitaja")
    worklist = client.get("/").text
    assert 'href="/dashboard"' in worklist and 'href="/admin/staff"' not in worklist
    assert client.get("/admin/staff").status_code == 403


def test_the_timeline_counts_calls_by_hour_for_a_day_and_by_day_for_a_week(
    runtime: Runtime,
) -> None:
    fixture(runtime)
    with runtime.db.session() as s:
        day = compute(s, ["demo"], DAY, DAY + timedelta(days=1))
        # the pages' periods are local days: the week's bars are Helsinki's days
        week = compute(s, ["demo"], *local_days(DAY.date(), DAY.date() + timedelta(days=6)))
    assert day.timeline_step == "hour" and len(day.timeline) == 24
    assert [b.calls for b in day.timeline[8:13]] == [1, 1, 1, 1, 1]  # c1…c5, 8 to 12 o'clock
    assert [b.submissions for b in day.timeline[8:13]] == [1, 1, 1, 0, 0]
    assert sum(b.calls for b in day.timeline) == day.calls
    assert sum(b.submissions for b in day.timeline) == day.submissions
    assert week.timeline_step == "day" and len(week.timeline) == 7
    assert [b.calls for b in week.timeline][:2] == [5, 1]
    assert week.timeline[0].routing == day.routing


def test_durations_and_bars_keep_their_milliseconds(runtime: Runtime) -> None:
    """Sub-second times, a call just before the hour, calls at both ends of the period and a
    call without a hang-up time, counted the same on SQLite and PostgreSQL.

    Hand count: calls at 00:00:00 (bar 0), 08:59:59.9996 (bar 8, not 9), 12:00:00.000001
    (bar 12) and 23:59:59.999999 (bar 23); the one at midnight after is outside. Ready 1.2504 s,
    2.5 s and 4.75 s after hang-up: median 2.5 s (the call without a hang-up time has none).
    Callbacks done 90.5 s after hang-up, at the end of the promised window (within it), and
    10 min after the start of the call without a hang-up time (past its window): median
    (1.508 + 10) / 2 = 5.754 → 5.8 min, within 1 of 2.
    """
    ms = timedelta(milliseconds=1)
    with runtime.db.session() as s:
        at_midnight = _call(s, "demo", 0, route="callback")
        at_midnight.ended_at = None
        before_nine = _call(s, "demo", 9, route="callback")
        at_noon = _call(s, "demo", 12)
        last = _call(s, "demo", 24)
        for call, started in (
            (before_nine, DAY + timedelta(hours=9) - 0.4 * ms),
            (at_noon, DAY + timedelta(hours=12, microseconds=1)),
            (last, DAY + timedelta(days=1, microseconds=-1)),
        ):
            call.started_at, call.ended_at = started, started + timedelta(minutes=3)
        _call(s, "demo", 24).started_at = DAY + timedelta(days=1)  # the next day's first call
        for call, ready_after in ((before_nine, 1250.4), (at_noon, 2500), (last, 4750)):
            assert call.ended_at is not None
            call.ready_at = call.ended_at + ready_after * ms
        assert before_nine.ended_at is not None
        done_at = before_nine.ended_at + timedelta(seconds=90.5)
        s.add(Callback(call_id=before_nine.id, station_id="demo", state="done",
                       window_end=done_at, completed_at=done_at))  # fmt: skip
        s.add(Callback(call_id=at_midnight.id, station_id="demo", state="done",
                       window_end=DAY + timedelta(minutes=5),
                       completed_at=DAY + timedelta(minutes=10)))  # fmt: skip
    with runtime.db.session() as s:
        got = compute(s, ["demo"], DAY, DAY + timedelta(days=1))
    assert got.calls == 4 and got.processing_median_s == 2.5
    assert (got.callbacks_done, got.callback_delay_median_min) == (2, 5.8)
    assert got.callbacks_within_window == 0.5
    bars = {i: b.calls for i, b in enumerate(got.timeline) if b.calls}
    assert bars == {0: 1, 8: 1, 12: 1, 23: 1}


def test_the_region_counts_each_station_as_its_dashboard_does(runtime: Runtime) -> None:
    fixture(runtime)
    period = (DAY, DAY + timedelta(days=7))
    with runtime.db.session() as s:
        each = compute_each(s, ["demo", "other", "empty"], *period)
        alone = {station: compute(s, [station], *period) for station in each}
        together = compute(s, ["demo", "other"], *period)

    def figures(stats: Stats) -> dict[str, object]:
        return {k: v for k, v in stats.as_dict().items() if k not in ("timeline", "timeline_step")}

    assert {st: figures(f) for st, f in each.items()} == {st: figures(f) for st, f in alone.items()}
    assert all(not f.timeline for f in each.values())  # the region shows no timeline
    assert each["empty"].calls == 0 and each["empty"].completion_rate is None
    # Two stations on one dashboard: their counts added, the medians over both.
    assert (together.calls, together.submissions, together.uncertain) == (7, 4, 2)
    assert together.routing == {"callback": 5, "nurse_queue": 1, "digital_path": 1}
    assert together.processing_median_s == 240.0 and together.callback_delay_median_min == 150.0
    assert sum(b.calls for b in together.timeline) == together.calls


STATIONS = ["demo", "north", "south"]


def _a_busy_month(runtime: Runtime, seed: int) -> None:
    """Three stations' month of calls with everything the figures count, at random times to
    the microsecond: the same rows for the same seed on any database."""
    rng = random.Random(seed)
    micro = timedelta(microseconds=1)
    decisions = [("non_urgent", "callback"), ("urgent", "nurse_queue"),
                 ("non_urgent", "digital_path"), ("emergency", "nurse_queue")]  # fmt: skip
    with runtime.db.session() as s:
        for n, station in enumerate(STATIONS[1:]):
            s.add(Station(id=station, name=station, phone_number=f"+35891000000{n}"))
        nurses = [f"{n:032x}" for n in range(3)]
        for nurse in nurses:
            s.add(User(id=nurse, username=f"n{nurse}", display_name="N", password_hash="x"))
        s.flush()
        for n in range(600):
            key = f"{n + 1:032x}"
            started = DAY - timedelta(days=14) + rng.randrange(28 * 86400 * 10**6) * micro
            ended = started + rng.randrange(30 * 10**6, 600 * 10**6) * micro
            ready = ended + rng.randrange(10**8) * micro
            urgency, route = rng.choice([*decisions, (None, None)])
            call = Call(
                id=key,
                station_id=rng.choice(STATIONS),
                call_sid="CA" + key,
                to_number="+358900000000",
                state=CallState.READY,
                started_at=started,
                ended_at=ended if rng.random() < 0.95 else None,
                ready_at=ready if rng.random() < 0.8 else None,
                urgency=urgency,
                route=route,
            )
            s.add(call)
            if rng.random() < 0.85:
                words = rng.choice([RecordingState.TRANSCRIBED, RecordingState.SILENT])
                s.add(Recording(id=key, call_id=key, sequence=1, recording_sid="RE" + key,
                                prompt_key="reason", state=words))  # fmt: skip
            if urgency is not None and route is not None:
                s.add(TriageDecision(id="a" + key[1:], call_id=key, source="pretriage",
                                     urgency=urgency, route=route, ruleset_version="t",
                                     uncertain=rng.random() < 0.1, created_at=ended))  # fmt: skip
                if rng.random() < 0.15:
                    urgency, route = rng.choice(decisions)
                    s.add(TriageDecision(id="b" + key[1:], call_id=key, source="nurse",
                                         urgency=urgency, route=route, ruleset_version="t",
                                         created_at=ended + timedelta(minutes=5)))  # fmt: skip
            if route == "callback" or rng.random() < 0.1:
                done = started + rng.randrange(10**10) * micro if rng.random() < 0.7 else None
                promised = started + rng.randrange(1, 6) * timedelta(hours=1)
                s.add(Callback(id=key, call_id=key, station_id=call.station_id,
                               state="done" if done else "open", window_end=promised,
                               completed_at=done))  # fmt: skip
            for question in rng.sample(["useful", "understandable", "recommend"], rng.randrange(3)):
                s.add(CallerFeedback(call_id=key, question=question, answer=rng.choice([1, 2])))
            for later in range(rng.choice([0, 0, 1, 1, 2])):
                usage = rng.choice(["as_is", "edited", "not_used"])
                s.add(SummaryFeedback(call_id=key, user_id=rng.choice(nurses), usage=usage,
                                      created_at=ended + later * timedelta(minutes=7)))  # fmt: skip


@pytest.mark.postgres
def test_sqlite_and_postgresql_count_a_busy_month_alike(
    postgres_url: str, sqlite_template: Path, tmp_path: Path
) -> None:
    """The same rows on both databases give the same figures, to the last digit: the counts,
    the medians of durations computed in SQL and the timeline's bars."""
    _reset_pg(postgres_url)
    day = timedelta(days=1)
    fresh_sqlite(sqlite_template, tmp_path / "lite" / "esitieto.sqlite3")
    figures = []
    for settings in (
        make_settings(tmp_path / "lite"),
        make_settings(tmp_path / "pg", postgres_url),
    ):
        rt = Runtime(settings)
        prepare(rt)
        _a_busy_month(rt, seed=11)
        with rt.db.session() as s:
            got: dict[str, object] = {}
            # a local day (by hour), a week and the whole month (by day)
            for first, days in ((DAY.date(), 1), (DAY.date(), 7), (DAY.date() - 14 * day, 30)):
                since, until = local_days(first, first + (days - 1) * day)
                got[f"{days} each"] = {
                    st: f.as_dict() for st, f in compute_each(s, STATIONS, since, until).items()
                }
                got[f"{days} one"] = compute(s, ["north"], since, until).as_dict()
                got[f"{days} all"] = compute(s, STATIONS, since, until).as_dict()
        rt.close()
        figures.append(got)
    lite, pg = figures
    assert lite == pg
    month = lite["30 all"]
    assert isinstance(month, dict) and month["calls"] == 600 and month["agreement_assessed"] > 50
    assert month["processing_median_s"] is not None and month["raised"] > 0


@pytest.mark.parametrize(
    ("day", "hours"),
    [(date(2026, 10, 25), 25), (date(2026, 3, 29), 23)],
)
def test_the_days_the_clocks_change_have_all_their_hours(
    runtime: Runtime, day: date, hours: int
) -> None:
    """In Helsinki the clocks go back on 25 October 2026 (a day of 25 hours: 03:00–03:59
    comes twice) and forward on 29 March (23 hours): the day's timeline has a bar for each
    hour there was, and the calls at the repeated hour fall in two bars."""
    since, until = local_days(day, day)
    with runtime.db.session() as s:
        for minutes in (30, 90, 150):  # 30 minutes into the day's 1st, 2nd and 3rd UTC hour
            _call_at(s, since + timedelta(hours=2, minutes=minutes))
    with runtime.db.session() as s:
        got = compute(s, ["demo"], since, until)
    assert got.timeline_step == "hour" and len(got.timeline) == hours
    assert [b.calls for b in got.timeline[2:5]] == [1, 1, 1]
    assert [b.start.astimezone(UTC) for b in got.timeline[:2]] == [since, since + HOUR]


def test_a_week_across_the_change_of_the_clocks_has_seven_local_days(runtime: Runtime) -> None:
    """22–28 October 2026: a call at 23:30 on Sunday the 25th (after the clocks went back)
    belongs to Sunday, one at 00:30 on Monday to Monday; each bar starts at local midnight."""
    helsinki = ZoneInfo("Europe/Helsinki")
    since, until = local_days(date(2026, 10, 22), date(2026, 10, 28))
    with runtime.db.session() as s:
        for local in ((25, 23, 30), (26, 0, 30), (22, 0, 5), (28, 23, 55)):
            day, hour, minute = local
            _call_at(s, datetime(2026, 10, day, hour, minute, tzinfo=helsinki).astimezone(UTC))
    with runtime.db.session() as s:
        got = compute(s, ["demo"], since, until)
    assert got.timeline_step == "day" and len(got.timeline) == 7
    assert [b.calls for b in got.timeline] == [1, 0, 0, 1, 1, 0, 1]
    starts = [b.start.astimezone(helsinki) for b in got.timeline]
    assert [(d.day, d.hour, d.minute) for d in starts] == [(n, 0, 0) for n in range(22, 29)]
    assert sum(b.calls for b in got.timeline) == got.calls == 4


HOUR = timedelta(hours=1)


def _call_at(s: Session, started: datetime) -> None:
    s.add(
        Call(
            station_id="demo",
            call_sid="CA" + uuid.uuid4().hex,
            to_number="+358900000000",
            state=CallState.READY,
            started_at=started,
            ended_at=started + timedelta(minutes=3),
        )
    )
