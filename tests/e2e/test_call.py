"""End to end, as the README promises: ``esitieto serve`` in one process, a synthetic Finnish
caller played through ``esitieto simulate-call`` in another, and the case on the worklist."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import httpx
import pytest

from esitieto.web.i18n import messages
from tests.e2e.conftest import ESITIETO

pytestmark = pytest.mark.slow


def _simulate(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*ESITIETO, "simulate-call", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def _sign_in(browser: httpx.Client) -> None:
    token = re.search(r'name="csrf" value="([^"]+)"', browser.get("/login").text)
    assert token
    browser.post(
        "/login", data={"username": "hoitaja", "password": "e2e-password", "csrf": token.group(1)}
    )


def test_a_finnish_call_reaches_the_worklist(
    server: str, app_env: dict[str, str], finnish_caller_wav: Path
) -> None:
    done = _simulate(app_env, "--station", "demo", "--url", server, str(finnish_caller_wav))
    assert done.returncode == 0, done.stderr
    case = json.loads(done.stdout)
    assert case["state"] == "ready"
    assert case["language"] == "fi"
    assert len(case["transcript"]) > 10
    assert case["recordings"][0]["state"] == "transcribed"
    assert case["summary"]["note"]
    assert case["triage"]["route"] in ("nurse_queue", "callback", "digital_path")
    assert case["triage"]["urgency"] in ("emergency", "urgent", "non_urgent")
    assert any("112" in said for said in case["heard"])

    with httpx.Client(base_url=server) as browser:
        _sign_in(browser)
        worklist = browser.get("/")
        assert worklist.status_code == 200
        assert f'href="/cases/{case["case_id"]}"' in worklist.text
        page = browser.get(f"/cases/{case['case_id']}")
        assert case["recordings"][0]["segments"][0]["text"] in page.text
        audio = re.search(r'<audio[^>]+src="([^"]+)"', page.text)
        assert audio
        assert browser.get(audio.group(1)).content[:4] == b"RIFF"


def test_simulate_call_runs_its_own_app_and_reports_hang_ups(
    app_env: dict[str, str], silent_wav: Path
) -> None:
    """Without --url the simulator starts the app in-process; a caller who hangs up right after
    the greeting still leaves a case for a nurse."""
    done = _simulate(app_env, "--station", "demo", "--hangup-after", "1", str(silent_wav))
    assert done.returncode == 0, done.stderr
    case = json.loads(done.stdout)
    assert case["outcome"] == "caller_hung_up"
    assert case["state"] == "ready"
    assert case["recordings"] == []
    assert case["triage"]["route"] == "callback"


def test_simulate_call_explains_bad_arguments(app_env: dict[str, str], tmp_path: Path) -> None:
    done = _simulate(app_env, "--station", "nowhere", str(tmp_path / "missing.wav"))
    assert done.returncode != 0
    assert "missing.wav" in done.stderr
    wav = tmp_path / "x.wav"
    wav.write_bytes(b"")
    done = _simulate(app_env, "--station", "nowhere", str(wav))
    assert done.returncode != 0
    assert "unknown station 'nowhere'" in done.stderr


def test_keypad_answers_before_the_audio_leave_the_audio_alone(
    app_env: dict[str, str], finnish_caller_wav: Path
) -> None:
    """``--digits 1 2 '#' call.wav``, as the usage line reads: the file is the answer's audio,
    not a keypad answer."""
    done = _simulate(
        app_env, "--station", "demo", "--digits", "1", "2", "#", str(finnish_caller_wav)
    )
    assert done.returncode == 0, done.stderr
    case = json.loads(done.stdout)
    assert len(case["recordings"]) == 1
    assert case["recordings"][0]["transcribed_by"] == "faster-whisper"


def test_words_given_as_heard_are_the_transcript_and_say_so(
    server: str, app_env: dict[str, str]
) -> None:
    """``--as-heard`` with a running app: the words are stored for the recording before Twilio's
    callbacks, whichever worker transcribes it uses them, and the case page says so."""
    words = "Minulla on ollut kuumetta ja yskää kolme päivää. Hengenahdistusta ei ole."
    done = _simulate(
        app_env, "--station", "demo", "--url", server, "--digits", "1", "2", "#",
        "--as-heard", words,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    case = json.loads(done.stdout)
    assert case["transcript"] == words
    assert case["recordings"][0]["transcribed_by"] == "given"
    codes = {s["icpc2"] for s in case["summary"]["symptoms"]}
    assert {"A03", "R05"} <= codes
    with httpx.Client(base_url=server) as browser:
        _sign_in(browser)
        page = browser.get(f"/cases/{case['case_id']}").text
    assert messages("fi").transcript_given in page


def test_a_server_writing_to_a_log_never_writes_a_password(server: str, tmp_path: Path) -> None:
    log = (tmp_path / "serve.log").read_text(encoding="utf-8")
    assert "Demo sign-in" in log and "hoitaja" in log  # the logins are still told
    assert "e2e-password" not in log and "ESITIETO_DEMO__NURSE_PASSWORD" in log
