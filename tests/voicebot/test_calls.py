"""Whole calls through the real webhooks (the simulator plays Twilio), in each language, to
each outcome; and a hang-up at every state still leaves a case for the nurse."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr
from sqlalchemy import select

from esitieto.app import make_worker, prepare
from esitieto.runtime import Runtime
from esitieto.simulate import inprocess_app, simulate_call
from models import Call, Callback, CallerFeedback, Station
from summarizer.speech.scripted import ScriptedSpeechToText
from tests.conftest import fresh_sqlite, make_settings, synth_phone_audio
from tests.integrations.test_sms import FakeTwilio, fake_twilio  # noqa: F401 - the fixture
from voicebot.prompts import catalogue
from voicebot.settings import VoicebotSettings
from voicebot.simulator import RecordingServer, play_call, wait_for_case
from voicebot.tasks import Pipeline

pytestmark = pytest.mark.slow

VOICES = {"fi": "fi", "sv": "sv", "en": "en-gb"}
LANGUAGE_KEY = {"fi": "1", "sv": "2", "en": "3"}


@pytest.fixture(scope="module")
def voices(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, str]]:
    """Each caller's answer as phone audio, with the words it says."""
    out = tmp_path_factory.mktemp("voices")
    lines = {
        "en-emergency": ("en", "I have crushing chest pain and I cannot breathe."),
        "en-renewal": ("en", "I need to renew my prescription for my blood pressure medicine."),
        "fi-lab": ("fi", "Haluan kysyä laboratorion tuloksia."),
        "fi-appointment": ("fi", "Haluaisin varata ajan."),
        "sv-appointment": ("sv", "Jag vill boka en tid."),
        "en-appointment": ("en", "I would like to book an appointment for a check up."),
        "en-chest": ("en", "I have had chest pain since this morning."),
        "en-wound": ("en", "I cut my hand on a knife and the wound is deep and gaping."),
    }
    return {
        name: (synth_phone_audio(text, out / f"{name}.wav", voice=VOICES[lang]), text)
        for name, (lang, text) in lines.items()
    }


@pytest.fixture
def call_rt(
    tmp_path: Path,
    fake_twilio: FakeTwilio,  # noqa: F811
    voices: dict[str, tuple[Path, str]],
    sqlite_template: Path,
) -> Iterator[Runtime]:
    """The app with a scripted recogniser: each caller is heard saying exactly their line, so
    these tests check the call, not the recogniser (``test_tasks.py`` runs the real model)."""
    fresh_sqlite(sqlite_template, tmp_path / "var" / "esitieto.sqlite3")
    settings = make_settings(tmp_path / "var", None, mode="inprocess")
    settings.voicebot = VoicebotSettings(
        sms_sender="+358450000000", identity_key=SecretStr("ab" * 32), in_call_budget_s=20.0
    )
    settings.twilio.api_base_url = fake_twilio.url
    engine = ScriptedSpeechToText()
    for path, words in voices.values():
        engine.say(path, words)
    rt = Runtime(settings, speech_to_text=engine)
    prepare(rt)
    with rt.db.session() as s:
        demo = s.get(Station, "demo")
        assert demo is not None
        demo.opening_hours = {"mon-sun": "00:00-24:00"}  # the nurses are in for these calls
    yield rt
    rt.close()


def play(rt: Runtime, *, digits: list[str], audio: list[Path] | None = None, **kw: Any) -> dict:
    return simulate_call(
        rt.settings,
        station_id="demo",
        audio=audio or [],
        digits=digits,
        runtime=rt,
        timeout_s=120,
        **kw,
    )


def said(case: dict, language: str, key: str) -> bool:
    text = catalogue(language).messages[key]
    head = text.split("{")[0].strip()
    return any(head in h for h in case["heard"])


@pytest.mark.parametrize("language", ["fi", "sv", "en"])
def test_the_emergency_key_reaches_the_priority_queue_before_any_question(
    call_rt: Runtime, language: str
) -> None:
    case = play(call_rt, digits=[LANGUAGE_KEY[language], "1"])
    assert case["outcome"] == "nurse_queue"
    assert said(case, language, "emergency_112")
    assert "[Enqueue: demo-priority]" in case["heard"]
    assert not said(case, language, "ask_reason")  # no question after the emergency
    assert case["triage"]["urgency"] == "emergency" and case["triage"]["route"] == "nurse_queue"


def test_the_recordings_are_served_until_the_case_is_finished(
    call_rt: Runtime, voices: dict[str, tuple[Path, str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    # On a slow machine the after-call pipeline fetches the recording after the simulated
    # caller has hung up; the recordings must still be there (they were not: the case ended
    # with the recording missing, and pretriage had nothing to read).
    import esitieto.simulate as simulate

    hung_up = threading.Event()
    real_play = simulate.play_call

    def play_then_signal(*args: Any, **kwargs: Any) -> Any:
        played = real_play(*args, **kwargs)
        hung_up.set()
        return played

    monkeypatch.setattr(simulate, "play_call", play_then_signal)
    stop = threading.Event()
    worker = make_worker(call_rt)
    worker_ran: list[int] = []

    def run_after_hang_up() -> None:
        hung_up.wait(60)
        while not stop.is_set():
            if worker.run_one():
                worker_ran.append(1)
            else:
                time.sleep(0.05)

    call_rt.settings.worker.mode = "external"  # no worker of the app's own: ours, after
    thread = threading.Thread(target=run_after_hang_up, daemon=True)
    thread.start()
    try:
        case = play(call_rt, digits=["3", "2", "#"], audio=[voices["en-emergency"][0]])
    finally:
        stop.set()
        thread.join(10)
    assert worker_ran
    assert [r["state"] for r in case["recordings"]] == ["transcribed"]
    assert case["triage"]["urgency"] == "emergency"


def test_a_spoken_emergency_sign_ends_the_interview_with_112(
    call_rt: Runtime, voices: dict[str, tuple[Path, str]]
) -> None:
    case = play(call_rt, digits=["3", "2", "#"], audio=[voices["en-emergency"][0]])
    assert said(case, "en", "emergency_112") and "[Enqueue: demo-priority]" in case["heard"]
    assert not any(said(case, "en", k) for k in ("ask_who", "ask_duration", "ask_temperature"))
    assert case["triage"]["urgency"] == "emergency"


@pytest.mark.parametrize("language", ["fi", "sv", "en"])
def test_zero_joins_the_nurse_queue(call_rt: Runtime, language: str) -> None:
    case = play(call_rt, digits=[LANGUAGE_KEY[language], "0"])
    assert case["outcome"] == "nurse_queue" and "[Enqueue: demo-nurses]" in case["heard"]
    assert said(case, language, "connecting")


@pytest.mark.parametrize("language", ["fi", "sv", "en"])
def test_a_callback_with_its_window(
    call_rt: Runtime, voices: dict[str, tuple[Path, str]], language: str
) -> None:
    # language, no emergency, skip identity; then "1"s answer whatever follow-ups the words
    # leave open (self, 1 day), confirm this number, and the feedback question
    digits = [LANGUAGE_KEY[language], "2", "#", "1", "1", "1", "1", "1"]
    case = play(call_rt, digits=digits, audio=[voices[f"{language}-appointment"][0]])
    assert said(case, language, "callback_window") and said(case, language, "thanks_goodbye")
    with call_rt.db.session() as s:
        call = s.get(Call, case["case_id"])
        assert call is not None
        cb = s.scalar(select(Callback).where(Callback.call_id == call.id))
        assert cb is not None and cb.phone_number == "+358401234567" and cb.window_start
        feedback = s.scalar(select(CallerFeedback.answer).where(CallerFeedback.call_id == call.id))
        assert feedback == 1


@pytest.mark.parametrize(
    ("language", "voice", "path"),
    [("en", "en-renewal", "prescription-renewal"), ("fi", "fi-lab", "lab-results")],
)
def test_a_digital_path_sends_the_link_by_sms(
    call_rt: Runtime,
    voices: dict[str, tuple[Path, str]],
    fake_twilio: FakeTwilio,  # noqa: F811
    language: str,
    voice: str,
    path: str,
) -> None:
    digits = [LANGUAGE_KEY[language], "2", "#", "1", "1", "1", "1"]
    case = play(call_rt, digits=digits, audio=[voices[voice][0]])
    assert said(case, language, "offer_sms") and said(case, language, "sms_sent")
    deadline = time.monotonic() + 30
    while not fake_twilio.requests and time.monotonic() < deadline:
        time.sleep(0.2)
    form = {k: v[0] for k, v in fake_twilio.requests[0].form.items()}
    assert form["To"] == "+358401234567" and form["From"] == "+358450000000"
    assert f"https://digi.example.fi/{path}" in form["Body"]
    assert case["triage"]["route"] == "digital_path"


def test_a_possible_emergency_sign_is_asked_and_a_yes_is_an_emergency(
    call_rt: Runtime, voices: dict[str, tuple[Path, str]]
) -> None:
    # chest pain, nothing said of how it feels: one keypad question names the sign
    case = play(call_rt, digits=["3", "2", "#", "1"], audio=[voices["en-chest"][0]])
    assert said(case, "en", "confirm_sign") and said(case, "en", "emergency_112")
    assert "[Enqueue: demo-priority]" in case["heard"]
    assert case["triage"]["urgency"] == "emergency" and case["triage"]["route"] == "nurse_queue"


def test_a_no_keeps_the_chest_pain_urgent_and_unclear_for_a_nurse(
    call_rt: Runtime, voices: dict[str, tuple[Path, str]]
) -> None:
    case = play(call_rt, digits=["3", "2", "#", "2"], audio=[voices["en-chest"][0]])
    assert said(case, "en", "confirm_sign") and not said(case, "en", "emergency_112")
    assert "[Enqueue: demo-priority]" in case["heard"]
    triage = case["triage"]
    assert triage["urgency"] == "urgent" and triage["uncertain"] and triage["uncertain_reasons"]
    with call_rt.db.session() as s:
        call = s.get(Call, case["case_id"])
        assert call is not None and call.uncertain and call.urgency == "urgent"


def test_urgent_after_hours_is_put_through_to_the_urgent_line(
    call_rt: Runtime, voices: dict[str, tuple[Path, str]]
) -> None:
    call_rt.clock = lambda: datetime(2026, 11, 29, 1, 30, tzinfo=UTC)  # Sunday 03.30 in Finland
    with call_rt.db.session() as s:
        demo = s.get(Station, "demo")
        assert demo is not None
        demo.opening_hours = {"mon-fri": "08:00-16:00"}
        demo.urgent_number = "+358401112223"  # a region's own out-of-hours line
    case = play(call_rt, digits=["3", "2", "#", "1"], audio=[voices["en-wound"][0]])
    assert any("+358 401 112 223" in h for h in case["heard"])  # said as it is dialled
    assert "[Dial: +358401112223]" in case["heard"] and not said(case, "en", "callback_window")
    assert case["triage"]["urgency"] == "urgent"
    with call_rt.db.session() as s:
        call = s.get(Call, case["case_id"])
        assert call is not None and call.route is not None  # the morning's worklist has it


@pytest.mark.parametrize("hangup_after", range(1, 9))
def test_a_hang_up_at_every_state_leaves_a_case(
    call_rt: Runtime, voices: dict[str, tuple[Path, str]], hangup_after: int
) -> None:
    digits = ["1", "2", "#", "1", "1"]
    case = play(
        call_rt, digits=digits, audio=[voices["fi-appointment"][0]], hangup_after=hangup_after
    )
    assert case["state"] in ("ready", "failed")
    assert case["triage"]["route"] in ("nurse_queue", "callback", "digital_path")
    with call_rt.db.session() as s:
        call = s.get(Call, case["case_id"])
        assert call is not None and call.route is not None  # on the worklist


def test_a_call_whose_final_status_callback_is_lost_reaches_the_worklist(
    tmp_path: Path, sqlite_template: Path
) -> None:
    """The call ends at Twilio, the final status callback never arrives (the server was
    down); the worker's reconciliation with the Calls API ends it and the case is made."""
    fresh_sqlite(sqlite_template, tmp_path / "var" / "esitieto.sqlite3")
    settings = make_settings(tmp_path / "var", None, mode="inprocess")
    account = settings.twilio.account_sid
    token = settings.twilio_auth_token.get_secret_value()
    with RecordingServer(account, token) as twilio:
        settings.twilio.api_base_url = twilio.base
        rt = Runtime(settings, speech_to_text=ScriptedSpeechToText())
        try:
            with inprocess_app(rt) as base:
                played = play_call(base, account_sid=account, auth_token=token,
                                   to_number="+358900000000", audio=[], digits=["1", "0"],
                                   media=twilio, lose_final_status=True)  # fmt: skip
                with rt.db.session() as s:
                    call = s.scalar(select(Call).where(Call.call_sid == played.call_sid))
                    assert call is not None and call.state == "in_progress"
                assert Pipeline(rt.voicebot).reconcile_with_twilio(older_than_s=0) == 1
                case = wait_for_case(rt.db.session, played.call_sid, 60)
        finally:
            rt.close()
    assert case["state"] == "ready" and case["triage"]["route"] is not None
