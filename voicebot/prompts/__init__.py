"""Prompt catalogues: everything the caller hears, per language, in TOML files beside this one."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from functools import cache
from pathlib import Path

LANGUAGES = ("fi", "sv", "en")
DEFAULT_LANGUAGE = "fi"
_REQUIRED = (
    "say_language",
    "voice",
    "language_option",
    "greeting",
    "ai_disclosure",
    "emergency_notice",
    "closed_notice",
    "ask_emergency",
    "ask_identity",
    "identity_again",
    "ask_reason",
    "one_moment",
    "no_answer_heard",
    "ask_who",
    "ask_child_age",
    "ask_duration",
    "ask_temperature",
    "offer_sms",
    "sms_sent",
    "callback_window",
    "confirm_number",
    "ask_number",
    "number_again",
    "callback_confirmed",
    "connecting",
    "connecting_priority",
    "emergency_112",
    "emergency_closed",
    "nurses_closed",
    "confirm_sign",
    "urgent_closed",
    "connecting_urgent_line",
    "call_urgent_line",
    "feedback_useful",
    "feedback_understandable",
    "feedback_recommend",
    "thanks_goodbye",
    "goodbye",
    "technical_problem",
    "closing",
    "no_answer",
    "unknown_number",
    "today",
    "another_day",
    "sms_body",
)


@dataclass(frozen=True)
class Catalogue:
    language: str
    messages: dict[str, str]
    services: dict[str, str]
    """Digital path id → what the caller hears it called."""
    days: dict[int, str]

    @property
    def say_language(self) -> str:
        return self.messages["say_language"]

    @property
    def voice(self) -> str:
        return self.messages["voice"]

    def text(self, key: str, **values: str) -> str:
        return self.messages[key].format(**values)


def spoken_number(number: str) -> str:
    """A telephone number as a caller hears it best: in groups of three ("116 117")."""
    digits = number.removeprefix("+")
    groups = " ".join(digits[i : i + 3] for i in range(0, len(digits), 3))
    return f"+{groups}" if number.startswith("+") else groups


@cache
def catalogue(language: str) -> Catalogue:
    """The catalogue for a language (unknown languages fall back to Finnish)."""
    lang = language if language in LANGUAGES else DEFAULT_LANGUAGE
    data = tomllib.loads((Path(__file__).parent / f"{lang}.toml").read_text(encoding="utf-8"))
    missing = [k for k in _REQUIRED if not isinstance(data.get(k), str)]
    if missing or not isinstance(data.get("services"), dict) or len(data.get("days", {})) != 7:
        raise ValueError(
            f"prompt catalogue {lang}.toml lacks {', '.join(missing) or 'services or days'}"
        )
    return Catalogue(
        lang,
        {k: str(v) for k, v in data.items() if isinstance(v, str)},
        {str(k): str(v) for k, v in data["services"].items()},
        {int(k): str(v) for k, v in data["days"].items()},
    )
