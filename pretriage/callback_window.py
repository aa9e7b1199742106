"""When will a nurse call back? An honest window from the station's load and opening hours.

The caller hears this window and the worklist warns when it is about to be missed, so it is
computed from what the station actually has: the open callbacks ahead of this one, the nurses
on callback duty and their average handling time, within the station's opening hours (in its
own time zone). Care-need assessment is due the same weekday (Terveydenhuoltolaki 51 §): a
window never ends after today's closing time, unless the call came after hours, when it falls
at the next opening. When the load would push it past closing, the window is cut at closing and
``over_capacity`` says so, for the station lead.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
DEFAULT_HOURS = {"mon-fri": "08:00-16:00"}
_RANGE = re.compile(r"^(\d{1,2}):(\d{2})-(\d{1,2}):(\d{2})$")


class OpeningHoursError(ValueError):
    """Opening hours that cannot be read; the message names the bad entry."""


@dataclass(frozen=True)
class OpeningHours:
    """Weekly opening hours in the station's local time; a day missing is closed."""

    by_weekday: Mapping[int, tuple[time, time]]

    @classmethod
    def parse(cls, raw: Mapping[str, str] | None) -> OpeningHours:
        """``{"mon-fri": "08:00-16:00", "sat": "10:00-14:00", "sun": "closed"}``."""
        out: dict[int, tuple[time, time]] = {}
        for key, value in (raw or DEFAULT_HOURS).items():
            days = _days(str(key).strip().lower())
            text = str(value).strip().lower()
            if text in ("closed", "suljettu", "stängt"):
                for d in days:
                    out.pop(d, None)
                continue
            m = _RANGE.match(text.replace(" ", ""))
            if not m:
                raise OpeningHoursError(
                    f"opening hours {key!r}: expected HH:MM-HH:MM, got {value!r}"
                )
            h1, m1, h2, m2 = (int(g) for g in m.groups())
            if not (0 <= h1 < 24 and 0 <= h2 <= 24 and m1 < 60 and m2 < 60):
                raise OpeningHoursError(f"opening hours {key!r}: no such time in {value!r}")
            opens = time(h1, m1)
            # 24:00 is the end of the day: open through 23:59:59, never a closed last minute.
            closes = time.max if h2 == 24 and m2 == 0 else time(h2 % 24, m2)
            if h2 == 24 and m2:
                raise OpeningHoursError(f"opening hours {key!r}: no such time in {value!r}")
            if closes <= opens:
                raise OpeningHoursError(f"opening hours {key!r}: closes before it opens")
            for d in days:
                out[d] = (opens, closes)
        if not out:
            # No callback could ever be promised: refused when the stations are loaded, not
            # found by a caller in the middle of a call.
            raise OpeningHoursError("the station is never open: give at least one opening time")
        return cls(out)

    def hours_on(self, day: datetime) -> tuple[datetime, datetime] | None:
        """Opening and closing on ``day``'s date (aware, the day's zone), or None if closed."""
        span = self.by_weekday.get(day.weekday())
        if span is None:
            return None
        opens = day.replace(hour=span[0].hour, minute=span[0].minute, second=0, microsecond=0)
        closes = day.replace(
            hour=span[1].hour,
            minute=span[1].minute,
            second=span[1].second,
            microsecond=span[1].microsecond,
        )
        return opens, closes

    def next_opening(self, local: datetime) -> tuple[datetime, datetime]:
        """The next opening at or after ``local`` with that day's closing."""
        for offset in range(8):
            day = local + timedelta(days=offset)
            span = self.hours_on(day)
            if span is None:
                continue
            opens, closes = span
            if offset == 0 and local >= opens:
                continue  # today's opening has passed; open now is handled by the caller
            return opens, closes
        raise OpeningHoursError("the station is never open")


def _days(key: str) -> list[int]:
    if key in ("daily", "every day", "mon-sun"):
        return list(range(7))
    if "-" in key:
        a, b = key.split("-", 1)
        if a not in DAYS or b not in DAYS:
            raise OpeningHoursError(f"opening hours: unknown days {key!r}")
        i, j = DAYS.index(a), DAYS.index(b)
        return list(range(i, j + 1)) if i <= j else [*range(i, 7), *range(0, j + 1)]
    if key not in DAYS:
        raise OpeningHoursError(f"opening hours: unknown day {key!r}")
    return [DAYS.index(key)]


@dataclass(frozen=True)
class CallbackLoad:
    """The station's callback work right now."""

    open_callbacks_ahead: int
    nurses_on_duty: int
    average_handling_min: float


@dataclass(frozen=True)
class CallbackWindow:
    start: datetime
    end: datetime
    after_hours: bool
    over_capacity: bool


def estimate_window(
    now: datetime,
    timezone: str,
    hours: OpeningHours,
    load: CallbackLoad,
    *,
    width_min: int = 60,
    step_min: int = 15,
) -> CallbackWindow:
    """The window (UTC) in which a nurse is expected to call back a caller who calls at ``now``."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    zone = ZoneInfo(timezone)
    local = now.astimezone(zone)
    today = hours.hours_on(local)
    if today is not None and today[0] <= local < today[1]:
        base, closes, after_hours = local, today[1], False
    else:
        base, closes = hours.next_opening(local)
        after_hours = True
    nurses = max(1, load.nurses_on_duty)
    handling = max(1.0, load.average_handling_min)
    # This caller is reached when the callbacks ahead have been shared out among the nurses.
    wait = timedelta(minutes=math.floor(max(0, load.open_callbacks_ahead) / nurses) * handling)
    start = _floor(base + wait, step_min, base)
    end = _ceil(start + timedelta(minutes=max(width_min, handling)), step_min)
    over_capacity = end > closes
    if over_capacity:
        end = closes
        start = max(base, min(start, closes - timedelta(minutes=width_min)))
    return CallbackWindow(
        start=start.astimezone(UTC),
        end=end.astimezone(UTC),
        after_hours=after_hours,
        over_capacity=over_capacity,
    )


def _floor(t: datetime, step: int, not_before: datetime) -> datetime:
    floored = t.replace(minute=t.minute - t.minute % step, second=0, microsecond=0)
    return max(floored, not_before.replace(second=0, microsecond=0))


def _ceil(t: datetime, step: int) -> datetime:
    base = t.replace(minute=t.minute - t.minute % step, second=0, microsecond=0)
    return base if base == t else base + timedelta(minutes=step)
