"""The nurse's pages: login, CSRF, the worklist order, the case page and station isolation."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient
from sqlalchemy import select

from esitieto.runtime import Runtime
from esitieto.web.auth import hash_password
from models import (
    AuditEvent,
    Call,
    CallState,
    Recording,
    RecordingState,
    Station,
    StationMembership,
    Summary,
    Transcript,
    TranscriptSegment,
    User,
)


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


def test_worklist_shows_most_urgent_first(client: TestClient, runtime: Runtime) -> None:
    _add_case(runtime, urgency="non_urgent", rank=0, reason="Reseptin uusinta")
    _add_case(runtime, urgency="emergency", rank=2, reason="Rintakipu")
    _add_case(runtime, urgency="urgent", rank=1, reason="Korkea kuume")
    assert login(client).status_code == 303
    page = client.get("/").text
    order = [page.index(r) for r in ("Rintakipu", "Korkea kuume", "Reseptin uusinta")]
    assert order == sorted(order)
    assert "Hätätilanne" in page


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
    assert "Hoitajan arvio" in page.text and "Automaattinen esiarvio" in page.text
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
    bad = client.post(f"/cases/{case_id}/summary-feedback", data={"usage": "x", "csrf": token})
    assert bad.status_code == 400
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
