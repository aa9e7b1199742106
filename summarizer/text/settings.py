"""Phrasing settings (``ESITIETO_SUMMARIZER__*``), a section of the app's settings."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, SecretStr


class SummarizerSettings(BaseModel):
    """The optional language model that rewords the reason line and the note.

    Its output is checked against the deterministic summary and the caller's words; anything
    ungrounded falls back to the deterministic text. Default: no model."""

    llm_backend: Literal["none", "transformers", "openai"] = "none"
    llm_model_dir: Path | None = None
    """``transformers``: a local model directory (nothing is downloaded)."""
    llm_base_url: str | None = None
    """``openai``: an OpenAI-compatible endpoint, e.g. the county's own deployment."""
    llm_model: str | None = None
    llm_api_key: SecretStr | None = None
    llm_timeout_s: float = 20.0
    llm_max_new_tokens: int = 400
