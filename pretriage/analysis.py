"""Text → summary + triage, with no database and no network (``analyze`` and its API).

A language-model phraser, when one is configured, only rewords the reason line and the note;
whatever it writes is checked against the deterministic summary and dropped if ungrounded.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pydantic import BaseModel

from pretriage.engine import decide, describe
from pretriage.schemas import TriageDecision
from summarizer.text.extract import summarize
from summarizer.text.note import reason_line, render_note
from summarizer.text.schemas import CallContext, Summary

if TYPE_CHECKING:
    from summarizer.text.phrasing import Phraser

DETERMINISTIC = "deterministic"


class AnalysisResult(BaseModel):
    id: str | None = None
    summary: Summary
    triage: TriageDecision
    generator: str = DETERMINISTIC
    """Who phrased the reason and the note: ``deterministic`` or ``<backend>:<model>``."""
    phrasing_fallback: str | None = None
    """Why the language model's phrasing was not used (``invalid_json``, ``ungrounded_code``...)."""


def analyze_text(
    item_id: str | None,
    text: str,
    context: CallContext | None = None,
    *,
    asr_confidence: float | None = None,
    note_language: str = "fi",
    headings: Mapping[str, str] | None = None,
    enabled_paths: Mapping[str, str | None] | None = None,
    phraser: Phraser | None = None,
) -> AnalysisResult:
    """``headings`` are the station's own note headings; ``enabled_paths`` the digital paths
    it offers (None: all of them)."""
    context = context or CallContext()
    summary = summarize(text, context, note_language=note_language)
    triage = decide(
        summary,
        text,
        context,
        asr_confidence=asr_confidence,
        enabled_paths=enabled_paths,
        language=note_language,
    )
    summary.note = render_note(
        summary, note_language, pretriage=describe(triage, note_language), headings=headings
    )
    result = AnalysisResult(id=item_id, summary=summary, triage=triage)
    if phraser is not None and text.strip():
        phrased = phraser.phrase(summary, text, language=note_language, note=summary.note)
        summary.reason = phrased.reason or summary.reason or reason_line(summary, note_language)
        summary.note = phrased.note
        result.generator = phrased.generator
        result.phrasing_fallback = phrased.fallback_reason
    return result


@dataclass(frozen=True)
class Analyzer:
    """:func:`analyze_text` with the process's configured parts (the phraser)."""

    phraser: Phraser | None = None

    def __call__(
        self,
        item_id: str | None,
        text: str,
        context: CallContext | None = None,
        *,
        asr_confidence: float | None = None,
        note_language: str = "fi",
        headings: Mapping[str, str] | None = None,
        enabled_paths: Mapping[str, str | None] | None = None,
    ) -> AnalysisResult:
        return analyze_text(
            item_id,
            text,
            context,
            asr_confidence=asr_confidence,
            note_language=note_language,
            headings=headings,
            enabled_paths=enabled_paths,
            phraser=self.phraser,
        )
