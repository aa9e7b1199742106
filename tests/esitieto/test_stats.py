"""The adoption figures against a small fixture counted by hand."""

from __future__ import annotations

import csv
import io
import re
import uuid
from datetime import UTC, datetime, timedelta

from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from esitieto.runtime import Runtime
from esitieto.stats import compute
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
        week = compute(s, ["demo"], DAY, DAY + timedelta(days=7))
    assert day.timeline_step == "hour" and len(day.timeline) == 24
    assert [b.calls for b in day.timeline[8:13]] == [1, 1, 1, 1, 1]  # c1…c5, 8 to 12 o'clock
    assert [b.submissions for b in day.timeline[8:13]] == [1, 1, 1, 0, 0]
    assert sum(b.calls for b in day.timeline) == day.calls
    assert sum(b.submissions for b in day.timeline) == day.submissions
    assert week.timeline_step == "day" and len(week.timeline) == 7
    assert [b.calls for b in week.timeline][:2] == [5, 1]
    assert week.timeline[0].routing == day.routing
