from __future__ import annotations

import math
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from summarizer.speech import stt
from summarizer.speech.audio import AudioClip, AudioTooLongError, CorruptAudioError, EmptyAudioError
from summarizer.speech.schemas import Transcript, TranscriptSegment
from summarizer.speech.settings import AsrSettings
from summarizer.speech.stt import (
    ENGINES,
    TUNED,
    DecodeOptions,
    FasterWhisperEngine,
    SpeechToText,
    TranscriptionError,
    average_confidence,
    collapse_repetitions,
    echoes_prompt,
    engine_loaded,
    get_engine,
    is_hallucination,
    normalise_language,
    transcribe_within,
    vocabulary_prompt,
)

FINNISH_STEMS = ("minulla", "ollut", "kova", "kaksi", "pää", "päi")
"""Words/stems of the conftest sentence, at least one expected: the base model garbles
robotic speech."""


@pytest.fixture(autouse=True)
def _fresh_engine_cache() -> Iterator[None]:
    stt._reset_engine_cache()
    yield
    stt._reset_engine_cache()


@pytest.fixture(scope="module")
def whisper(bundled_model_dir: Path) -> FasterWhisperEngine:
    """One real engine for the slow tests in this module (loading costs ~0.5 s)."""
    return FasterWhisperEngine(bundled_model_dir)


def data_dir_of(bundled_model_dir: Path) -> Path:
    return bundled_model_dir.parent.parent  # <data>/models/whisper-base-ct2


def assert_finnish_words(text: str) -> None:
    lowered = text.lower()
    assert any(stem in lowered for stem in FINNISH_STEMS), "no expected Finnish word heard"


# -- real Whisper (slow) ---------------------------------------------------------------------


@pytest.mark.slow
def test_finnish_phone_call(whisper: FasterWhisperEngine, finnish_mulaw_wav: Path) -> None:
    t = whisper.transcribe(finnish_mulaw_wav, language="fi-FI")
    assert not t.is_empty
    assert_finnish_words(t.text)
    assert t.language == "fi"
    assert t.engine == "faster-whisper"
    assert t.model == "whisper-base-ct2"
    assert 2.0 < t.audio_duration_s < 8.0
    assert t.processing_s > 0
    assert t.text == " ".join(s.text for s in t.segments)
    for s in t.segments:
        assert 0 <= s.start <= s.end <= t.audio_duration_s + 0.5
        assert s.text == s.text.strip()
        assert s.avg_logprob is not None and s.no_speech_prob is not None
    confidence = average_confidence(t)
    assert confidence is not None and 0 < confidence <= 1


@pytest.mark.slow
def test_mp3(whisper: FasterWhisperEngine, finnish_mp3: Path) -> None:
    t = whisper.transcribe(finnish_mp3, language="fi")
    assert not t.is_empty
    assert_finnish_words(t.text)
    assert 2.0 < t.audio_duration_s < 8.0


@pytest.mark.slow
def test_bytes_with_language_detection(
    whisper: FasterWhisperEngine, finnish_mulaw_wav: Path
) -> None:
    t = whisper.transcribe(finnish_mulaw_wav.read_bytes())
    assert not t.is_empty
    assert_finnish_words(t.text)
    assert t.language  # detected (the robotic voice makes the guess itself uncertain)
    assert t.language_probability is not None and 0 < t.language_probability <= 1


@pytest.mark.slow
def test_line_noise_gives_an_empty_transcript(
    whisper: FasterWhisperEngine, noise_wav: Path
) -> None:
    """Energy but no speech: VAD finds nothing, the no-VAD retry must not invent words."""
    t = whisper.transcribe(noise_wav, language="fi")
    assert t.is_empty
    assert t.segments == []
    assert t.audio_duration_s == pytest.approx(3.0)


@pytest.mark.slow
def test_the_same_audio_gives_the_same_words_every_time(
    whisper: FasterWhisperEngine, finnish_noisy_wav: Path
) -> None:
    """Decoding never samples: a noisy call, where a temperature fallback would draw other
    words on each run (and a chest pain be an emergency once and urgent the next time), is
    heard the same way every time on this machine."""
    texts = {whisper.transcribe(finnish_noisy_wav, language="fi").text for _ in range(4)}
    assert len(texts) == 1


def test_tuned_decoding_never_samples() -> None:
    assert TUNED.temperatures == (0.0,)


# -- the engine without inference ------------------------------------------------------------


def test_silence_is_an_empty_transcript_without_loading_the_model(
    bundled_model_dir: Path, silent_mulaw_wav: Path
) -> None:
    engine = FasterWhisperEngine(bundled_model_dir)
    t = engine.transcribe(silent_mulaw_wav, language="fi")
    assert t.is_empty and t.text == "" and t.segments == []
    assert t.language == "fi"
    assert t.audio_duration_s == pytest.approx(3.0)
    assert t.engine == "faster-whisper" and t.model == "whisper-base-ct2"
    assert average_confidence(t) is None
    assert not engine.loaded


def test_bad_audio_raises_before_loading_the_model(
    bundled_model_dir: Path, empty_file: Path, corrupt_wav: Path, too_long_wav: Path
) -> None:
    engine = FasterWhisperEngine(bundled_model_dir, max_audio_seconds=600)
    with pytest.raises(EmptyAudioError):
        engine.transcribe(empty_file)
    with pytest.raises(CorruptAudioError):
        engine.transcribe(corrupt_wav)
    with pytest.raises(AudioTooLongError):
        engine.transcribe(too_long_wav)
    assert not engine.loaded


def test_missing_model_dir(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"model\.bin"):
        FasterWhisperEngine(tmp_path / "nowhere")


class _Fixed(SpeechToText):
    """A stand-in engine for what the base class adds (not a Whisper mock)."""

    name = "fixed"
    model_name = "fixed-1"

    def __init__(
        self,
        error: Exception | None = None,
        *,
        options: DecodeOptions | None = None,
        says: Callable[[str | None], str] = lambda prompt: "hei",
        languages: dict[str, float] | None = None,
    ) -> None:
        self.error = error
        self.options = options or replace(TUNED, vad=False)
        self.says = says
        self.languages = languages or {}
        self.calls: list[tuple[float, str | None, str | None]] = []

    def _language_probabilities(self, clip: AudioClip) -> dict[str, float]:
        return self.languages

    def _transcribe_impl(
        self, clip: AudioClip, *, language: str | None, prompt: str | None
    ) -> Transcript:
        self.calls.append((clip.duration_s, language, prompt))
        if self.error is not None:
            raise self.error
        text = self.says(prompt)
        segments = [TranscriptSegment(start=0.0, end=clip.duration_s, text=text)] if text else []
        return Transcript(text=text, language=language or "fi", segments=segments)


def test_base_class_fills_bookkeeping(finnish_mulaw_wav: Path) -> None:
    engine = _Fixed()
    t = engine.transcribe(finnish_mulaw_wav, language="FI_fi", prompt="Burana")
    assert t.text == "hei"
    assert (t.engine, t.model) == ("fixed", "fixed-1")
    assert t.processing_s > 0
    assert 2.0 < t.audio_duration_s < 8.0
    assert engine.calls == [(t.audio_duration_s, "fi", "Burana")]


def test_language_is_picked_among_finnish_swedish_and_english(finnish_mulaw_wav: Path) -> None:
    engine = _Fixed(languages={"et": 0.6, "fi": 0.3, "sv": 0.1, "hu": 0.05})
    t = engine.transcribe(finnish_mulaw_wav)
    assert t.language == "fi" and t.language_probability == pytest.approx(0.75)
    assert engine.calls[0][1] == "fi"
    assert engine.calls[0][2] == vocabulary_prompt("fi")


def test_a_transcript_that_repeats_the_prompt_is_decoded_again_without_it(
    finnish_mulaw_wav: Path,
) -> None:
    def says(prompt: str | None) -> str:
        return "Päänsärky, vatsakipu, rintakipu." if prompt else "mitä"

    engine = _Fixed(says=says, options=TUNED)
    t = engine.transcribe(finnish_mulaw_wav, language="fi")
    assert t.text == "mitä"
    assert [c[2] is None for c in engine.calls] == [False, True]


def test_a_prompt_echo_is_never_let_back_in_by_the_full_audio_retry(
    finnish_mulaw_wav: Path,
) -> None:
    """Regression: the prompt echoed, the unprompted decode heard nothing, and the retry on
    all the audio used the prompt again, so the echo (fever, cough) came back as words."""

    def says(prompt: str | None) -> str:
        return "Jag har haft feber, hosta och ont i halsen." if prompt else ""

    engine = _Fixed(says=says, options=TUNED)
    t = engine.transcribe(finnish_mulaw_wav, language="sv")
    assert t.text == ""
    prompted = [c[2] is not None for c in engine.calls]
    assert prompted == [True, False, True, False]


def test_without_speech_found_by_vad_all_audio_is_transcribed(noise_wav: Path) -> None:
    engine = _Fixed(options=replace(TUNED, vocabulary_prompt=False))
    t = engine.transcribe(noise_wav, language="fi")
    assert t.text == "hei"
    assert engine.calls and engine.calls[0][0] == pytest.approx(t.audio_duration_s)


def test_vad_trims_silence_and_segment_times_come_back(
    finnish_mulaw_wav: Path, tmp_path: Path
) -> None:
    padded = tmp_path / "padded.wav"
    subprocess.run(
        ["sox", str(finnish_mulaw_wav), str(padded), "pad", "4", "4"],
        check=True,
        capture_output=True,
    )
    engine = _Fixed(options=replace(TUNED, vocabulary_prompt=False))
    t = engine.transcribe(padded, language="fi")
    heard = engine.calls[0][0]
    assert heard < t.audio_duration_s - 6  # most of the 8 s of silence was cut
    assert t.segments[0].start == pytest.approx(4.0, abs=0.6)  # back on the original clock


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("kiitos kiitos kiitos kiitos", "kiitos"),
        ("Minulla on kuumetta. Kiitos. Kiitos. Kiitos. Kiitos.", "Minulla on kuumetta. Kiitos."),
        ("ja sitten ja sitten ja sitten ja sitten se loppui", "ja sitten se loppui"),
        ("kaksi päivää, kaksi viikkoa", "kaksi päivää, kaksi viikkoa"),
        ("ei ei", "ei ei"),
    ],
)
def test_repetition_loops_collapse(text: str, expected: str) -> None:
    assert collapse_repetitions(text) == expected


def test_prompt_echo() -> None:
    prompt = vocabulary_prompt("fi") or ""
    assert echoes_prompt("Päänsärky, vatsakipu, rintakipu.", prompt)
    assert echoes_prompt("Päänsärky, rintakipu.", prompt)  # a heard-on-noise case
    # mostly the caller's own words: the prompt stays
    assert not echoes_prompt("Lapsella on ollut korvakipua ja itkuisuutta yöllä", prompt)
    assert not echoes_prompt("", prompt)
    assert vocabulary_prompt("sv") and vocabulary_prompt("en")
    assert vocabulary_prompt(None) is None and vocabulary_prompt("de") is None


def test_in_call_transcription_keeps_its_time_budget(finnish_mulaw_wav: Path) -> None:
    quick = _Fixed()
    t = transcribe_within(quick, finnish_mulaw_wav, budget_s=5.0, language="fi")
    assert t is not None and t.text == "hei"

    release = threading.Event()

    def stuck(prompt: str | None) -> str:
        release.wait(60)  # an engine that would take a minute
        return "hei"

    started = time.monotonic()
    late = transcribe_within(_Fixed(says=stuck), finnish_mulaw_wav, budget_s=0.3, language="fi")
    waited = time.monotonic() - started
    release.set()
    # The caller is answered when the budget runs out, not when the engine would finish.
    assert late is None and waited < 30
    with pytest.raises(TranscriptionError):
        transcribe_within(_Fixed(RuntimeError("boom")), finnish_mulaw_wav, budget_s=5.0)


def test_engine_failures_become_transcription_errors(finnish_mulaw_wav: Path) -> None:
    with pytest.raises(TranscriptionError, match="fixed failed") as exc_info:
        _Fixed(RuntimeError("out of memory")).transcribe(finnish_mulaw_wav)
    assert isinstance(exc_info.value.__cause__, RuntimeError)
    with pytest.raises(CorruptAudioError):  # an AudioError stays an AudioError
        _Fixed(CorruptAudioError("bad frame")).transcribe(finnish_mulaw_wav)


# -- get_engine ------------------------------------------------------------------------------


def test_get_engine_is_cached_per_process(bundled_model_dir: Path) -> None:
    settings = AsrSettings()
    data_dir = data_dir_of(bundled_model_dir)
    first = get_engine(settings, data_dir)
    assert isinstance(first, FasterWhisperEngine)
    assert first.model_dir == bundled_model_dir
    assert get_engine(AsrSettings(), data_dir) is first
    assert not engine_loaded()  # loading is lazy

    other = get_engine(AsrSettings(beam_size=1), data_dir)
    assert other is not first
    assert get_engine(AsrSettings(beam_size=1), data_dir) is other


def test_get_engine_with_an_explicit_model(bundled_model_dir: Path, tmp_path: Path) -> None:
    engine = get_engine(AsrSettings(model=str(bundled_model_dir)), tmp_path)
    assert isinstance(engine, FasterWhisperEngine)
    assert engine.model_dir == bundled_model_dir
    assert not (tmp_path / "models").exists()  # the bundled model was not assembled
    with pytest.raises(FileNotFoundError):
        get_engine(AsrSettings(model=str(tmp_path / "missing")), tmp_path)


@pytest.mark.slow
def test_get_engine_loads_the_model_once(bundled_model_dir: Path) -> None:
    engine = get_engine(AsrSettings(), data_dir_of(bundled_model_dir))
    assert isinstance(engine, FasterWhisperEngine)
    engine.load()
    model = engine._model
    assert engine_loaded()
    again = get_engine(AsrSettings(), data_dir_of(bundled_model_dir))
    assert again is engine
    again.load()
    assert engine._model is model


def test_unknown_engine(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="faster-whisper") as exc_info:
        get_engine(AsrSettings(engine="kaldi"), tmp_path)
    assert "kaldi" in str(exc_info.value)
    assert {"faster-whisper", "openai-whisper", "transformers"} <= set(ENGINES)


# -- helpers ---------------------------------------------------------------------------------


def seg(start: float, end: float, logprob: float | None) -> TranscriptSegment:
    return TranscriptSegment(start=start, end=end, text="x", avg_logprob=logprob)


def test_average_confidence_is_duration_weighted() -> None:
    t = Transcript(text="x x", language="fi", segments=[seg(0, 3, -0.1), seg(3, 4, -2.0)])
    expected = (3 * math.exp(-0.1) + 1 * math.exp(-2.0)) / 4
    assert average_confidence(t) == pytest.approx(expected)


def test_average_confidence_edge_cases() -> None:
    assert average_confidence(Transcript(text="", language="fi")) is None
    no_logprob = Transcript(text="x", language="fi", segments=[seg(0, 1, None)])
    assert average_confidence(no_logprob) is None
    zero_length = Transcript(text="x x", language="fi", segments=[seg(1, 1, 0.0), seg(2, 2, 0.0)])
    assert average_confidence(zero_length) == pytest.approx(1.0)


def test_hallucination_filter() -> None:
    assert is_hallucination(0.9, -1.5)
    assert not is_hallucination(0.9, -0.3)  # confident words despite noise: keep
    assert not is_hallucination(0.1, -1.5)  # unsure words in speech: keep
    assert not is_hallucination(None, None)


@pytest.mark.parametrize(
    ("given", "expected"),
    [("fi", "fi"), ("fi-FI", "fi"), ("FI_fi", "fi"), ("sv", "sv"), ("", None), (None, None)],
)
def test_normalise_language(given: str | None, expected: str | None) -> None:
    assert normalise_language(given) == expected
