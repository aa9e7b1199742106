"""Decoding and validation of caller audio before it reaches a speech-to-text engine.

Twilio recordings are WAV (16-bit PCM or 8-bit μ-law at 8 kHz) or MP3. Everything is decoded
with PyAV (via ``faster_whisper.audio.decode_audio``) into float32 mono at 16 kHz, the rate
Whisper expects. Each way a recording can be unusable has its own :class:`AudioError` subclass
with a message fit for the staff UI, so the pipeline can record *why* instead of retrying.
Nothing here logs or keeps audio content: it is health data.
"""

from __future__ import annotations

import io
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

SAMPLE_RATE = 16_000
"""What :func:`load_audio` resamples to (Whisper's input rate)."""

SILENCE_FRAME_S = 0.02
"""Frame length for the silence test (20 ms, about one syllable's smallest unit)."""

SILENCE_THRESHOLD_DBFS = -55.0
"""A recording is silent when no 20 ms frame is louder than this (RMS, dB full scale).

Quiet speech on a phone line has voiced frames around -35…-25 dBFS, so -55 dBFS is 20 dB
under the quietest caller we expect, while it is still above μ-law's smallest step (about
-72 dBFS) and a typical idle-line hiss (about -65 dBFS). Testing the loudest *frame* rather than
the whole-file RMS keeps one short quiet "kyllä" in ten minutes of silence from being
averaged away: we would much rather send noise to Whisper (whose VAD and hallucination filter
cope with it) than drop a word the caller said.
"""
SILENCE_THRESHOLD = 10 ** (SILENCE_THRESHOLD_DBFS / 20)

_HEADER_SLACK = 1.05
"""Reject before decoding only when the header's duration is clearly over the limit (MP3
durations in headers are estimates); otherwise the decoded length decides."""


class AudioError(Exception):
    """The recording cannot be transcribed; ``str(exc)`` is a human-readable reason."""


class EmptyAudioError(AudioError):
    """The file has no bytes or decodes to no samples."""


class CorruptAudioError(AudioError):
    """The file is not readable audio (not a format we can decode, or damaged)."""


class AudioTooLongError(AudioError):
    def __init__(self, duration_s: float, max_seconds: float) -> None:
        super().__init__(
            f"the recording is too long ({duration_s:.0f} s; the limit is {max_seconds:.0f} s)"
        )
        self.duration_s = duration_s
        self.max_seconds = max_seconds


class SilentAudioError(AudioError):
    """The recording has no energy above :data:`SILENCE_THRESHOLD_DBFS` anywhere."""

    def __init__(self, duration_s: float) -> None:
        super().__init__(f"the recording is silent ({duration_s:.1f} s without sound)")
        self.duration_s = duration_s


@dataclass(frozen=True)
class AudioClip:
    samples: np.ndarray
    """float32, mono, :data:`SAMPLE_RATE` Hz, in [-1, 1]."""
    duration_s: float
    source_sample_rate: int
    """The recording's own rate (8000 for a phone line), kept for quality diagnostics."""


def is_silent(samples: np.ndarray, sample_rate: int = SAMPLE_RATE) -> bool:
    """True when no :data:`SILENCE_FRAME_S` frame reaches :data:`SILENCE_THRESHOLD` RMS."""
    x = np.asarray(samples, dtype=np.float32).ravel()
    if x.size == 0:
        return True
    frame = max(1, round(SILENCE_FRAME_S * sample_rate))
    pad = (-x.size) % frame
    if pad:
        x = np.concatenate([x, np.zeros(pad, dtype=np.float32)])
    frames = x.reshape(-1, frame).astype(np.float64)
    loudest = float(np.sqrt(np.max(np.mean(frames * frames, axis=1))))
    return loudest < SILENCE_THRESHOLD


def load_audio(
    source: Path | str | bytes, *, max_seconds: float, reject_silent: bool = True
) -> AudioClip:
    """Decode a recording (path or raw bytes) to 16 kHz mono float32 and validate it.

    Raises :class:`EmptyAudioError`, :class:`CorruptAudioError`, :class:`AudioTooLongError` and,
    unless ``reject_silent`` is false, :class:`SilentAudioError`. A missing file raises
    ``FileNotFoundError``: that is a storage problem, not a property of the audio.
    """
    import av  # PyAV: faster-whisper's decoder, imported here to keep this module light

    if isinstance(source, bytes | bytearray):
        if not source:
            raise EmptyAudioError("the recording is empty (0 bytes)")
        data: bytes | None = bytes(source)
        path: Path | None = None
    else:
        path = Path(source)
        if path.stat().st_size == 0:
            raise EmptyAudioError("the recording is empty (0 bytes)")
        data = None

    def _input() -> Any:
        return io.BytesIO(data) if data is not None else str(path)

    try:
        source_rate, header_s = _probe(av, _input())
    except av.error.FFmpegError as exc:
        raise CorruptAudioError(f"the file is not readable audio ({_reason(exc)})") from exc
    if header_s is not None and header_s > max_seconds * _HEADER_SLACK:
        raise AudioTooLongError(header_s, max_seconds)

    from faster_whisper.audio import decode_audio

    try:
        samples = decode_audio(_input(), sampling_rate=SAMPLE_RATE)
    except (av.error.FFmpegError, ValueError) as exc:
        raise CorruptAudioError(f"the file is not readable audio ({_reason(exc)})") from exc
    samples = np.ascontiguousarray(samples, dtype=np.float32)
    if samples.size == 0:
        raise EmptyAudioError("the recording contains no audio samples")
    duration_s = samples.size / SAMPLE_RATE
    if duration_s > max_seconds:
        raise AudioTooLongError(duration_s, max_seconds)
    if reject_silent and is_silent(samples):
        raise SilentAudioError(duration_s)
    log.debug("decoded %.2f s of audio (source %d Hz)", duration_s, source_rate)
    return AudioClip(samples=samples, duration_s=duration_s, source_sample_rate=source_rate)


def _probe(av: Any, src: Any) -> tuple[int, float | None]:
    """(sample rate, duration from the header or None) of the first audio stream."""
    with av.open(src, mode="r", metadata_errors="ignore") as container:
        if not container.streams.audio:
            raise CorruptAudioError("the file is not readable audio (it has no audio stream)")
        stream = container.streams.audio[0]
        rate = int(stream.codec_context.sample_rate or stream.sample_rate or 0)
        duration: float | None = None
        if stream.duration is not None and stream.time_base is not None:
            duration = float(stream.duration * stream.time_base)
        elif container.duration is not None:
            duration = container.duration / av.time_base
        if duration is not None and not math.isfinite(duration):
            duration = None
        return rate, duration


def _reason(exc: Exception) -> str:
    """The decoder's reason without the file name (paths are not for the staff UI)."""
    strerror = getattr(exc, "strerror", None)
    return str(strerror or type(exc).__name__)
