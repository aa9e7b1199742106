"""Text → summary + triage, with no database and no network (``analyze`` and its API)."""

from __future__ import annotations

from pydantic import BaseModel

from pretriage.engine import decide, describe
from pretriage.schemas import TriageDecision
from summarizer.extract import summarize
from summarizer.note import render_note
from summarizer.schemas import CallContext, Summary


class AnalysisResult(BaseModel):
    id: str | None = None
    summary: Summary
    triage: TriageDecision


def analyze_text(
    item_id: str | None,
    text: str,
    context: CallContext | None = None,
    *,
    asr_confidence: float | None = None,
    note_language: str = "fi",
) -> AnalysisResult:
    context = context or CallContext()
    summary = summarize(text, context, note_language=note_language)
    triage = decide(summary, text, context, asr_confidence=asr_confidence, language=note_language)
    summary.note = render_note(summary, note_language, pretriage=describe(triage, note_language))
    return AnalysisResult(id=item_id, summary=summary, triage=triage)
