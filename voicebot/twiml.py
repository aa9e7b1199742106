"""TwiML for each step of the call, built with the Twilio SDK."""

from __future__ import annotations

from twilio.twiml.voice_response import Gather, VoiceResponse

from voicebot.dialogue import State, Step
from voicebot.prompts import LANGUAGES, Catalogue, catalogue

RECORD_MAX_SECONDS = 120
RECORD_SILENCE_TIMEOUT_S = 4
DIGIT_TIMEOUT_S = 6
"""Seconds to wait for a key: long enough for an elderly caller to find the keypad."""
DIGITS_TIMEOUT_S = 10


def _say(
    target: VoiceResponse | Gather,
    cat: Catalogue,
    text: str,
    voice: str | None,
    rate: str | None = None,
) -> None:
    if not text:
        return
    if rate:  # SSML: Twilio's Polly and Google voices honour <prosody rate>
        target.say(voice=voice or cat.voice, language=cat.say_language).prosody(text, rate=rate)
    else:
        target.say(text, voice=voice or cat.voice, language=cat.say_language)


def queue_name(station_id: str, priority: bool) -> str:
    """The Twilio queue the station's nurses answer; the priority one is served first."""
    return f"{station_id}-{'priority' if priority else 'nurses'}"


def render(
    step: Step,
    cat: Catalogue,
    *,
    station_id: str,
    voice: str | None,
    values: dict[str, str] | None = None,
    base: str = "",
    rate: str | None = None,
) -> str:
    """One :class:`~voicebot.dialogue.Step` as TwiML."""
    r = VoiceResponse()
    values = {**(values or {}), **step.values}
    target: VoiceResponse | Gather = r
    if step.gather is not None:
        target = r.gather(
            input="dtmf",
            action=f"{base}/twilio/gather?state={step.state.value}",
            method="POST",
            num_digits=1 if step.gather == "digit" else None,
            finish_on_key="#" if step.gather == "digits" else None,
            timeout=DIGIT_TIMEOUT_S if step.gather == "digit" else DIGITS_TIMEOUT_S,
            action_on_empty_result=True,
        )
    for key in step.say:
        if key == "language_menu":
            for lang in LANGUAGES:  # each option in its own language and voice
                other = catalogue(lang)
                _say(target, other, other.text("language_option"), None, rate)
            continue
        _say(target, cat, cat.text(key, **values), voice, rate)
    if step.record:
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
    if step.redirect is not None:
        r.redirect(f"{base}/twilio/{step.redirect.value}", method="POST")
    if step.transfer is not None:
        r.enqueue(queue_name(station_id, step.transfer == "priority"))
    if step.dial_urgent_line:
        r.dial(values["urgent_number"])
    if step.hangup:
        r.hangup()
    return str(r)


def fallback_to_nurses(station_id: str, cat: Catalogue, *, voice: str | None) -> str:
    """When a live webhook fails: straight to the station's nurses, no more questions."""
    r = VoiceResponse()
    _say(r, cat, cat.text("connecting"), voice)
    r.enqueue(queue_name(station_id, priority=False))
    return str(r)


def goodbye(cat: Catalogue, key: str, *, voice: str | None) -> str:
    r = VoiceResponse()
    _say(r, cat, cat.text(key), voice)
    r.hangup()
    return str(r)


def empty() -> str:
    """The answer to status callbacks: nothing to say."""
    return str(VoiceResponse())


__all__ = ["State", "empty", "goodbye", "queue_name", "render"]
