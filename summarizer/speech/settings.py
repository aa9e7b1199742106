"""Speech-to-text settings (``ESITIETO_ASR__*``), a section of the app's settings."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel


class AsrSettings(BaseModel):
    engine: str = "faster-whisper"
    """``faster-whisper`` (default), ``openai-whisper`` or ``transformers``."""
    model: str | None = None
    """The engine's model: a CTranslate2 directory (faster-whisper), an openai-whisper ``.pt``
    checkpoint, or a Hugging Face directory (transformers); default: the bundled base model,
    converted once for the other two engines."""
    device: str = "cpu"
    compute_type: str = "int8"
    """faster-whisper only: ``int8`` on CPU, ``float16`` on a GPU."""
    cpu_threads: int = 0
    beam_size: int = 5
    decoding: Literal["tuned", "defaults"] = "tuned"
    """``tuned``: VAD, fi/sv/en only, vocabulary prompt, no conditioning on previous text
    (chosen by ``esitieto bench asr``); ``defaults``: the libraries' own settings."""
    max_audio_seconds: float = 600.0
