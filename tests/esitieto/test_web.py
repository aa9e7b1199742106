"""The nurse's pages: login, CSRF, the worklist order, the case page and station isolation."""

from __future__ import annotations

import csv
import io
import re
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from esitieto.runtime import Runtime
from esitieto.web.auth import hash_password, safe_next
from esitieto.web.i18n import messages
from models import (
    AuditEvent,
    Call,
    Callback,
    CallState,
    Recording,
    RecordingState,
    Station,
    StationMembership,
    Summary,
    Transcript,
    TranscriptSegment,
    User,
    utcnow,
)
from tests.conftest import API


def _csrf(client: TestClient, path: str = "/login") -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', client.get(path).text)
    assert match, "page has no CSRF token"
    return match.group(1)


def login(client: TestClient, username: str = "hoitaja", password: str = "demo-password"):
    return client.post(
        "/login",
        data={"username": username, "password": password, "csrf": _csrf(client)},
        follow_redirects=False,
    )


def _add_case(
    runtime: Runtime, *, station: str = "demo", urgency: str | None, rank: int, reason: str
) -> str:
    with runtime.db.session() as s:
        call = Call(
            station_id=station,
            call_sid="CA" + reason.encode().hex()[:32].ljust(32, "0"),
            to_number="+358900000000",
            from_number="+358401111111",
            state=CallState.READY,
            urgency=urgency,
            urgency_rank=rank,
            route="callback",
            reason=reason,
        )
        s.add(call)
        s.flush()
        rec = Recording(
            call_id=call.id,
            recording_sid="RE" + call.call_sid[2:],
            sequence=1,
            prompt_key="reason",
            state=RecordingState.TRANSCRIBED,
            storage_key=f"{call.call_sid}/a.wav",
            content_type="audio/wav",
        )
        s.add(rec)
        s.flush()
        t = Transcript(
            recording_id=rec.id,
            call_id=call.id,
            engine="faster-whisper",
            model="base",
            language="fi",
            text=f"Sanat: {reason}",
        )
        t.segments = [TranscriptSegment(seq=0, start_s=0.0, end_s=2.5, text=f"Sanat: {reason}")]
        s.add(t)
        s.add(
            Summary(
                call_id=call.id,
                generator="rules",
                source_text=t.text,
                reason=reason,
                note=f"Syy: {reason}",
                data={},
            )
        )
        runtime.storage.put(rec.storage_key or "", b"RIFF-test-audio")
        return call.id


def test_pages_need_a_login(client: TestClient) -> None:
    response = client.get("/", follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == "/login"


def test_wrong_password_is_refused(client: TestClient, runtime: Runtime) -> None:
    response = login(client, password="wrong")
    assert response.status_code == 401
    assert "Väärä käyttäjätunnus tai salasana" in response.text
    with runtime.db.session() as s:
        assert s.scalar(select(AuditEvent.action)) == "login_failed"


def test_login_without_csrf_token_is_refused(client: TestClient) -> None:
    response = client.post("/login", data={"username": "hoitaja", "password": "demo-password"})
    assert response.status_code == 403
    # the page says the form expired, not that the user's role forbids signing in
    assert messages("fi").errors["csrf_help"] in response.text
    assert messages("fi").errors["403_help"] not in response.text


def test_worklist_shows_most_urgent_first(client: TestClient, runtime: Runtime) -> None:
    _add_case(runtime, urgency="non_urgent", rank=0, reason="Reseptin uusinta")
    _add_case(runtime, urgency="emergency", rank=2, reason="Rintakipu")
    _add_case(runtime, urgency="urgent", rank=1, reason="Korkea kuume")
    assert login(client).status_code == 303
    page = client.get("/").text
    order = [page.index(r) for r in ("Rintakipu", "Korkea kuume", "Reseptin uusinta")]
    assert order == sorted(order)
    assert "Hätätilanne" in page


def test_what_pretriage_did_not_understand_is_unclear_and_comes_before_callbacks(
    client: TestClient, runtime: Runtime
) -> None:
    _add_case(runtime, urgency="non_urgent", rank=0, reason="Ajanvaraus")  # the older one
    unclear = _add_case(runtime, urgency="non_urgent", rank=0, reason="Outo olo jotenkin")
    with runtime.db.session() as s:
        call = s.get(Call, unclear)
        assert call is not None
        call.uncertain = True
    assert login(client).status_code == 303
    page = client.get("/").text
    assert page.index("Outo olo jotenkin") < page.index("Ajanvaraus")
    row = page[page.index("Outo olo jotenkin") - 2000 : page.index("Outo olo jotenkin")]
    assert "u-uncertain" in page and "Epäselvä – hoitaja arvioi" in page
    assert row.rfind("Epäselvä – hoitaja arvioi") > row.rfind("Ei kiireellinen")
    case_page = client.get(f"/cases/{unclear}").text
    assert "Epäselvä – hoitaja arvioi" in case_page
    assert not re.search(r'value="non_urgent"[^>]*checked', case_page)  # the nurse chooses


def test_case_page_shows_note_transcript_and_plays_audio(
    client: TestClient, runtime: Runtime
) -> None:
    case_id = _add_case(runtime, urgency="urgent", rank=1, reason="Korvakipu")
    login(client)
    page = client.get(f"/cases/{case_id}")
    assert page.status_code == 200
    assert "Syy: Korvakipu" in page.text
    assert "Sanat: Korvakipu" in page.text
    audio = re.search(r'<audio[^>]+src="([^"]+)"', page.text)
    assert audio
    played = client.get(audio.group(1))
    assert played.status_code == 200
    assert played.content == b"RIFF-test-audio"
    with runtime.db.session() as s:
        actions = set(s.scalars(select(AuditEvent.action)).all())
    assert {"login", "view_case", "play_recording"} <= actions


def test_nurses_see_only_their_own_stations(client: TestClient, runtime: Runtime) -> None:
    with runtime.db.session() as s:
        s.add(Station(id="other", name="Toinen", phone_number="+358900000001"))
        user = User(username="muu", display_name="Muu", password_hash=hash_password("pw-123456"))
        s.add(user)
        s.flush()
        s.add(StationMembership(user_id=user.id, station_id="other"))
    case_id = _add_case(runtime, urgency="urgent", rank=1, reason="Demon asia")
    login(client, "muu", "pw-123456")
    assert "Demon asia" not in client.get("/").text
    assert client.get(f"/cases/{case_id}").status_code == 404


def test_logout_ends_the_session(client: TestClient) -> None:
    login(client)
    token = _csrf(client, "/")
    assert client.post("/logout", data={"csrf": token}, follow_redirects=False).status_code == 303
    assert client.get("/", follow_redirects=False).status_code == 303


def test_a_copy_of_the_cookie_opens_nothing_after_sign_out(
    client: TestClient, runtime: Runtime
) -> None:
    case_id = _add_case(runtime, urgency="urgent", rank=1, reason="Korkea kuume")
    login(client)
    stolen = dict(client.cookies)
    token = _csrf(client, "/")
    client.post("/logout", data={"csrf": token}, follow_redirects=False)
    thief = TestClient(client.app, cookies=stolen)
    response = thief.get(f"/cases/{case_id}", follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == "/login"
    assert thief.get("/api/v1/stats?station=demo").status_code == 401


def test_a_session_left_idle_ends(client: TestClient, runtime: Runtime) -> None:
    from models import StaffSession

    login(client)
    assert client.get("/", follow_redirects=False).status_code == 200
    idle = timedelta(seconds=runtime.settings.web.idle_timeout_s + 60)
    with runtime.db.session() as s:
        row = s.scalar(select(StaffSession).where(StaffSession.ended_at.is_(None)))
        assert row is not None
        row.last_seen_at -= idle
        sid = row.id
    assert client.get("/", follow_redirects=False).headers["location"] == "/login"
    with runtime.db.session() as s:
        row = s.get(StaffSession, sid)
        assert row is not None and row.ended_at is not None


def _pretriaged(runtime: Runtime, urgency: str, route: str, reason: str) -> str:
    from models import TriageDecision

    case_id = _add_case(runtime, urgency=urgency, rank=0, reason=reason)
    with runtime.db.session() as s:
        s.add(
            TriageDecision(
                call_id=case_id,
                source="pretriage",
                urgency=urgency,
                route=route,
                reasons=[{"rule": "r", "text": "Sääntö", "evidence": []}],
                ruleset_version="test",
            )
        )
    return case_id


def test_a_nurse_overrides_pretriage_and_both_decisions_show(
    client: TestClient, runtime: Runtime
) -> None:
    from models import TriageDecision

    case_id = _pretriaged(runtime, "non_urgent", "callback", "Selkäkipu")
    login(client)
    token = _csrf(client, f"/cases/{case_id}")
    form = {"urgency": "urgent", "route": "nurse_queue", "reason": "Kipu pahentunut", "csrf": token}
    saved = client.post(f"/cases/{case_id}/override", data=form, follow_redirects=False)
    assert saved.status_code == 303
    page = client.get(saved.headers["location"])
    assert "Tallennettu." in page.text
    assert "Hoitajan arvio" in page.text and "Pretriagen arvio" in page.text
    with runtime.db.session() as s:
        call = s.get(Call, case_id)
        assert call is not None and (call.urgency, call.route) == ("urgent", "nurse_queue")
        sources = s.scalars(
            select(TriageDecision.source).where(TriageDecision.call_id == case_id)
        ).all()
        assert sorted(sources) == ["nurse", "pretriage"]
        assert "override_triage" in set(s.scalars(select(AuditEvent.action)).all())


def test_a_wrong_override_is_refused_with_the_nurses_words_and_keeps_the_input(
    client: TestClient, runtime: Runtime
) -> None:
    case_id = _pretriaged(runtime, "non_urgent", "callback", "Yskä")
    login(client)
    token = _csrf(client, f"/cases/{case_id}")
    form = {
        "urgency": "urgent",
        "route": "digital_path",
        "digital_path": "uti",
        "reason": "Oma perustelu tähän",
        "csrf": token,
    }
    refused = client.post(f"/cases/{case_id}/override", data=form)
    assert refused.status_code == 422
    assert "Kiireellistä tai hätätilannetta ei voi ohjata digipolulle" in refused.text
    assert "Oma perustelu tähän" in refused.text
    no_csrf = client.post(f"/cases/{case_id}/override", data={**form, "csrf": "wrong"})
    assert no_csrf.status_code in (400, 403)
    with runtime.db.session() as s:
        call = s.get(Call, case_id)
        assert call is not None and (call.urgency, call.route) == ("non_urgent", "callback")


def test_worklist_filters_flags_windows_about_to_be_missed_and_shows_age(
    client: TestClient, runtime: Runtime
) -> None:
    from datetime import timedelta

    from models import Callback, Summary, utcnow

    soon = _add_case(runtime, urgency="non_urgent", rank=0, reason="Selkäkipu")
    done = _add_case(runtime, urgency="non_urgent", rank=0, reason="Yskä")
    queue = _add_case(runtime, urgency="urgent", rank=1, reason="Hengenahdistus")
    now = utcnow()
    with runtime.db.session() as s:
        s.add(Callback(call_id=soon, station_id="demo", state="open",
                       window_start=now - timedelta(minutes=40),
                       window_end=now + timedelta(minutes=10)))  # fmt: skip
        s.add(Callback(call_id=done, station_id="demo", state="done"))
        q = s.get(Call, queue)
        assert q is not None
        q.route = "nurse_queue"
        summary = s.scalar(select(Summary).where(Summary.call_id == soon))
        assert summary is not None
        summary.data = {"age": 67}
    login(client)
    page = client.get("/").text
    assert "Selkäkipu" in page and "Hengenahdistus" in page and "Yskä" not in page
    assert "window-soon" in page and "Soittoaika päättymässä" in page and ">67<" in page
    assert "Yskä" in client.get("/?state=all").text
    only_queue = client.get("/?route=nurse_queue&state=all").text
    assert "Hengenahdistus" in only_queue and "Selkäkipu" not in only_queue


def test_worklist_events_tell_the_page_when_a_case_changes(
    client: TestClient, runtime: Runtime
) -> None:
    login(client)
    with client.stream("GET", "/worklist/events?max_s=0.5") as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        body = "".join(response.iter_text())
    assert "event: changed" in body
    assert client.get("/worklist/events?max_s=0.5").status_code == 200
    client.cookies.clear()
    assert client.get("/worklist/events", follow_redirects=False).status_code == 303


def test_a_nurse_marks_the_callback_done_and_says_how_the_summary_was_used(
    client: TestClient, runtime: Runtime
) -> None:
    from models import Callback, SummaryFeedback

    case_id = _add_case(runtime, urgency="non_urgent", rank=0, reason="Korvakipu")
    with runtime.db.session() as s:
        s.add(Callback(call_id=case_id, station_id="demo", state="open"))
    login(client)
    page = client.get(f"/cases/{case_id}").text
    assert 'id="copy-note"' in page and 'id="callback-done-form"' in page
    token = _csrf(client, f"/cases/{case_id}")
    for _ in range(2):  # a double click records it once
        done = client.post(
            f"/cases/{case_id}/callback-done",
            data={"outcome": "reached", "csrf": token},
            follow_redirects=False,
        )
        assert done.status_code == 303
    used = client.post(
        f"/cases/{case_id}/summary-feedback",
        data={"usage": "edited", "comment": "lisäsin lääkityksen", "csrf": token},
        follow_redirects=False,
    )
    assert used.status_code == 303
    bad = client.post(
        f"/cases/{case_id}/summary-feedback", data={"comment": "kiire", "csrf": token}
    )  # no choice made: the form again, saying what is missing, the comment kept
    assert bad.status_code == 422
    assert messages("fi").summary_use_missing in bad.text and 'value="kiire"' in bad.text
    with runtime.db.session() as s:
        cb = s.scalar(select(Callback).where(Callback.call_id == case_id))
        assert cb is not None and (cb.state, cb.outcome) == ("done", "reached")
        assert cb.completed_at is not None and cb.completed_by is not None
        fb = s.scalars(select(SummaryFeedback).where(SummaryFeedback.call_id == case_id)).all()
        assert [(f.usage, f.comment) for f in fb] == [("edited", "lisäsin lääkityksen")]
        actions = list(s.scalars(select(AuditEvent.action)))
        assert actions.count("callback_done") == 1 and "summary_feedback" in actions
    # the worklist's default view is what is left to do
    assert "Korvakipu" not in client.get("/").text


def test_each_fact_links_to_the_callers_words_and_segments_play_their_moment(
    client: TestClient, runtime: Runtime
) -> None:
    from esitieto.web.pages import evidence_facts, highlight
    from pretriage.analysis import analyze_text

    text = "Minulla on ollut kuumetta kaksi päivää. Ei hengenahdistusta."
    result = analyze_text(None, text)
    case_id = _add_case(runtime, urgency="non_urgent", rank=0, reason="Kuume")
    with runtime.db.session() as s:
        summary = s.scalar(select(Summary).where(Summary.call_id == case_id))
        assert summary is not None
        summary.source_text = text
        summary.data = result.summary.model_dump(mode="json")
    facts = evidence_facts(result.summary.model_dump(mode="json"))
    pieces = highlight(text, facts)
    assert "".join(p.text for p in pieces) == text  # nothing lost, nothing added
    marked = {p.text for p in pieces if p.mark is not None}
    assert "kuumetta" in marked and "hengenahdistusta" in marked
    login(client)
    page = client.get(f"/cases/{case_id}").text
    assert re.search(r'<mark id="ev-\d+" title="[^"]*">kuumetta</mark>', page)
    assert 'href="#ev-' in page
    segment = re.search(r'<li class="segment"[^>]*data-start="([\d.]+)" data-audio="([^"]+)"', page)
    assert segment and f'id="{segment.group(2)}"' in page


def _with_callback(runtime: Runtime, reason: str, start: datetime, end: datetime) -> str:
    case_id = _add_case(runtime, urgency="non_urgent", rank=0, reason=reason)
    with runtime.db.session() as s:
        s.add(Callback(call_id=case_id, station_id="demo", window_start=start, window_end=end))
    return case_id


def _helsinki(day: date, hour: int) -> datetime:
    return datetime.combine(day, time(hour), ZoneInfo("Europe/Helsinki")).astimezone(UTC)


def test_the_callback_window_says_its_day_unless_it_is_today(
    client: TestClient, runtime: Runtime
) -> None:
    # Saturday 29 November 2025, noon in Helsinki; the pages' "today" is the runtime's clock
    runtime.clock = lambda: datetime(2025, 11, 29, 10, 0, tzinfo=UTC)
    saturday = date(2025, 11, 29)
    passed = _with_callback(runtime, "Aamulla", _helsinki(saturday, 9), _helsinki(saturday, 10))
    _with_callback(runtime, "Tänään", _helsinki(saturday, 14), _helsinki(saturday, 15))
    _with_callback(
        runtime, "Huomenna", _helsinki(date(2025, 11, 30), 8), _helsinki(date(2025, 11, 30), 9)
    )
    monday = _with_callback(
        runtime, "Maanantaina", _helsinki(date(2025, 12, 1), 8), _helsinki(date(2025, 12, 1), 9)
    )
    login(client)

    def windows(language: str) -> dict[str, str]:
        page = client.get("/", headers={"Accept-Language": language}).text
        rows = re.findall(
            r'<a href="/cases/[^"]+">([^<]+)</a></td>.*?<td class="window">(.*?)</td>', page, re.S
        )
        return {reason: re.sub(r"\s*<strong.*", "", cell) for reason, cell in rows}

    assert windows("fi") == {
        "Aamulla": "9.00–10.00",
        "Tänään": "14.00–15.00",
        "Huomenna": "huomenna 8.00–9.00",
        "Maanantaina": "ma 1.12. 8.00–9.00",
    }
    assert windows("sv") == {
        "Aamulla": "9.00–10.00",
        "Tänään": "14.00–15.00",
        "Huomenna": "i morgon 8.00–9.00",
        "Maanantaina": "mån 1.12. 8.00–9.00",
    }
    assert windows("en") == {
        "Aamulla": "9:00–10:00",
        "Tänään": "14:00–15:00",
        "Huomenna": "tomorrow 8:00–9:00",
        "Maanantaina": "Mon 1 Dec 8:00–9:00",
    }
    # the same clock says which window was missed, whatever the wall clock says
    rows = client.get("/").text.split("<tr ")
    assert [r for r in rows if "window-missed" in r] == [r for r in rows if passed in r]
    case = client.get(f"/cases/{monday}").text
    assert '<dd id="callback-window">ma 1.12. 8.00–9.00</dd>' in case


def test_a_window_over_midnight_names_both_days() -> None:
    from esitieto.web.i18n import time_span

    t, today = messages("fi"), date(2025, 11, 29)
    start = datetime(2025, 12, 1, 23, 0)
    assert (
        time_span(start, start + timedelta(hours=2), today, t) == "ma 1.12. 23.00 – ti 2.12. 1.00"
    )
    assert time_span(start, start + timedelta(minutes=30), today, t) == "ma 1.12. 23.00–23.30"


@pytest.mark.parametrize(
    ("target", "safe"),
    [
        ("/cases/abc", True),
        ("/?state=all&route=callback", True),
        ("/", True),
        ("//evil.example/", False),
        ("/\\evil.example/", False),
        ("https://evil.example/", False),
        ("javascript:alert(1)", False),
        ("evil.example", False),
        ("/\tevil", False),
        ("", False),
        (None, False),
    ],
)
def test_only_a_path_of_this_site_is_a_place_to_go_on_to(target: str | None, safe: bool) -> None:
    assert (safe_next(target) == target) if safe else safe_next(target) is None


def test_signing_in_goes_on_to_the_page_that_was_asked_for(
    client: TestClient, runtime: Runtime
) -> None:
    case_id = _add_case(runtime, urgency="urgent", rank=1, reason="Linkistä")
    html = {"Accept": "text/html,application/xhtml+xml"}
    asked = client.get(f"/cases/{case_id}?saved=0", headers=html, follow_redirects=False)
    assert asked.status_code == 303 and asked.headers["location"] == "/login"
    # an audio element's or a script's request while signed out does not change the target
    client.get("/worklist/events", headers={"Accept": "text/event-stream"})
    form = client.get("/login").text
    assert f'name="next" value="/cases/{case_id}?saved=0"' in form
    token = _csrf(client)
    failed = client.post(
        "/login",
        data={"username": "hoitaja", "password": "wrong", "csrf": token,
              "next": f"/cases/{case_id}"},
    )  # fmt: skip
    assert failed.status_code == 401 and f'value="/cases/{case_id}"' in failed.text
    signed_in = client.post(
        "/login",
        data={"username": "hoitaja", "password": "demo-password", "csrf": token,
              "next": f"/cases/{case_id}"},
        follow_redirects=False,
    )  # fmt: skip
    assert signed_in.headers["location"] == f"/cases/{case_id}"
    assert "Linkistä" in client.get(signed_in.headers["location"]).text


@pytest.mark.parametrize(
    "target", ["//evil.example/", "https://evil.example/", "/\\evil.example", "http:evil"]
)
def test_signing_in_never_goes_on_to_another_site(client: TestClient, target: str) -> None:
    page = client.get("/login", params={"next": target}).text
    form = re.search(r'<form method="post" action="/login".*?</form>', page, re.S)
    assert form and 'name="next"' not in form.group(0)
    signed_in = client.post(
        "/login",
        data={"username": "hoitaja", "password": "demo-password", "csrf": _csrf(client),
              "next": target},
        follow_redirects=False,
    )  # fmt: skip
    assert signed_in.status_code == 303 and signed_in.headers["location"] == "/"


def _lead(client: TestClient) -> None:
    assert login(client, "osastonhoitaja").status_code == 303


def test_an_empty_dashboard_says_so_instead_of_drawing_empty_charts(
    client: TestClient, runtime: Runtime
) -> None:
    _lead(client)
    page = client.get("/dashboard?period=week").text
    main = page[page.index("<main") :]
    assert "<svg" not in main and 'id="timeline-table"' not in main
    t = messages("fi")
    for chart, message in (
        ("chart-timeline", t.chart_no_calls),
        ("chart-routing", t.chart_no_calls),
        ("chart-usage", t.chart_no_usage),
        ("chart-survey", t.chart_no_survey),
    ):
        assert f'id="{chart}-empty">{message}</p>' in main, chart
    english = client.get("/dashboard?period=week", headers={"Accept-Language": "en"}).text
    assert "No calls in this period." in english


def _figures_with_decimals(runtime: Runtime) -> None:
    """Three calls, one of them with words (33.3 %); a callback 24 s after hang-up (0.4 min);
    12.5 s from hang-up to ready."""
    now = utcnow()
    ids = [_add_case(runtime, urgency="non_urgent", rank=0, reason=f"Luku {i}") for i in range(3)]
    with runtime.db.session() as s:
        for i, case_id in enumerate(ids):
            call = s.get(Call, case_id)
            assert call is not None
            call.started_at, call.ended_at = now - timedelta(minutes=5), now - timedelta(minutes=2)
            call.ready_at = call.ended_at + timedelta(seconds=12.5) if i == 0 else None
            if i:
                for rec in s.scalars(select(Recording).where(Recording.call_id == case_id)):
                    rec.state = RecordingState.MISSING
        first = s.get(Call, ids[0])
        assert first is not None and first.ended_at is not None
        s.add(
            Callback(call_id=ids[0], station_id="demo", state="done",
                     window_end=now + timedelta(hours=1),
                     completed_at=first.ended_at + timedelta(seconds=24))
        )  # fmt: skip


def test_the_dashboard_writes_decimals_the_users_way_and_the_api_the_machines(
    client: TestClient, runtime: Runtime
) -> None:
    _figures_with_decimals(runtime)
    _lead(client)
    finnish = client.get("/dashboard?period=week").text
    assert 'id="fig-callback-delay">0,4<' in finnish and 'id="fig-processing">12,5<' in finnish
    assert 'id="fig-completion">33,3 %<' in finnish
    assert 'id="fig-within-window">100 %<' in finnish
    swedish = client.get("/dashboard?period=week", headers={"Accept-Language": "sv"}).text
    assert 'id="fig-callback-delay">0,4<' in swedish
    english = client.get("/dashboard?period=week", headers={"Accept-Language": "en"}).text
    assert 'id="fig-callback-delay">0.4<' in english and 'id="fig-completion">33.3%<' in english
    stats = client.get("/api/v1/stats?station=demo").json()
    assert stats["callback_delay_median_min"] == 0.4 and stats["processing_median_s"] == 12.5
    rows = dict(csv.reader(io.StringIO(client.get("/api/v1/stats?format=csv").text)))
    assert rows["callback_delay_median_min"] == "0.4" and rows["completion_rate"] == "0.333"


def test_each_route_has_one_colour_on_every_chart(client: TestClient, runtime: Runtime) -> None:
    _figures_with_decimals(runtime)  # three calls by callback
    _lead(client)
    page = client.get("/dashboard?period=week").text
    routing = re.search(r'<svg class="bars" id="chart-routing".*?</svg>', page, re.S)
    assert routing and 'class="bar r-callback"' in routing.group(0)
    timeline = re.search(r'<svg class="timeline" id="chart-timeline".*?</svg>', page, re.S)
    assert timeline and 'class="r-callback"' in timeline.group(0)
    css = client.get("/static/style.css").text
    for route in ("nurse_queue", "callback", "digital_path", "unknown"):
        # one colour per route, defined once; the charts and the legend only refer to it
        assert len(re.findall(rf"--route-{route}:\s*#[0-9a-f]{{6}}", css)) == 1, route
        assert re.search(rf"\.r-{route} {{ --route: var\(--route-{route}\); }}", css), route


def test_the_icon_is_served_to_anyone_and_cached(client: TestClient) -> None:
    icon = client.get("/favicon.ico")
    assert icon.status_code == 200 and icon.headers["content-type"] == "image/x-icon"
    assert icon.content[:4] == b"\x00\x00\x01\x00"  # an ICO file
    assert "max-age=" in icon.headers["cache-control"]
    assert "public" in icon.headers["cache-control"]
    page = client.get("/login").text
    link = re.search(r'<link rel="icon" href="([^"]+)" type="image/svg\+xml">', page)
    assert link
    svg = client.get(link.group(1))
    assert svg.status_code == 200 and svg.headers["content-type"].startswith("image/svg+xml")


@pytest.mark.parametrize("language", ["fi", "sv", "en"])
def test_the_case_page_uses_the_notes_words_for_pretriage(
    client: TestClient, runtime: Runtime, language: str
) -> None:
    import tomllib

    from pretriage import schemas
    from pretriage.engine import describe
    from summarizer.text import note

    case_id = _pretriaged(runtime, "non_urgent", "callback", "Sanasto")
    login(client)
    page = client.get(f"/cases/{case_id}", headers={"Accept-Language": language}).text
    # the note's heading, and its word for the ruleset: "(sääntökanta test)"
    templates = Path(note.__file__).parent / "templates"
    heading = tomllib.loads((templates / f"{language}.toml").read_text())["headings"]["pretriage"]
    assert f"<h2>{heading}</h2>" in page
    decision = schemas.TriageDecision(
        urgency="non_urgent", route="callback", ruleset_version="test"
    )
    ruleset_word = describe(decision, language).rsplit("(", 1)[1].split()[0]
    assert f"{ruleset_word.capitalize()} test" in page
    for old in ("Esiarvio", "esiarvio", "Sääntöversio", "Förhandsbedömning", "Regelversion"):
        assert old not in page


def test_the_override_form_says_what_is_missing(client: TestClient, runtime: Runtime) -> None:
    from esitieto.web.pages import REASON_MIN_LENGTH

    case_id = _pretriaged(runtime, "non_urgent", "callback", "Puutteita")
    login(client)
    token = _csrf(client, f"/cases/{case_id}")
    t = messages("fi")
    for form, message in (
        ({"urgency": "urgent", "route": "nurse_queue", "reason": "ok"},
         t.override_need_reason.format(min_length=REASON_MIN_LENGTH)),
        ({"route": "nurse_queue", "reason": "Kipu pahentunut"}, t.override_need_urgency),
        ({"urgency": "urgent", "reason": "Kipu pahentunut"}, t.override_need_route),
    ):  # fmt: skip
        refused = client.post(f"/cases/{case_id}/override", data={**form, "csrf": token})
        assert refused.status_code == 422 and message in refused.text, form
    assert f"vähintään {REASON_MIN_LENGTH} merkkiä" in t.override_need_reason.format(
        min_length=REASON_MIN_LENGTH
    )


def test_the_analyze_api_says_what_it_did_not_understand(client: TestClient) -> None:
    silent = client.post("/api/v1/analyze", json={"text": ""}, headers=API).json()["triage"]
    assert silent["uncertain"] and silent["route"] != "digital_path"
    assert [r["rule"] for r in silent["uncertain_reasons"]] == ["no-speech"]
    vague = client.post(
        "/api/v1/analyze", json={"text": "Olo on jotenkin outo."}, headers=API
    ).json()
    assert vague["triage"]["uncertain"] and vague["triage"]["uncertain_reasons"]
    plain = client.post(
        "/api/v1/analyze", json={"text": "Haluaisin uusia reseptin."}, headers=API
    ).json()
    assert plain["triage"]["uncertain"] is False and plain["triage"]["uncertain_reasons"] == []


def test_a_lone_surrogate_is_read_as_an_unreadable_letter_not_a_500(client: TestClient) -> None:
    body = (
        b'{"id": "s\\ud800", "text": "Minulla on kuumetta \\udc00 kolme p\\u00e4iv\\u00e4\\u00e4."}'
    )
    response = client.post(
        "/api/v1/analyze", content=body, headers={**API, "content-type": "application/json"}
    )
    assert response.status_code == 200, response.text
    out = response.json()
    assert out["id"] == "s\ufffd" and "A03" in {s["icpc2"] for s in out["summary"]["symptoms"]}


def test_the_analyze_api_reads_by_meaning_too(client: TestClient, runtime: Runtime) -> None:
    text = "Kurkku tuntuu ahtaalta."
    out = client.post("/api/v1/analyze", json={"text": text}, headers=API).json()
    # the same reading as the product's own analyzer, detector included
    assert out["triage"] == runtime.analyzer(None, text).triage.model_dump(mode="json")
    assert runtime.analyzer.detector is not None


def test_analysing_health_text_needs_staff_or_the_api_token(client: TestClient) -> None:
    body = {"text": "Yskää kolme päivää."}
    assert client.post("/api/v1/analyze", json=body).status_code == 401
    wrong = {"Authorization": "Bearer not-the-token"}
    assert client.post("/api/v1/analyze", json=body, headers=wrong).status_code == 401
    assert client.post("/api/v1/analyze", json=body, headers=API).status_code == 200
    login(client)
    assert client.post("/api/v1/analyze", json=body).status_code == 200
