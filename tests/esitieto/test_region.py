"""The region's view: every station side by side, against the hand-counted fixture of
``test_stats.py``, and only for the region role."""

from __future__ import annotations

import csv
import io
import re
from datetime import timedelta

from fastapi.testclient import TestClient

from esitieto.region import MEASURES, region_figures, sort_rows
from esitieto.runtime import Runtime
from esitieto.web.auth import hash_password
from models import Role, Station, User
from tests.esitieto.test_stats import DAY, fixture

DEMO = {
    "calls": 5,
    "pre_information": 3,
    "completion_rate": 0.6,
    "nurse_queue": 0.2,
    "callback": 0.6,
    "digital_path": 0.2,
    "uncertain": 0.2,
    "callback_delay_median_min": 150.0,
    "callbacks_within_window": 0.5,
    "summary_used": 1.0,  # c1 as is (its latest word), c2 edited
    "nurses_using": 1.0,  # the one nurse who said anything used them
    "useful": 0.5,
    "understandable": None,
    "recommend": 1.0,
    "agreement_rate": 0.5,
    "processing_median_s": 240.0,
}
OTHER = {
    **{m: None for m in MEASURES},
    "calls": 1,
    "pre_information": 1,
    "completion_rate": 1.0,
    "nurse_queue": 0.0,
    "callback": 1.0,
    "digital_path": 0.0,
    "uncertain": 1.0,
}


def test_each_station_matches_the_hand_count(runtime: Runtime) -> None:
    fixture(runtime)
    with runtime.db.session() as s:
        stations = list(s.query(Station).order_by(Station.id))
        rows = {
            r.station_id: r.values
            for r in region_figures(s, stations, DAY, DAY + timedelta(days=1))
        }
    assert rows["demo"] == DEMO
    assert rows["other"] == OTHER


def test_rows_sort_by_any_measure_with_the_unknown_last(runtime: Runtime) -> None:
    fixture(runtime)
    with runtime.db.session() as s:
        stations = list(s.query(Station))
        rows = region_figures(s, stations, DAY, DAY + timedelta(days=1))
    assert [r.station_id for r in sort_rows(rows, "calls", descending=True)] == ["demo", "other"]
    assert [r.station_id for r in sort_rows(rows, "uncertain", descending=False)] == [
        "demo",
        "other",
    ]
    by_delay = sort_rows(rows, "callback_delay_median_min", descending=True)
    assert [r.station_id for r in by_delay] == ["demo", "other"]  # other has none: last
    assert [r.station_id for r in sort_rows(rows, "callback_delay_median_min", False)][
        -1
    ] == "other"


def _region_user(runtime: Runtime) -> None:
    with runtime.db.session() as s:
        s.add(
            User(
                username="alue",
                display_name="Alue",
                password_hash=hash_password("region-password"),
                role=Role.REGION,
            )
        )


def _login(client: TestClient, username: str, password: str) -> None:
    token = re.search(r'name="csrf" value="([^"]+)"', client.get("/login").text)
    assert token
    client.post("/login", data={"username": username, "password": password, "csrf": token.group(1)})


def test_the_region_api_for_the_region_role_only(client: TestClient, runtime: Runtime) -> None:
    fixture(runtime)
    _region_user(runtime)
    assert client.get("/api/v1/region").status_code == 401
    _login(client, "osastonhoitaja", "demo-password")
    assert client.get("/api/v1/region").status_code == 403  # a station lead sees her own only
    client.cookies.clear()
    _login(client, "alue", "region-password")
    got = client.get("/api/v1/region?from=2026-11-16&to=2026-11-17&sort=calls&order=desc").json()
    assert [r["station"] for r in got["stations"]][:2] == ["demo", "other"]
    demo = next(r for r in got["stations"] if r["station"] == "demo")
    assert {m: demo[m] for m in MEASURES} == DEMO
    as_csv = client.get("/api/v1/region?from=2026-11-16&to=2026-11-17&format=csv")
    rows = {r["station"]: r for r in csv.DictReader(io.StringIO(as_csv.text))}
    assert rows["demo"]["calls"] == "5" and rows["other"]["understandable"] == ""
    assert client.get("/api/v1/region?sort=colour").status_code == 400
    assert client.get("/api/v1/region?from=2026-11-17&to=2026-11-16").status_code == 400
    # and nothing of the cases themselves
    assert client.get("/").status_code == 403
    assert client.get("/dashboard").status_code == 403


def test_the_region_page_sorts_and_charts_every_measure(
    client: TestClient, runtime: Runtime
) -> None:
    fixture(runtime)
    _region_user(runtime)
    token = re.search(r'name="csrf" value="([^"]+)"', client.get("/login").text)
    assert token
    landed = client.post(
        "/login",
        data={"username": "alue", "password": "region-password", "csrf": token.group(1)},
        follow_redirects=False,
    )
    assert landed.headers["location"] == "/region"  # the region role's home
    page = client.get("/region?period=day&to=2026-11-16&sort=calls&order=desc")
    assert page.status_code == 200
    html = page.text
    assert html.index('id="station-demo"') < html.index('id="station-other"')
    assert 'aria-sort="descending"' in html
    assert all(f'id="chart-{m}"' in html for m in MEASURES)
    assert 'data-measure="completion_rate">60' in html  # 3 of 5, as a percentage
    assert 'href="/"' not in html.split("<main")[0]  # no link to the worklist: not hers
    ascending = client.get("/region?period=day&to=2026-11-16&sort=calls&order=asc").text
    assert ascending.index('id="station-other"') < ascending.index('id="station-demo"')


def test_the_staff_page_names_a_region_account(client: TestClient, runtime: Runtime) -> None:
    _region_user(runtime)
    _login(client, "paakayttaja", "demo-password")
    page = client.get("/admin/staff")
    assert page.status_code == 200
    assert "Alueen seuranta" in page.text


def test_a_station_or_a_period_without_calls_shows_no_rates(runtime: Runtime) -> None:
    fixture(runtime)
    with runtime.db.session() as s:
        s.add(Station(id="quiet", name="Hiljainen", phone_number="+358900000098"))
    nothing = {**{m: None for m in MEASURES}, "calls": 0, "pre_information": 0}
    with runtime.db.session() as s:
        stations = list(s.query(Station).order_by(Station.id))
        day = region_figures(s, stations, DAY, DAY + timedelta(days=1))
        week_before = region_figures(s, stations, DAY - timedelta(days=7), DAY)
    assert {r.station_id: r.values for r in day}["quiet"] == nothing
    assert [r.values for r in week_before] == [nothing] * len(stations)
