"""TwiML for each step of the call, built with the Twilio SDK."""

from __future__ import annotations

from twilio.twiml.voice_response import VoiceResponse

from voicebot.prompts import Catalogue

RECORD_MAX_SECONDS = 120
RECORD_SILENCE_TIMEOUT_S = 4


def _say(response: VoiceResponse, cat: Catalogue, text: str, voice: str | None) -> None:
    response.say(text, voice=voice or cat.voice, language=cat.say_language)


def ask_reason(cat: Catalogue, *, station_name: str, voice: str | None, base: str) -> str:
    """Greeting, AI disclosure, 112 notice, then record the caller's reason."""
    r = VoiceResponse()
    _say(r, cat, cat.text("greeting", station=station_name), voice)
    _say(r, cat, cat.text("ai_disclosure"), voice)
    _say(r, cat, cat.text("emergency_notice"), voice)
    _say(r, cat, cat.text("ask_reason"), voice)
    r.record(
        action=f"{base}/twilio/recorded?step=reason",
        method="POST",
        max_length=RECORD_MAX_SECONDS,
        timeout=RECORD_SILENCE_TIMEOUT_S,
        finish_on_key="#",
        play_beep=True,
        trim="trim-silence",
        recording_status_callback=f"{base}/twilio/recording-status?step=reason",
        recording_status_callback_method="POST",
        recording_status_callback_event="completed absent",
    )
    # Twilio skips the action when nothing was recorded and goes on to the next verb.
    r.redirect(f"{base}/twilio/no-recording?step=reason", method="POST")
    return str(r)


def goodbye(cat: Catalogue, key: str, *, voice: str | None) -> str:
    r = VoiceResponse()
    _say(r, cat, cat.text(key), voice)
    r.hangup()
    return str(r)


def empty() -> str:
    """The answer to status callbacks: nothing to say."""
    return str(VoiceResponse())
