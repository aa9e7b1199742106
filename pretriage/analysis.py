"""Text → summary + triage, with no database and no network (``analyze`` and its API).

Two detectors read the words: the rules (``engine.py`` with the lexicon) and the detector by
meaning (``detector.py``), which runs only when the rules have not already found an emergency
and can only raise urgency or make the case uncertain. A language-model phraser, when one is
configured, only rewords the reason line and the note; whatever it writes is checked against
the deterministic summary and dropped if ungrounded.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pydantic import BaseModel

from pretriage.detector import UNAVAILABLE, Detection, DetectorError, SignDetector
from pretriage.engine import decide, describe
from pretriage.schemas import TriageDecision
from summarizer.text.extract import summarize
from summarizer.text.note import reason_line, render_note
from summarizer.text.schemas import CallContext, Summary

if TYPE_CHECKING:
    from summarizer.text.phrasing import Phraser

DETERMINISTIC = "deterministic"
log = logging.getLogger(__name__)


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
    detector: SignDetector | None = None,
) -> AnalysisResult:
    """``headings`` are the station's own note headings; ``enabled_paths`` the digital paths
    it offers (None: all of them)."""
    context = context or CallContext()
    summary = summarize(text, context, note_language=note_language)

    def triage_with(detection: Detection | None) -> TriageDecision:
        return decide(
            summary,
            text,
            context,
            asr_confidence=asr_confidence,
            enabled_paths=enabled_paths,
            language=note_language,
            detection=detection,
        )

    triage = triage_with(None)
    if detector is not None and triage.urgency != "emergency" and text.strip():
        try:
            triage = triage_with(detector.detect(text, summary))
        except DetectorError as exc:
            # The words could not be read by meaning: never a digital path on the rules alone.
            log.warning("sign detection failed: %s", exc)
            triage = triage_with(UNAVAILABLE)
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
    """:func:`analyze_text` with the process's configured parts (phraser, detector)."""

    phraser: Phraser | None = None
    detector: SignDetector | None = None

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
            detector=self.detector,
        )
