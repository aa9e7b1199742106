"""A speech-to-text engine that hears given words in given audio (tests, demos, training).

It is a real :class:`~summarizer.speech.stt.SpeechToText`: the audio is decoded and checked
exactly as for Whisper (a corrupt, empty or silent recording behaves the same), and only the
recognition itself is a lookup of the decoded audio. Dialogue and pipeline tests use it, so
that they test the call and not what one CPU's int8 kernels make of synthetic speech.
"""

from __future__ import annotations

import threading
from pathlib import Path

from summarizer.speech.audio import AudioClip, load_audio
from summarizer.speech.schemas import Transcript, TranscriptSegment
from summarizer.speech.stt import DecodeOptions, SpeechToText

SCRIPTED = "scripted"


class ScriptedSpeechToText(SpeechToText):
    """Hears the words :meth:`say` gave for an audio; any other audio is heard as ``unknown``
    (default: nothing intelligible)."""

    name = SCRIPTED
    model_name = SCRIPTED

    def __init__(
        self, *, language: str = "fi", avg_logprob: float = -0.2, unknown: str = ""
    ) -> None:
        self.language = language
        self.avg_logprob = avg_logprob
        """exp(-0.2) ≈ 0.82: a confident recognition, unless a test says otherwise."""
        self.unknown = unknown
        self.options = DecodeOptions(vad=False, vocabulary_prompt=False, languages=())
        self._words: dict[bytes, str] = {}
        self._lock = threading.Lock()

    def say(self, audio: Path | bytes, words: str) -> None:
        """From now on, ``audio`` (the same sound, whatever its container) is heard as
        ``words``."""
        key = load_audio(audio, max_seconds=self.max_audio_seconds).samples.tobytes()
        with self._lock:
            self._words[key] = words

    def _transcribe_impl(
        self, clip: AudioClip, *, language: str | None, prompt: str | None
    ) -> Transcript:
        with self._lock:
            text = self._words.get(clip.samples.tobytes(), self.unknown)
        segments = (
            [
                TranscriptSegment(
                    start=0.0,
                    end=clip.duration_s,
                    text=text,
                    avg_logprob=self.avg_logprob,
                    no_speech_prob=0.01,
                )
            ]
            if text
            else []
        )
        return Transcript(
            text=text,
            language=language or self.language,
            language_probability=1.0,
            segments=segments,
        )
