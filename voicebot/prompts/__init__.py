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
    "greeting",
    "ai_disclosure",
    "emergency_notice",
    "ask_reason",
    "closing",
    "no_answer",
    "unknown_number",
)


@dataclass(frozen=True)
class Catalogue:
    language: str
    messages: dict[str, str]

    @property
    def say_language(self) -> str:
        return self.messages["say_language"]

    @property
    def voice(self) -> str:
        return self.messages["voice"]

    def text(self, key: str, **values: str) -> str:
        return self.messages[key].format(**values)


@cache
def catalogue(language: str) -> Catalogue:
    """The catalogue for a language (unknown languages fall back to Finnish)."""
    lang = language if language in LANGUAGES else DEFAULT_LANGUAGE
    data = tomllib.loads((Path(__file__).parent / f"{lang}.toml").read_text(encoding="utf-8"))
    missing = [k for k in _REQUIRED if not isinstance(data.get(k), str)]
    if missing:
        raise ValueError(f"prompt catalogue {lang}.toml lacks {', '.join(missing)}")
    return Catalogue(lang, {k: str(v) for k, v in data.items()})
