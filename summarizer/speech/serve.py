"""``esitieto stt-serve``: this project's speech-to-text behind OpenAI's transcription API.

``POST /v1/audio/transcriptions`` with a multipart ``file`` (any audio the engine reads:
WAV, μ-law, MP3…), ``model`` (accepted, the server's own model answers), ``language``,
``prompt`` and ``response_format`` (``json``, ``verbose_json`` or ``text``), as OpenAI
documents it; ``GET /health``. So a pool of our own processes, or of vLLM and other servers,
is interchangeable behind ``ESITIETO_ASR__ENGINE=remote``.

Audio is health data: it is not written to disk or logged, requests need the configured
bearer key, and a body over the size cap is refused before it is read. One process runs one
model; transcriptions queue for it, so a pool scales by processes (or hosts).
"""

from __future__ import annotations

import hmac
import logging
import threading
from collections.abc import Awaitable, Callable
from typing import Annotated, Literal

from fastapi import FastAPI, File, Form, HTTPException, Request, UploadFile
from fastapi.responses import JSONResponse, PlainTextResponse, Response

from summarizer.speech.audio import AudioError
from summarizer.speech.stt import SpeechToText, TranscriptionError

log = logging.getLogger(__name__)

MAX_UPLOAD_BYTES = 25 * 1024 * 1024
"""OpenAI's own limit for one file."""
LANGUAGE_NAMES = {"fi": "finnish", "sv": "swedish", "en": "english"}


def create_stt_app(
    engine: SpeechToText, *, api_key: str | None = None, max_bytes: int = MAX_UPLOAD_BYTES
) -> FastAPI:
    app = FastAPI(title="Esitieto speech-to-text", docs_url=None, redoc_url=None)
    one_at_a_time = threading.Lock()  # the model uses every core: queue, don't thrash

    @app.middleware("http")
    async def guard(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        if api_key is not None and request.url.path != "/health":
            given = request.headers.get("authorization", "")
            if not hmac.compare_digest(given.encode(), f"Bearer {api_key}".encode()):
                return _error(401, "a valid API key is required", "invalid_api_key")
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > max_bytes:
            return _error(413, f"the file is over {max_bytes} bytes", "file_too_large")
        return await call_next(request)

    @app.get("/health")
    def health() -> dict[str, object]:
        return {"status": "ok", "engine": engine.name, "model": engine.model_name,
                "loaded": engine.loaded}  # fmt: skip

    @app.post("/v1/audio/transcriptions", response_model=None)
    def transcriptions(
        file: Annotated[UploadFile, File()],
        model: Annotated[str, Form()] = "whisper-1",
        language: Annotated[str | None, Form()] = None,
        prompt: Annotated[str | None, Form()] = None,
        response_format: Annotated[Literal["json", "verbose_json", "text"], Form()] = "json",
        temperature: Annotated[float, Form()] = 0.0,
    ) -> Response:
        data = file.file.read(max_bytes + 1)
        if len(data) > max_bytes:
            return _error(413, f"the file is over {max_bytes} bytes", "file_too_large")
        try:
            with one_at_a_time:
                t = engine.transcribe(data, language=language or None, prompt=prompt or None)
        except AudioError as exc:
            return _error(400, str(exc), "invalid_audio")
        except TranscriptionError as exc:
            log.warning("transcription failed: %s", type(exc).__name__)
            raise HTTPException(status_code=503, detail="the engine failed; try again") from exc
        if response_format == "text":
            return PlainTextResponse(t.text)
        if response_format == "json":
            return JSONResponse({"text": t.text})
        return JSONResponse(
            {
                "task": "transcribe",
                "language": LANGUAGE_NAMES.get(t.language, t.language),
                "duration": t.audio_duration_s,
                "text": t.text,
                "segments": [
                    {"id": i, "seek": 0, "start": s.start, "end": s.end, "text": s.text,
                     "avg_logprob": s.avg_logprob, "no_speech_prob": s.no_speech_prob,
                     "temperature": 0.0}
                    for i, s in enumerate(t.segments)
                ],
            }
        )  # fmt: skip

    return app


def _error(status: int, message: str, code: str) -> JSONResponse:
    """OpenAI's error shape."""
    return JSONResponse(
        {"error": {"message": message, "type": "invalid_request_error", "code": code}},
        status_code=status,
    )
