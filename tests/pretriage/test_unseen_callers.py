"""A safety regression suite on invented callers the analyzer was not first written for.

``tests/data/unseen_callers.jsonl`` holds 540 synthetic callers in the dev-vignette format,
written by separate authors in styles unlike the public vignettes (rambling, dialect,
Finland-Swedish, non-native English, lay words for emergencies). Their expectations follow
``pretriage-policy.md`` as a non-clinician read it, so single cases may be arguable; the suite
therefore checks the safety properties as a whole, at the level reached when they were added,
so that a lexicon or rule change that loses ground fails here.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from pretriage.analysis import AnalysisResult, analyze_text
from summarizer.text.schemas import CallContext

CASES = Path(__file__).resolve().parents[1] / "data" / "unseen_callers.jsonl"
RANK = {"non_urgent": 0, "urgent": 1, "emergency": 2}


@pytest.fixture(scope="module")
def results() -> list[tuple[dict[str, Any], AnalysisResult]]:
    cases = [json.loads(line) for line in CASES.read_text(encoding="utf-8").splitlines()]
    return [
        (c, analyze_text(c["id"], c["text"], CallContext.model_validate(c["context"])))
        for c in cases
    ]


def test_an_urgent_or_emergency_caller_never_gets_a_digital_path(
    results: list[tuple[dict[str, Any], AnalysisResult]],
) -> None:
    unsafe = [
        c["id"]
        for c, r in results
        if c["expect"]["urgency"] != "non_urgent" and r.triage.route == "digital_path"
    ]
    assert unsafe == []


def test_under_triage_stays_rare_and_always_reaches_a_nurse(
    results: list[tuple[dict[str, Any], AnalysisResult]],
) -> None:
    under = [
        (c["id"], r.triage.route)
        for c, r in results
        if RANK[r.triage.urgency] < RANK[c["expect"]["urgency"]]
    ]
    assert len(under) <= 3, under  # 2 when the suite was added
    assert all(route in ("callback", "nurse_queue") for _, route in under)


def test_emergency_recall_on_unseen_callers(
    results: list[tuple[dict[str, Any], AnalysisResult]],
) -> None:
    emergencies = [(c, r) for c, r in results if c["expect"]["urgency"] == "emergency"]
    caught = sum(r.triage.urgency == "emergency" for _, r in emergencies)
    assert len(emergencies) >= 110
    assert caught / len(emergencies) >= 0.97  # 0.98 when the suite was added


def test_over_triage_stays_low(results: list[tuple[dict[str, Any], AnalysisResult]]) -> None:
    non_urgent = [(c, r) for c, r in results if c["expect"]["urgency"] == "non_urgent"]
    over = sum(r.triage.urgency != "non_urgent" for _, r in non_urgent)
    assert over / len(non_urgent) <= 0.05  # 0.02 when the suite was added
