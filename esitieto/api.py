"""The JSON API: analysis of a text, and health."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy import func, select, text

from esitieto.analysis import AnalysisResult, analyze_text
from esitieto.runtime import Runtime, get_runtime
from models import Job, JobState
from summarizer.schemas import CallContext

router = APIRouter()
Rt = Annotated[Runtime, Depends(get_runtime)]


class AnalyzeRequest(BaseModel):
    id: str | None = None
    text: str = Field(max_length=20000)
    context: CallContext = Field(default_factory=CallContext)
    note_language: Literal["fi", "sv", "en"] = "fi"


@router.post("/api/v1/analyze", response_model=AnalysisResult)
def analyze(body: AnalyzeRequest, runtime: Rt) -> AnalysisResult:
    """The same as one ``esitieto analyze --jsonl`` line."""
    return analyze_text(
        body.id,
        body.text,
        body.context,
        note_language=body.note_language,
        phraser=runtime.phraser,
    )


@router.get("/healthz")
def healthz(runtime: Rt) -> JSONResponse:
    """Liveness and readiness: database, job queue backlog, speech model loaded."""
    checks: dict[str, object] = {}
    ok = True
    try:
        with runtime.db.session() as session:
            session.execute(text("SELECT 1"))
            checks["queued_jobs"] = session.scalar(
                select(func.count()).select_from(Job).where(Job.state == JobState.QUEUED)
            )
        checks["database"] = "ok"
    except Exception as exc:
        checks["database"] = f"error: {type(exc).__name__}"
        ok = False
    alive = runtime.worker_alive
    checks["worker"] = (
        "external"
        if runtime.settings.worker.mode == "external"
        else ("ok" if alive is not None and alive() else "stopped")
    )
    if checks["worker"] == "stopped":
        ok = False
    from summarizer.stt import engine_loaded

    checks["asr_model_loaded"] = engine_loaded()
    return JSONResponse(
        {"status": "ok" if ok else "error", **checks}, status_code=200 if ok else 503
    )
