"""The pure figures of the fault and soak runs (``esitieto.bench.faults``, ``.soak``,
``.harness``): the runs themselves take minutes and are not part of the suite."""

from __future__ import annotations

import math
from typing import Any

from esitieto.bench.faults import Kill, case_timing, time_figures
from esitieto.bench.harness import latency_figures, percentile
from esitieto.bench.soak import rss_points


def test_ready_is_timed_from_the_restart_after_the_cases_last_kill() -> None:
    kills = [
        Kill("worker", 5.0, 5.1),
        Kill("serve", 12.0, 12.0, 15.0),  # the web server's kill is not the worker's
        Kill("worker", 20.0, 20.2),
        Kill("worker", 40.0, 40.1),  # after the case was ready
    ]
    n, last, after, hangup = case_timing(10.0, 30.0, 18.0, kills)
    assert (n, last) == (1, 20.0)
    assert after is not None and math.isclose(after, 9.8)
    assert hangup is not None and math.isclose(hangup, 12.0)


def test_a_case_no_kill_touched_has_only_its_hangup_time() -> None:
    assert case_timing(10.0, 14.0, 12.0, [Kill("worker", 5.0, 5.1)]) == (0, None, None, 2.0)


def test_a_case_never_ready_counts_every_later_kill() -> None:
    kills = [Kill("worker", 11.0, 11.1), Kill("worker", 99.0, 99.1)]
    assert case_timing(10.0, None, 12.0, kills) == (2, 99.0, None, None)


def test_percentiles_are_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 0.99) == 99.0
    assert percentile(values, 0.5) == 50.0
    assert percentile([7.0], 0.99) == 7.0
    assert math.isnan(percentile([], 0.5))
    assert latency_figures([1.0, 2.0, 300.0]) == {
        "count": 3,
        "p50_ms": 2.0,
        "p99_ms": 300.0,
        "max_ms": 300.0,
    }
    assert time_figures([]) == {"count": 0}


def test_rss_points_take_start_middle_end_and_the_second_halfs_growth() -> None:
    samples: list[dict[str, Any]] = [
        {"t_s": t * 30.0, "rss": 1000 + (t if t >= 2 else 0)} for t in range(5)
    ]
    samples.append({"t_s": 150.0, "rss": None})  # the process was gone: skipped
    points = rss_points(samples, "rss")
    assert (points["start_kb"], points["middle_kb"], points["end_kb"]) == (1000, 1002, 1004)
    assert points["peak_kb"] == 1004
    assert points["second_half_growth_kb"] == 2
    assert points["second_half_growth_kb_per_min"] == 2.0
