"""The in-call hearing: the time budget covers the download as well as the recognition."""

from __future__ import annotations

import time

from integrations.twilio import RecordingFetcher
from summarizer.speech.scripted import ScriptedSpeechToText
from tests.integrations.test_recordings import SLOW_S, host  # noqa: F401 - the fixture
from voicebot.assess import hear


def test_a_slow_recording_host_cannot_hold_the_caller_past_the_budget(
    host: str,  # noqa: F811
) -> None:
    fetcher = RecordingFetcher("AC" + "0" * 32, "token", timeout_s=30, allow_loopback=True)
    started = time.monotonic()
    heard = hear(
        fetcher.fetch, ScriptedSpeechToText(), f"{host}/slow.wav", language="fi", budget_s=0.5
    )
    assert heard is None  # the caller goes to a nurse
    assert time.monotonic() - started < SLOW_S / 2
