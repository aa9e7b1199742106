"""Message catalogues for the staff pages (TOML files in ``messages/``)."""

from __future__ import annotations

import tomllib
from functools import cache
from pathlib import Path
from typing import Any

DEFAULT = "fi"
LANGUAGES = ("fi", "sv", "en")
"""The staff pages' languages, in the order the language switch shows them."""


class Messages:
    """Attribute and item access to a catalogue: ``t.worklist_title``, ``t.urgency['urgent']``."""

    def __init__(self, data: dict[str, Any]) -> None:
        self._data = data

    def __getattr__(self, key: str) -> Any:
        try:
            return self._data[key]
        except KeyError as exc:
            raise AttributeError(f"no message {key!r}") from exc

    def __getitem__(self, key: str) -> Any:
        return self._data[key]


@cache
def messages(language: str = DEFAULT) -> Messages:
    path = Path(__file__).parent / "messages" / f"{language}.toml"
    if not path.exists():
        path = Path(__file__).parent / "messages" / f"{DEFAULT}.toml"
    return Messages(tomllib.loads(path.read_text(encoding="utf-8")))
