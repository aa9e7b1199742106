"""The language-model phraser as configured: used by the API, the CLI's code path and the
pipeline, and its output kept only when grounded (a local fake of the chat-completions API)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from esitieto.app import create_app, prepare
from esitieto.runtime import Runtime
from pretriage.analysis import analyze_text
from summarizer.text.settings import SummarizerSettings
from tests.conftest import API, fresh_sqlite, make_settings
from tests.summarizer.text.test_phrasing import FakeLLM, fake_llm  # noqa: F401 - the fixture

TEXT = "Minulla on ollut yskää ja kuumetta kaksi päivää, lämpö 38,4. Ei hengenahdistusta."


@pytest.fixture
def llm_client(
    tmp_path: Path,
    fake_llm: FakeLLM,  # noqa: F811
    sqlite_template: Path,
) -> Iterator[TestClient]:
    fresh_sqlite(sqlite_template, tmp_path / "var" / "esitieto.sqlite3")
    settings = make_settings(tmp_path / "var")
    settings.summarizer = SummarizerSettings(
        llm_backend="openai",
        llm_base_url=fake_llm.base_url,
        llm_model="county-llm-8b",
        llm_api_key=SecretStr("sk-wiring-test"),
        llm_timeout_s=5.0,
    )
    runtime = Runtime(settings)
    prepare(runtime)
    with TestClient(create_app(runtime=runtime)) as client:
        yield client
    runtime.close()


def test_the_api_uses_a_grounded_rewording(llm_client: TestClient, fake_llm: FakeLLM) -> None:  # noqa: F811
    plain = analyze_text(None, TEXT)
    note = plain.summary.note.replace("Allergiat: ei kerrottu.", "Allergiat: ei mainittu.")
    assert note != plain.summary.note
    fake_llm.content = json.dumps({"reason": plain.summary.reason, "note": note})
    out = llm_client.post("/api/v1/analyze", json={"id": "w1", "text": TEXT}, headers=API).json()
    assert out["generator"] == "openai:county-llm-8b", out.get("phrasing_fallback")
    assert "Allergiat: ei mainittu." in out["summary"]["note"]
    assert out["triage"] == plain.triage.model_dump(mode="json")
    sent = fake_llm.requests[-1]
    assert sent["headers"]["Authorization"] == "Bearer sk-wiring-test"


def test_the_api_falls_back_when_the_model_invents(
    llm_client: TestClient,
    fake_llm: FakeLLM,  # noqa: F811
) -> None:
    plain = analyze_text(None, TEXT)
    invented = plain.summary.note.replace("Lääkitys: ei kerrottu.", "Lääkitys: Marevan.")
    fake_llm.content = json.dumps({"reason": plain.summary.reason, "note": invented})
    out = llm_client.post("/api/v1/analyze", json={"text": TEXT}, headers=API).json()
    assert out["generator"] == "deterministic"
    assert out["phrasing_fallback"] == "ungrounded_medication"
    assert out["summary"]["note"] == plain.summary.note
    assert len(fake_llm.requests) == 1
