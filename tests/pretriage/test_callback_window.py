"""The callback window: from the station's load, within opening hours, never past closing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pretriage.callback_window import (
    CallbackLoad,
    OpeningHours,
    OpeningHoursError,
    estimate_window,
)

HEL = ZoneInfo("Europe/Helsinki")
HOURS = OpeningHours.parse({"mon-fri": "08:00-16:00", "sat": "10:00-14:00"})


def at(day: int, hour: int, minute: int = 0) -> datetime:
    """November 2026: the 23rd is a Monday."""
    return datetime(2026, 11, day, hour, minute, tzinfo=HEL).astimezone(UTC)


def local(t: datetime) -> datetime:
    return t.astimezone(HEL)


def test_an_empty_queue_gives_the_next_hour() -> None:
    w = estimate_window(at(24, 9, 7), "Europe/Helsinki", HOURS, CallbackLoad(0, 2, 12))
    assert (local(w.start).hour, local(w.start).minute) == (9, 7)
    assert (local(w.end).hour, local(w.end).minute) == (10, 15)
    assert not w.after_hours and not w.over_capacity


def test_callbacks_ahead_are_shared_among_the_nurses() -> None:
    # 12 ahead, 3 nurses, 15 min each: this caller is reached after 4 rounds = 60 min
    w = estimate_window(at(24, 9, 0), "Europe/Helsinki", HOURS, CallbackLoad(12, 3, 15))
    assert local(w.start).hour == 10 and local(w.start).minute == 0


def test_never_after_todays_closing() -> None:
    w = estimate_window(at(24, 14, 0), "Europe/Helsinki", HOURS, CallbackLoad(40, 2, 15))
    assert local(w.end) == datetime(2026, 11, 24, 16, 0, tzinfo=HEL)
    assert local(w.start).date() == datetime(2026, 11, 24).date()
    assert w.over_capacity and not w.after_hours


def test_after_hours_the_window_is_at_the_next_opening() -> None:
    friday_evening = at(27, 19, 30)
    w = estimate_window(friday_evening, "Europe/Helsinki", HOURS, CallbackLoad(0, 1, 10))
    assert local(w.start) == datetime(2026, 11, 28, 10, 0, tzinfo=HEL)  # Saturday opening
    assert w.after_hours
    saturday_evening = at(28, 15, 0)
    w = estimate_window(saturday_evening, "Europe/Helsinki", HOURS, CallbackLoad(0, 1, 10))
    assert local(w.start) == datetime(2026, 11, 30, 8, 0, tzinfo=HEL)  # Monday
    early = estimate_window(at(24, 6, 0), "Europe/Helsinki", HOURS, CallbackLoad(0, 1, 10))
    assert local(early.start) == datetime(2026, 11, 24, 8, 0, tzinfo=HEL)


@pytest.mark.parametrize(
    "raw",
    [
        {"mon-fri": "8-16"},
        {"mon-fri": "16:00-08:00"},
        {"funday": "08:00-16:00"},
        {"mon": "25:00-26:00"},
        {"tue": "00:00-24:30"},
    ],
)
def test_bad_opening_hours_are_refused_with_the_entry_named(raw: dict[str, str]) -> None:
    with pytest.raises(OpeningHoursError, match=next(iter(raw))):
        OpeningHours.parse(raw)


def test_a_station_that_never_opens_is_an_error() -> None:
    with pytest.raises(OpeningHoursError, match="never open"):
        OpeningHours.parse({"daily": "closed"})
    with pytest.raises(OpeningHoursError, match="never open"):
        estimate_window(at(24, 9), "Europe/Helsinki", OpeningHours({}), CallbackLoad(0, 1, 10))


@settings(max_examples=300, deadline=None)
@given(
    minutes=st.integers(min_value=0, max_value=14 * 24 * 60),
    ahead=st.integers(min_value=0, max_value=300),
    nurses=st.integers(min_value=0, max_value=8),
    handling=st.floats(min_value=0, max_value=60),
)
def test_window_properties(minutes: int, ahead: int, nurses: int, handling: float) -> None:
    now = at(23, 0) + timedelta(minutes=minutes)
    load = CallbackLoad(ahead, nurses, handling)
    w = estimate_window(now, "Europe/Helsinki", HOURS, load)
    start, end = local(w.start), local(w.end)
    assert start < end and start.date() == end.date()
    opens, closes = HOURS.hours_on(start) or (None, None)
    assert opens is not None and closes is not None
    assert opens <= start and end <= closes  # inside that day's opening hours
    if not w.after_hours:
        assert start.date() == local(now).date()  # the same weekday
        assert start >= local(now).replace(second=0, microsecond=0)
    else:
        assert start > local(now)
    more = estimate_window(now, "Europe/Helsinki", HOURS, CallbackLoad(ahead + 5, nurses, handling))
    assert more.start >= w.start  # more work ahead never promises an earlier call


def test_a_station_open_round_the_clock_has_no_closed_last_minute() -> None:
    hours = OpeningHours.parse({"mon-sun": "00:00-24:00"})
    for moment in (local(at(23, 23, 59)).replace(second=30), local(at(24, 0, 0))):
        span = hours.hours_on(moment)
        assert span is not None and span[0] <= moment < span[1], moment
