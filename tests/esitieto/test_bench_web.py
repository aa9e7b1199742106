"""``esitieto bench web`` runs end to end on a small station (the figures are its output)."""

from __future__ import annotations

import pytest

from esitieto.bench.web import run, run_region


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


@pytest.mark.slow
@pytest.mark.parametrize(
    "database", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def test_the_region_benchmark_times_the_page_and_the_api(
    database: str, request: pytest.FixtureRequest
) -> None:
    server = request.getfixturevalue("postgres_url") if database == "postgres" else None
    got = run_region(stations=3, cases=20, repeats=2, postgres=server)
    assert got["database"] == ("postgresql" if server else "sqlite")
    assert got["stations"] == 3 and got["cases_per_station"] == 20
    assert set(got["pages"]) == {
        "region page (month)",
        "region API (month, JSON)",
        "region API (month, CSV)",
    }
    for page in got["pages"].values():
        assert 0 < page["p50_ms"] <= page["max_ms"]
