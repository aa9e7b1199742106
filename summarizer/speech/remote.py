"""Speech-to-text over HTTP: a pool of servers that speak OpenAI's transcription API.

``POST {base}/v1/audio/transcriptions`` (multipart ``file``, ``model``, ``language``,
``prompt``, ``response_format=verbose_json``, ``temperature=0``) is what vLLM, the
faster-whisper servers, Azure OpenAI and our own ``esitieto stt-serve`` answer, so a station
points transcription at GPU servers by configuration (``ESITIETO_ASR__ENGINE=remote``).

The audio is decoded, checked and trimmed by VAD here as for every engine; what goes over the
wire is 16 kHz PCM WAV. Each server has a circuit breaker: after a few failures in a row it is
left alone for a while, so an unreachable server costs one timeout, not one per recording.
:class:`FallbackSpeechToText` runs the local engine when no server answers, so a dead pool
slows transcription down but never stops it; the in-call budget still holds (the caller
goes to a nurse when the answer is late, as with any engine).
"""

from __future__ import annotations

import io
import itertools
import logging
import threading
import time
import wave
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from summarizer.speech.audio import SAMPLE_RATE, AudioClip
from summarizer.speech.schemas import Transcript, TranscriptSegment
from summarizer.speech.stt import DecodeOptions, SpeechToText, TranscriptionError

log = logging.getLogger(__name__)

LANGUAGE_NAMES = {"finnish": "fi", "swedish": "sv", "english": "en"}
"""OpenAI's ``verbose_json`` names the language in full; the app uses ISO 639-1 codes."""


@dataclass
class CircuitBreaker:
    """Closed → open after ``failures`` failures in a row → half-open after ``reset_s``
    (one request may try) → closed on a success."""

    failures: int = 3
    reset_s: float = 30.0
    clock: Callable[[], float] = time.monotonic
    _count: int = 0
    _opened_at: float | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def allows(self) -> bool:
        with self._lock:
            if self._opened_at is None:
                return True
            if self.clock() - self._opened_at >= self.reset_s:
                self._opened_at = self.clock()  # half-open: this one request, then wait again
                return True
            return False

    def succeeded(self) -> None:
        with self._lock:
            self._count, self._opened_at = 0, None

    def failed(self) -> None:
        with self._lock:
            self._count += 1
            if self._count >= self.failures:
                self._opened_at = self.clock()

    @property
    def open(self) -> bool:
        return self._opened_at is not None


class ServerError(Exception):
    """One server did not give a transcript (the next one is tried)."""


class RemoteSpeechToText(SpeechToText):
    """The OpenAI-compatible transcription API on one or more servers, round robin."""

    name = "remote"

    def __init__(
        self,
        base_urls: list[str],
        *,
        model: str = "whisper-1",
        api_key: str | None = None,
        timeout_s: float = 30.0,
        attempts: int = 2,
        breaker_failures: int = 3,
        breaker_reset_s: float = 30.0,
        max_audio_seconds: float = 600.0,
        options: DecodeOptions | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        if not base_urls:
            raise ValueError("a remote speech-to-text engine needs at least one server URL")
        self.servers = [u.rstrip("/") for u in base_urls]
        self.model_name = model
        self.max_audio_seconds = max_audio_seconds
        # The servers decode as they are set up; VAD and the vocabulary prompt are ours.
        self.options = options or DecodeOptions(languages=())
        self.breakers = {u: CircuitBreaker(breaker_failures, breaker_reset_s) for u in self.servers}
        self.concurrency = len(self.servers)
        self._attempts = max(1, attempts)
        self._timeout = timeout_s
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.Client(timeout=timeout_s, transport=transport)
        self._next = itertools.cycle(range(len(self.servers)))
        self._next_lock = threading.Lock()

    def _order(self) -> list[str]:
        with self._next_lock:
            first = next(self._next)
        return self.servers[first:] + self.servers[:first]

    def _transcribe_impl(
        self, clip: AudioClip, *, language: str | None, prompt: str | None
    ) -> Transcript:
        wav = wav_bytes(clip.samples)
        errors: list[str] = []
        tried = 0
        for server in self._order():
            if tried >= self._attempts:
                break
            breaker = self.breakers[server]
            if not breaker.allows():
                errors.append(f"{server}: circuit open")
                continue
            tried += 1
            try:
                result = self._post(server, wav, language, prompt)
            except ServerError as exc:
                breaker.failed()
                log.warning("speech-to-text server %s failed: %s", server, exc)
                errors.append(f"{server}: {exc}")
                continue
            breaker.succeeded()
            return result
        raise TranscriptionError("no speech-to-text server answered: " + "; ".join(errors))

    def _post(
        self, server: str, wav: bytes, language: str | None, prompt: str | None
    ) -> Transcript:
        data = {"model": self.model_name, "response_format": "verbose_json", "temperature": "0"}
        if language:
            data["language"] = language
        if prompt:
            data["prompt"] = prompt
        try:
            response = self._client.post(
                f"{server}/v1/audio/transcriptions",
                data=data,
                files={"file": ("audio.wav", wav, "audio/wav")},
                headers=self._headers,
            )
        except httpx.HTTPError as exc:
            raise ServerError(type(exc).__name__) from exc
        if response.status_code != 200:
            raise ServerError(f"HTTP {response.status_code}")
        try:
            return parse_transcription(response.json(), language)
        except (ValueError, TypeError, KeyError) as exc:
            raise ServerError("an answer that is not a transcription") from exc

    def close(self) -> None:
        self._client.close()


def wav_bytes(samples: np.ndarray) -> bytes:
    """16 kHz mono 16-bit PCM WAV of float samples in [-1, 1]."""
    pcm = (np.clip(samples, -1.0, 1.0) * 32767.0).astype("<i2")
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(SAMPLE_RATE)
        w.writeframes(pcm.tobytes())
    return out.getvalue()


def parse_transcription(payload: Any, language: str | None) -> Transcript:
    """OpenAI's ``json`` or ``verbose_json`` transcription as a :class:`Transcript`."""
    if not isinstance(payload, dict) or not isinstance(payload.get("text"), str):
        raise ValueError("no text")
    lang = str(payload.get("language") or language or "").lower()
    lang = LANGUAGE_NAMES.get(lang, lang)
    segments = [
        TranscriptSegment(
            start=float(s["start"]),
            end=float(s["end"]),
            text=str(s["text"]).strip(),
            avg_logprob=_number(s.get("avg_logprob")),
            no_speech_prob=_number(s.get("no_speech_prob")),
        )
        for s in payload.get("segments") or []
    ]
    text = payload["text"].strip()
    if not segments and text:
        end = _number(payload.get("duration")) or 0.0
        segments = [TranscriptSegment(start=0.0, end=end, text=text)]
    return Transcript(text=text, language=lang, segments=segments)


def _number(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


class FallbackSpeechToText(SpeechToText):
    """The primary engine (a server pool), and the local engine when the primary fails
    (after livekit/agents' ``FallbackAdapter``). Bad audio is bad on every engine: it is
    raised at once, not retried locally."""

    def __init__(self, primary: SpeechToText, fallback: Callable[[], SpeechToText]) -> None:
        self.primary = primary
        self._fallback = fallback
        self.name = f"{primary.name}+fallback"
        self.model_name = primary.model_name
        self.max_audio_seconds = primary.max_audio_seconds
        self.options = primary.options
        self.concurrency = primary.concurrency

    def transcribe(
        self, audio: Path | bytes, *, language: str | None = None, prompt: str | None = None
    ) -> Transcript:
        try:
            return self.primary.transcribe(audio, language=language, prompt=prompt)
        except TranscriptionError as exc:
            log.warning("%s; transcribing on this machine instead", exc)
            return self._fallback().transcribe(audio, language=language, prompt=prompt)

    def _transcribe_impl(
        self, clip: AudioClip, *, language: str | None, prompt: str | None
    ) -> Transcript:  # pragma: no cover - transcribe() is overridden
        raise NotImplementedError
