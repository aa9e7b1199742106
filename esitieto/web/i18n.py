"""Message catalogues for the staff pages (TOML files in ``messages/``), and the numbers,
times and days written the way each language writes them."""

from __future__ import annotations

import tomllib
from datetime import date, datetime
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


def number(value: float | None, t: Messages, digits: int = 1) -> str:
    """``0,4`` in Finnish and Swedish, ``0.4`` in English; a whole number without decimals
    (``12``, not ``12,0``); ``–`` for no value. For the pages only: the CSV and the JSON API
    keep the machine's decimal point."""
    if value is None:
        return "–"
    text = f"{value:.{digits}f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text.replace(".", t.decimal_separator)


def percent(share: float | None, t: Messages) -> str:
    """A share as a percentage to a tenth: ``33,3 %``, ``60 %``; ``–`` for no value."""
    if share is None:
        return "–"
    return str(t.percent_format.format(value=number(share * 100, t)))


def clock(moment: datetime, t: Messages) -> str:
    """``8.00`` in Finnish and Swedish, ``8:00`` in English (the time as shown, no zone)."""
    return str(t.time_format.format(hour=moment.hour, minute=moment.minute))


def day_name(day: date, today: date, t: Messages) -> str:
    """``""`` for today, ``huomenna`` for tomorrow, else ``ma 1.12.`` / ``Mon 1 Dec``."""
    if day == today:
        return ""
    if day.toordinal() == today.toordinal() + 1:
        return str(t.tomorrow)
    return str(
        t.day_format.format(
            weekday=t.weekdays[day.weekday()],
            day=day.day,
            month=day.month,
            month_name=t.months[day.month - 1],
        )
    )


def time_span(start: datetime, end: datetime, today: date, t: Messages) -> str:
    """A window in local time, with its day unless it is ``today``: ``8.00–9.00``,
    ``huomenna 8.00–9.00``, ``ma 1.12. 8.00–9.00`` (and the end's day too when it ends on
    another day: ``ma 1.12. 23.00 – ti 2.12. 1.00``)."""
    first = " ".join(p for p in (day_name(start.date(), today, t), clock(start, t)) if p)
    if end.date() == start.date():
        return f"{first}–{clock(end, t)}"
    last = " ".join(p for p in (day_name(end.date(), today, t), clock(end, t)) if p)
    return f"{first} – {last}"
