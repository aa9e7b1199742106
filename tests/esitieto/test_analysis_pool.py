"""The API's analyses run in separate processes: the same answers as in the web process, and
one that passes its deadline is stopped without stopping the next one."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from esitieto.analysis_pool import AnalysisPool, AnalysisUnavailable, _analyze
from esitieto.app import create_app
from esitieto.runtime import Runtime
from esitieto.settings import Settings
from pretriage.analysis import Analyzer
from pretriage.settings import DetectorSettings
from summarizer.text.schemas import CallContext
from summarizer.text.settings import SummarizerSettings
from tests.conftest import API

HANG_S = 60.0


def _hangs_on_a_word(
    item_id: str | None, text: str, context: dict[str, Any] | None, note_language: str
) -> dict[str, Any]:
    """The real analysis, except that the word "hang" takes a minute (a stand-in for an
    analysis the server could not foresee)."""
    if "hang" in text:
        time.sleep(HANG_S)
    return _analyze(item_id, text, context, note_language)


@pytest.fixture(scope="module")
def pool() -> Iterator[AnalysisPool]:
    p = AnalysisPool(SummarizerSettings(), DetectorSettings(), workers=1, deadline_s=60.0,
                     task=_hangs_on_a_word)  # fmt: skip
    yield p
    p.close()


@pytest.mark.parametrize(
    ("text", "language"),
    [("Minulla on kova rintakipu ja hengenahdistus.", "fi"),
     ("Jag behöver förnya mitt recept.", "sv")],
)  # fmt: skip
def test_the_pool_gives_the_same_answer_as_the_web_process(
    pool: AnalysisPool, text: str, language: str
) -> None:
    context = CallContext.model_validate({"language": language, "age": 60})
    here = Analyzer(detector=Runtime(Settings()).detector)(
        "x", text, context, note_language=language
    )
    there = pool.analyze("x", text, context, note_language=language)
    assert there.model_dump() == here.model_dump()


def test_an_analysis_past_its_deadline_is_stopped_and_the_next_one_runs(
    pool: AnalysisPool,
) -> None:
    pool.analyze(None, "Yskää.", None)  # the process is up and loaded
    started = time.monotonic()
    with pytest.raises(AnalysisUnavailable, match="deadline"):
        pool.analyze(None, "hang", None, deadline_s=1.0)
    assert time.monotonic() - started < HANG_S / 2
    assert pool.analyze(None, "Yskää kolme päivää.", None).triage.urgency is not None


def test_the_api_answers_503_when_an_analysis_is_stopped(sqlite_settings: Settings) -> None:
    sqlite_settings.web.analyze_workers = 1
    sqlite_settings.web.analyze_deadline_s = 1.0
    runtime = Runtime(sqlite_settings)
    runtime.__dict__["analysis_pool"] = AnalysisPool(
        sqlite_settings.summarizer, sqlite_settings.detector, workers=1, deadline_s=1.0,
        task=_hangs_on_a_word,
    )  # fmt: skip
    with TestClient(create_app(runtime=runtime)) as client:
        body = {"text": "hang", "context": {"language": "fi"}}
        response = client.post("/api/v1/analyze", json=body, headers=API)
        assert response.status_code == 503 and response.headers["Retry-After"]
        again = client.post("/api/v1/analyze", json={"text": "Yskää."}, headers=API)
        assert again.status_code == 200 and again.json()["triage"]["urgency"]
