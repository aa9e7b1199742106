"""Settings of the detector by meaning (``ESITIETO_DETECTOR__*``), a section of the app's."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, SecretStr


class DetectorSettings(BaseModel):
    enabled: bool = True
    """Off: the rules alone decide (as before policy version 2)."""
    embedder: Literal["e5", "openai"] = "e5"
    """``e5``: the bundled multilingual-e5-small on the CPU; ``openai``: an OpenAI-compatible
    ``/v1/embeddings`` endpoint (``base_url``, ``model``, ``api_key``)."""
    threads: int = 0
    """CPU threads for the bundled model; 0: every core the process may use. A number sets
    ``OMP_NUM_THREADS`` for the whole process before the model loads."""
    base_url: str | None = None
    model: str | None = None
    api_key: SecretStr | None = None
    timeout_s: float = 5.0
    classifier: Path | None = None
    """A classifier trained for the embedder (``esitieto signs train --out``); default: the
    bundled one, trained for ``e5``."""
