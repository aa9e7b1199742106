"""``esitieto bench web`` runs end to end on a small station (the figures are its output)."""

from __future__ import annotations

import pytest

from esitieto.bench.web import run


@pytest.mark.slow
def test_the_web_benchmark_times_every_page_it_names() -> None:
    got = run(cases=60, repeats=2)
    assert got["cases"] == 60
    assert set(got["pages"]) == {
        "worklist (active)",
        "worklist (all)",
        "dashboard (day)",
        "dashboard (week)",
        "dashboard (month)",
    }
    for page in got["pages"].values():
        assert 0 < page["p50_ms"] <= page["max_ms"]
