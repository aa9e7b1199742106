"""``esitieto bench web``: the worklist and the dashboard for a station with 5,000 cases, and
(``region``) the region's view of 30 stations with a month of calls each.

A fresh SQLite database gets N synthetic cases (all fields the pages show: urgency, route,
callback windows, summaries, survey answers, nurse decisions); then each page is requested
repeatedly through the real app, signed in as the station's nurse, and timed.
"""

from __future__ import annotations

import random
import re
import statistics
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

from pydantic import SecretStr

URGENCIES = (("non_urgent", "callback"), ("non_urgent", "digital_path"), ("urgent", "nurse_queue"),
             ("emergency", "nurse_queue"), ("urgent", "callback"))  # fmt: skip


def seed(session: Any, station_id: str, cases: int, rng: random.Random) -> None:
    from models import (
        Call,
        Callback,
        CallerFeedback,
        CallState,
        Summary,
        TriageDecision,
        utcnow,
    )

    now = utcnow()
    for i in range(cases):
        urgency, route = rng.choice(URGENCIES)
        started = now - timedelta(minutes=rng.randint(0, 60 * 24 * 28))
        call = Call(
            id=uuid.uuid4().hex,
            station_id=station_id,
            call_sid="CA" + uuid.uuid4().hex,
            to_number="+358900000000",
            from_number=f"+35840{i:07d}",
            state=CallState.READY,
            started_at=started,
            ended_at=started + timedelta(minutes=3),
            ready_at=started + timedelta(minutes=3, seconds=rng.randint(5, 60)),
            urgency=urgency,
            urgency_rank={"non_urgent": 0, "urgent": 1, "emergency": 2}[urgency],
            route=route,
            reason=rng.choice(["Kuume ja yskä 3 vrk", "Reseptin uusiminen", "Selkäkipu"]),
            language=rng.choice(["fi", "fi", "sv", "en"]),
        )
        session.add(call)
        session.add(
            Summary(
                call_id=call.id,
                generator="deterministic",
                source_text="…",
                reason=call.reason or "",
                note="Syy: …",
                data={"age": rng.randint(1, 95)},
            )
        )
        session.add(TriageDecision(call_id=call.id, source="pretriage", urgency=urgency,
                                   route=route, ruleset_version="bench"))  # fmt: skip
        if route == "callback":
            done = rng.random() < 0.7
            session.add(
                Callback(
                    call_id=call.id,
                    station_id=station_id,
                    state="done" if done else "open",
                    window_start=call.ended_at,
                    window_end=started + timedelta(hours=2),
                    completed_at=started + timedelta(minutes=rng.randint(20, 240))
                    if done
                    else None,
                )
            )
        if rng.random() < 0.3:
            question = rng.choice(["useful", "understandable", "recommend"])
            session.add(
                CallerFeedback(call_id=call.id, question=question, answer=rng.choice([1, 1, 2]))
            )
        if i % 500 == 499:
            session.flush()


def seed_followup(session: Any, station_id: str, rng: random.Random) -> None:
    """What a station's calls leave behind besides the case, so that every measure of the
    region's view has rows to count: the caller's recorded answer (most with words), calls
    pretriage found unclear, nurses' overrides and their word on the summaries (a later word
    on some)."""
    from sqlalchemy import insert, select, update

    from models import Call, Recording, RecordingState, SummaryFeedback, TriageDecision, User

    nurses = [
        User(username=f"{station_id}-hoitaja-{i}", display_name=f"Hoitaja {i}", password_hash=None)
        for i in range(4)
    ]
    session.add_all(nurses)
    session.flush()
    calls = session.execute(
        select(Call.id, Call.ended_at).where(Call.station_id == station_id)
    ).all()
    recordings: list[dict[str, Any]] = []
    overrides: list[dict[str, Any]] = []
    feedback: list[dict[str, Any]] = []
    unclear: list[str] = []
    for call_id, ended_at in calls:
        if rng.random() < 0.9:
            words = rng.random() < 0.94
            recordings.append({"id": uuid.uuid4().hex, "call_id": call_id, "sequence": 1,
                               "recording_sid": "RE" + uuid.uuid4().hex, "prompt_key": "reason",
                               "state": RecordingState.TRANSCRIBED if words
                               else RecordingState.SILENT})  # fmt: skip
        if rng.random() < 0.05:
            unclear.append(call_id)
        if rng.random() < 0.05:
            urgency, route = rng.choice(URGENCIES)
            overrides.append({"id": uuid.uuid4().hex, "call_id": call_id, "source": "nurse",
                              "urgency": urgency, "route": route, "ruleset_version": "bench",
                              "created_at": ended_at + timedelta(minutes=10)})  # fmt: skip
        words_on_summary = 0 if rng.random() < 0.5 else 2 if rng.random() < 0.1 else 1
        for later in range(words_on_summary):
            feedback.append({"id": uuid.uuid4().hex, "call_id": call_id,
                             "user_id": rng.choice(nurses).id,
                             "usage": rng.choice(["as_is", "as_is", "edited", "not_used"]),
                             "created_at": ended_at + timedelta(minutes=20 + later)})  # fmt: skip
    for model, rows in ((Recording, recordings), (TriageDecision, overrides),
                        (SummaryFeedback, feedback)):  # fmt: skip
        if rows:
            session.execute(insert(model), rows)
    session.execute(
        update(TriageDecision)
        .where(TriageDecision.call_id.in_(unclear), TriageDecision.source == "pretriage")
        .values(uncertain=True)
    )


def run(cases: int = 5000, repeats: int = 20) -> dict[str, Any]:

    from esitieto.app import prepare
    from esitieto.runtime import Runtime
    from esitieto.settings import DemoSettings, Settings, WorkerSettings

    with tempfile.TemporaryDirectory(prefix="esitieto-bench-web-") as tmp:
        settings = Settings(
            data_dir=Path(tmp),
            worker=WorkerSettings(mode="external"),
            demo=DemoSettings(enabled=True, nurse_password=SecretStr("bench-password")),
        )
        rt = Runtime(settings)
        prepare(rt)
        with rt.db.session() as s:
            seed(s, "demo", cases, random.Random(7))
        # The station lead sees both the worklist and the dashboard.
        timings = time_pages(rt, "osastonhoitaja", {
            "worklist (active)": "/",
            "worklist (all)": "/?state=all",
            "dashboard (day)": "/dashboard?period=day",
            "dashboard (week)": "/dashboard?period=week",
            "dashboard (month)": "/dashboard?period=month",
        }, repeats)  # fmt: skip
        rt.close()
    return {
        "cases": cases,
        "pages": _figures(timings),
    }


def run_region(
    stations: int = 30, cases: int = 1000, repeats: int = 10, postgres: str | None = None
) -> dict[str, Any]:
    """The region's page and API over ``stations`` stations with ``cases`` calls each in the
    last four weeks, signed in with the region role; on SQLite, or in a throwaway database
    on the PostgreSQL server ``postgres`` (an SQLAlchemy URL of any database there)."""
    with tempfile.TemporaryDirectory(prefix="esitieto-bench-region-") as tmp:
        if postgres is None:
            return _run_region(Path(tmp), None, stations, cases, repeats)
        with throwaway_database(postgres) as url:
            return _run_region(Path(tmp), url, stations, cases, repeats)


@contextmanager
def throwaway_database(server_url: str) -> Iterator[str]:
    """A new, empty database on the PostgreSQL server of ``server_url``, dropped after."""
    from sqlalchemy import create_engine, make_url, text

    name = f"esitieto_bench_{uuid.uuid4().hex[:10]}"
    admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        try:
            yield make_url(server_url).set(database=name).render_as_string(hide_password=False)
        finally:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()


def _run_region(
    tmp: Path, database_url: str | None, stations: int, cases: int, repeats: int
) -> dict[str, Any]:
    from sqlalchemy import text

    from esitieto.app import prepare
    from esitieto.runtime import Runtime
    from esitieto.settings import DatabaseSettings, DemoSettings, Settings, WorkerSettings
    from esitieto.web.auth import hash_password
    from models import Role, Station, User

    settings = Settings(
        data_dir=tmp,
        database=DatabaseSettings(url=database_url),
        worker=WorkerSettings(mode="external"),
        demo=DemoSettings(enabled=True, nurse_password=SecretStr("bench-password")),
    )
    rt = Runtime(settings)
    prepare(rt)
    rng = random.Random(7)
    with rt.db.session() as s:
        for n in range(stations):
            s.add(Station(id=f"st{n:02d}", name=f"Asema {n:02d}",
                          phone_number=f"+3589100{n:05d}"))  # fmt: skip
        s.add(User(username="alue", display_name="Alue", role=Role.REGION,
                   password_hash=hash_password("bench-password")))  # fmt: skip
    for n in range(stations):
        with rt.db.session() as s:
            seed(s, f"st{n:02d}", cases, rng)
            seed_followup(s, f"st{n:02d}", rng)
    with rt.db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as db:
        # The planner's statistics and (PostgreSQL) the visibility map, as a live database
        # has them from autovacuum: straight after a bulk load they are missing, and
        # autovacuum would start on them in the middle of the timing.
        postgres = db.dialect.name == "postgresql"
        db.execute(text("VACUUM ANALYZE" if postgres else "ANALYZE"))
    timings = time_pages(rt, "alue", {
        "region page (month)": "/region?period=month",
        "region API (month, JSON)": "/api/v1/region",
        "region API (month, CSV)": "/api/v1/region?format=csv",
    }, repeats)  # fmt: skip
    dialect = rt.db.engine.dialect.name
    rt.close()
    return {
        "database": dialect,
        "stations": stations,
        "cases_per_station": cases,
        "pages": _figures(timings),
    }


def time_pages(
    rt: Any, username: str, pages: dict[str, str], repeats: int
) -> dict[str, list[float]]:
    """Each page requested ``repeats`` times through the real app, signed in as ``username``
    (password ``bench-password``), after one warm-up request."""
    from fastapi.testclient import TestClient

    from esitieto.app import create_app

    timings: dict[str, list[float]] = {}
    with TestClient(create_app(runtime=rt)) as client:
        token = re.search(r'name="csrf" value="([^"]+)"', client.get("/login").text)
        assert token is not None
        client.post("/login", data={"username": username, "password": "bench-password",
                                    "csrf": token.group(1)})  # fmt: skip
        for name, url in pages.items():
            client.get(url)  # warm-up
            for _ in range(repeats):
                started = time.perf_counter()
                response = client.get(url)
                timings.setdefault(name, []).append(time.perf_counter() - started)
                if response.status_code != 200:
                    raise RuntimeError(f"{url} answered {response.status_code}")
    return timings


def _figures(timings: dict[str, list[float]]) -> dict[str, dict[str, float]]:
    return {
        name: {"p50_ms": round(statistics.median(v) * 1000, 1), "max_ms": round(max(v) * 1000, 1)}
        for name, v in timings.items()
    }
