"""openai-whisper and transformers engines on the bundled weights, on real phone audio, next to
faster-whisper; and every bad-audio case for every engine."""

from __future__ import annotations

import unicodedata
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest

from summarizer.speech import stt
from summarizer.speech.audio import AudioTooLongError, CorruptAudioError, EmptyAudioError
from summarizer.speech.engines import OpenAIWhisperEngine, TransformersWhisperEngine
from summarizer.speech.settings import AsrSettings
from summarizer.speech.stt import TUNED, FasterWhisperEngine, SpeechToText, get_engine
from tests.text_distance import edit_distance

pytest.importorskip("whisper", reason="openai-whisper is not installed (make test installs it)")
pytest.importorskip("transformers", reason="transformers is not installed (make test installs it)")

GREEDY = replace(TUNED, beam_size=1, temperatures=(0.0,), vocabulary_prompt=False)
"""Greedy, no temperature fallback (it samples at random), no prompt: the engines' outputs can
then differ only by arithmetic (float32 vs int8) and tie-breaking."""

Factory = Callable[[dict[str, Path], Path], SpeechToText]
FACTORIES: dict[str, Factory] = {
    "faster-whisper": lambda conv, ct2: FasterWhisperEngine(
        ct2, compute_type="float32", beam_size=1, options=GREEDY
    ),
    "openai-whisper": lambda conv, ct2: OpenAIWhisperEngine(conv["openai"], options=GREEDY),
    "transformers": lambda conv, ct2: TransformersWhisperEngine(conv["hf"], options=GREEDY),
}


@pytest.fixture(scope="module")
def engines(converted_models: dict[str, Path], bundled_model_dir: Path) -> dict[str, SpeechToText]:
    return {name: make(converted_models, bundled_model_dir) for name, make in FACTORIES.items()}


def _words(text: str) -> list[str]:
    text = unicodedata.normalize("NFC", text).lower()
    return "".join(c if c.isalnum() or c.isspace() else " " for c in text).split()


@pytest.mark.slow
def test_the_three_engines_hear_the_same_words(
    engines: dict[str, SpeechToText], finnish_mulaw_wav: Path
) -> None:
    heard = {name: e.transcribe(finnish_mulaw_wav, language="fi") for name, e in engines.items()}
    print("\n" + "\n".join(f"  {k:15} {t.text!r}" for k, t in heard.items()))
    reference = _words(heard["faster-whisper"].text)
    assert reference
    for name, t in heard.items():
        assert t.engine == name and t.language == "fi" and t.segments
        assert t.segments[0].avg_logprob is not None
        # Same weights, same features, greedy: only float rounding can tip a close call.
        assert edit_distance(_words(t.text), reference) <= 0.25, name


@pytest.mark.slow
@pytest.mark.parametrize("name", ["openai-whisper", "transformers"])
def test_language_is_detected_among_finnish_swedish_and_english(
    engines: dict[str, SpeechToText], finnish_mulaw_wav: Path, name: str
) -> None:
    t = engines[name].transcribe(finnish_mulaw_wav)
    assert t.language in ("fi", "sv", "en")
    assert t.language_probability is not None and 0 < t.language_probability <= 1


@pytest.mark.slow
@pytest.mark.parametrize("name", list(FACTORIES))
def test_bad_audio_gets_a_clear_error_from_every_engine(
    name: str,
    converted_models: dict[str, Path],
    bundled_model_dir: Path,
    corrupt_wav: Path,
    silent_wav: Path,
    tmp_path: Path,
    finnish_mulaw_wav: Path,
) -> None:
    engine = FACTORIES[name](converted_models, bundled_model_dir)
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    with pytest.raises(EmptyAudioError):
        engine.transcribe(empty)
    with pytest.raises(CorruptAudioError):
        engine.transcribe(corrupt_wav)
    silent = engine.transcribe(silent_wav, language="fi")
    assert silent.is_empty and silent.engine == name
    engine.max_audio_seconds = 1.0
    with pytest.raises(AudioTooLongError):
        engine.transcribe(finnish_mulaw_wav)
    assert not engine.loaded  # none of these needed the model


@pytest.mark.slow
def test_get_engine_makes_each_engine_on_the_bundled_weights(
    bundled_model_dir: Path, converted_models: dict[str, Path]
) -> None:
    stt._reset_engine_cache()
    data_dir = bundled_model_dir.parent.parent
    try:
        ow = get_engine(
            AsrSettings(engine="openai-whisper", model=str(converted_models["openai"])), data_dir
        )
        assert isinstance(ow, OpenAIWhisperEngine) and ow.checkpoint == converted_models["openai"]
        hf = get_engine(
            AsrSettings(engine="transformers", model=str(converted_models["hf"])), data_dir
        )
        assert isinstance(hf, TransformersWhisperEngine)
        defaults = get_engine(AsrSettings(decoding="defaults"), data_dir)
        assert not defaults.options.vad and not defaults.options.vocabulary_prompt
        with pytest.raises(FileNotFoundError, match="no Hugging Face Whisper model"):
            get_engine(AsrSettings(engine="transformers", model=str(bundled_model_dir)), data_dir)
    finally:
        stt._reset_engine_cache()
