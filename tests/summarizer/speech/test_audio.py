from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
import pytest

from summarizer.speech.audio import (
    SAMPLE_RATE,
    SILENCE_THRESHOLD,
    AudioClip,
    AudioError,
    AudioTooLongError,
    CorruptAudioError,
    EmptyAudioError,
    SilentAudioError,
    is_silent,
    load_audio,
)


def check_speech_clip(clip: AudioClip, source_rate: int) -> None:
    assert clip.samples.dtype == np.float32
    assert clip.samples.ndim == 1
    assert clip.source_sample_rate == source_rate
    assert 2.0 < clip.duration_s < 8.0
    assert clip.duration_s == pytest.approx(clip.samples.size / SAMPLE_RATE)
    assert float(np.abs(clip.samples).max()) <= 1.0
    assert not is_silent(clip.samples)


def test_mulaw_wav(finnish_mulaw_wav: Path) -> None:
    check_speech_clip(load_audio(finnish_mulaw_wav, max_seconds=600), 8000)


def test_pcm16_wav(finnish_pcm_wav: Path) -> None:
    check_speech_clip(load_audio(finnish_pcm_wav, max_seconds=600), 8000)


def test_mp3(finnish_mp3: Path) -> None:
    check_speech_clip(load_audio(finnish_mp3, max_seconds=600), 8000)


def test_bytes_and_str_path_decode_like_a_path(finnish_mulaw_wav: Path) -> None:
    from_path = load_audio(finnish_mulaw_wav, max_seconds=600)
    from_bytes = load_audio(finnish_mulaw_wav.read_bytes(), max_seconds=600)
    from_str = load_audio(str(finnish_mulaw_wav), max_seconds=600)
    np.testing.assert_array_equal(from_path.samples, from_bytes.samples)
    np.testing.assert_array_equal(from_path.samples, from_str.samples)


def test_empty_file(empty_file: Path) -> None:
    with pytest.raises(EmptyAudioError, match="empty"):
        load_audio(empty_file, max_seconds=600)
    with pytest.raises(EmptyAudioError):
        load_audio(b"", max_seconds=600)


def test_wav_without_frames_is_empty(tmp_path: Path) -> None:
    path = tmp_path / "noframes.wav"
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(b"")
    with pytest.raises(EmptyAudioError, match="no audio samples"):
        load_audio(path, max_seconds=600)


def test_corrupt_file(corrupt_wav: Path) -> None:
    with pytest.raises(CorruptAudioError, match="not readable audio") as exc_info:
        load_audio(corrupt_wav, max_seconds=600)
    assert exc_info.value.__cause__ is not None  # the PyAV error, for the logs
    assert str(corrupt_wav) not in str(exc_info.value)


@pytest.mark.parametrize(
    "data", [b"<html><body>404 Not Found</body></html>", b"\x00" * 2000, b"RIFF\x00\x00"]
)
def test_non_audio_bytes_are_corrupt(data: bytes) -> None:
    with pytest.raises(CorruptAudioError, match="not readable audio"):
        load_audio(data, max_seconds=600)


def test_too_long_is_rejected_from_the_header(too_long_wav: Path) -> None:
    with pytest.raises(AudioTooLongError, match="too long") as exc_info:
        load_audio(too_long_wav, max_seconds=600)
    assert exc_info.value.duration_s == pytest.approx(610, abs=0.1)
    assert exc_info.value.max_seconds == 600


def test_too_long_by_decoded_length(finnish_mulaw_wav: Path) -> None:
    duration = load_audio(finnish_mulaw_wav, max_seconds=600).duration_s
    # Within the header slack, so the decoded length decides.
    with pytest.raises(AudioTooLongError):
        load_audio(finnish_mulaw_wav, max_seconds=duration - 0.1)
    assert load_audio(finnish_mulaw_wav, max_seconds=duration + 0.1).duration_s == duration


def test_silent_recording(silent_mulaw_wav: Path) -> None:
    with pytest.raises(SilentAudioError, match="silent") as exc_info:
        load_audio(silent_mulaw_wav, max_seconds=600)
    assert exc_info.value.duration_s == pytest.approx(3.0)
    clip = load_audio(silent_mulaw_wav, max_seconds=600, reject_silent=False)
    assert clip.duration_s == pytest.approx(3.0)
    assert is_silent(clip.samples)


def test_line_noise_is_not_silent(noise_wav: Path) -> None:
    assert not is_silent(load_audio(noise_wav, max_seconds=600).samples)


def test_missing_file_is_not_an_audio_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        load_audio(tmp_path / "nope.wav", max_seconds=600)


def test_error_hierarchy() -> None:
    for cls in (EmptyAudioError, CorruptAudioError, AudioTooLongError, SilentAudioError):
        assert issubclass(cls, AudioError)


def tone(seconds: float, dbfs: float) -> np.ndarray:
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    amplitude = 10 ** (dbfs / 20) * np.sqrt(2)  # sine RMS = amplitude / sqrt(2)
    return (amplitude * np.sin(2 * np.pi * 300 * t)).astype(np.float32)


def test_is_silent_thresholds() -> None:
    assert is_silent(np.zeros(0, dtype=np.float32))
    assert is_silent(np.zeros(SAMPLE_RATE * 5, dtype=np.float32))
    hiss = np.random.default_rng(0).normal(0, 10 ** (-70 / 20), SAMPLE_RATE * 5)
    assert is_silent(hiss.astype(np.float32))
    assert not is_silent(tone(1.0, -35))
    assert SILENCE_THRESHOLD < 10 ** (-35 / 20) / 10  # well under quiet speech


def test_a_short_quiet_word_in_long_silence_is_not_silent() -> None:
    silence = np.zeros(SAMPLE_RATE * 600, dtype=np.float32)
    word = tone(0.3, -35)
    silence[SAMPLE_RATE * 300 : SAMPLE_RATE * 300 + word.size] = word
    assert not is_silent(silence)
