"""The ASR benchmark's parts: the synthetic corpus, a real engine run in its own process, WER."""

from __future__ import annotations

from pathlib import Path

import pytest

from esitieto.bench.asr import (
    DEFAULTS_VARIANT,
    ENGINE_VARIANTS,
    Clip,
    Row,
    build_corpus,
    run_variant,
    summary,
    table,
    word_error_rates,
)
from summarizer.speech.settings import AsrSettings
from tests.conftest import need

SCRIPTS = """
version: 0
scripts:
  - {id: fi-x, lang: fi, voice: fi, text: "Minulla on kuumetta ja yskää."}
  - {id: en-x, lang: en, voice: en-gb, text: "I have a sore throat."}
"""


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> list[Clip]:
    need("espeak-ng", "sox", "soxi")
    root = tmp_path_factory.mktemp("bench")
    scripts = root / "scripts.yaml"
    scripts.write_text(SCRIPTS, encoding="utf-8")
    return build_corpus(root / "clips", scripts)


def test_the_corpus_is_phone_audio_made_once(corpus: list[Clip], tmp_path: Path) -> None:
    assert [c.id for c in corpus] == ["fi-x", "en-x"]
    for clip in corpus:
        assert clip.path.exists() and 0.5 < clip.duration_s < 10
        header = clip.path.read_bytes()[:44]
        assert header[:4] == b"RIFF" and int.from_bytes(header[24:28], "little") == 8000
    mtimes = [c.path.stat().st_mtime_ns for c in corpus]
    scripts = corpus[0].path.parent.parent / "scripts.yaml"
    again = build_corpus(corpus[0].path.parent, scripts)
    assert [c.path.stat().st_mtime_ns for c in again] == mtimes


def test_word_error_rate_after_whisper_normalisation(corpus: list[Clip]) -> None:
    perfect = {"fi-x": "minulla on KUUMETTA, ja yskää!", "en-x": "I have a sore throat"}
    assert word_error_rates(corpus, perfect) == (0.0, {"en": 0.0, "fi": 0.0})
    wer, by_language = word_error_rates(corpus, {"fi-x": "minulla on kuumetta", "en-x": ""})
    assert by_language == {"en": 1.0, "fi": 0.4} and 0 < wer < 1


@pytest.mark.slow
def test_a_real_engine_runs_in_its_own_process(corpus: list[Clip], bundled_model_dir: Path) -> None:
    data_dir = bundled_model_dir.parent.parent
    row = run_variant(ENGINE_VARIANTS[0], corpus[:1], data_dir, AsrSettings())
    assert row.hypotheses["fi-x"] and row.total_s > 0 and row.peak_mb > 100
    assert 0.0 <= row.wer <= 2.0 and set(row.wer_by_language) == {"fi"}
    text = table([row, Row(DEFAULTS_VARIANT, audio_s=1.0, total_s=2.0)])
    assert "faster-whisper (int8)" in text and text.count("\n") == 3
    assert summary([row])["wer_tuned"] == row.wer
