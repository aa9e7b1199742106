"""Speech-to-text settings (``ESITIETO_ASR__*``), a section of the app's settings."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field, SecretStr


class AsrSettings(BaseModel):
    engine: str = "faster-whisper"
    """``faster-whisper`` (default), ``openai-whisper``, ``transformers``, or ``remote``: the
    servers in ``remote_urls`` (OpenAI's transcription API: vLLM, faster-whisper servers, Azure
    OpenAI, ``esitieto stt-serve``)."""
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
    remote_urls: list[str] = Field(default_factory=list)
    """Base URLs of the speech-to-text servers (``["http://stt1:9000", "http://stt2:9000"]``);
    each answers ``POST /v1/audio/transcriptions``."""
    remote_model: str = "whisper-1"
    """The ``model`` field sent to the servers (what they call their model)."""
    remote_api_key: SecretStr | None = None
    """Sent as ``Authorization: Bearer``; also the key ``esitieto stt-serve`` asks for."""
    remote_timeout_s: float = Field(default=30.0, gt=0)
    remote_fallback: bool = True
    """When no server answers, transcribe on this machine (the bundled or configured model)."""
