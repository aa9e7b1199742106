"""What a speech-to-text engine heard: the transcript and its timed segments."""

from __future__ import annotations

from pydantic import BaseModel, Field


class TranscriptSegment(BaseModel):
    start: float
    end: float
    text: str
    avg_logprob: float | None = None
    no_speech_prob: float | None = None


class Transcript(BaseModel):
    """What a speech-to-text engine heard in one recording."""

    text: str
    language: str
    language_probability: float | None = None
    segments: list[TranscriptSegment] = Field(default_factory=list)
    audio_duration_s: float = 0.0
    processing_s: float = 0.0
    engine: str = ""
    model: str = ""

    @property
    def is_empty(self) -> bool:
        return not self.text.strip()
