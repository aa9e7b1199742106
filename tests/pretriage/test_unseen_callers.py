"""A safety regression suite on invented callers the analyzer was not first written for.

``tests/data/unseen_callers.jsonl`` holds 540 synthetic callers (policy version 1),
``unseen_callers_v2.jsonl`` 466 more (policy version 2: sets R, S, T, V and W of the README)
``unseen_callers_y.jsonl`` 90 (set Y, 30 Nov, added after its one untouched scoring) and
``unseen_callers_z.jsonl`` 270 (sets Z1, Z2 and Z4, 30 Nov, each scored once untouched first),
each set written by a separate author who never saw the code or the lexicon, in styles unlike
the public vignettes, and scored before anything was changed for it. Their expectations follow
the policy as a non-clinician read it, so single cases may be arguable; the suite therefore
checks the safety properties as a whole, at the level reached when each file was added, so
that a lexicon, rule or detector change that loses ground fails here. Both detectors run, as
in the product.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from pretriage.analysis import AnalysisResult, analyze_text
from pretriage.detector import E5Embedder, load_detector
from pretriage.engine import describe
from summarizer.text.schemas import CallContext

pytestmark = pytest.mark.slow  # about a thousand callers through both detectors

DATA = Path(__file__).resolve().parents[1] / "data"
RANK = {"non_urgent": 0, "urgent": 1, "emergency": 2}
Results = list[tuple[dict[str, Any], AnalysisResult]]

# file: (most under-triaged, least emergency recall, most over-triage), as last measured
LEVELS = {
    # under-triaged at most, emergency recall at least, over-triage at most; measured on
    # 30 Nov 2026 after sets Z1 and Z2 (under, recall, over):
    "unseen_callers.jsonl": (2, 0.97, 0.05),  # 0, 1.0, 0.041
    "unseen_callers_v2.jsonl": (3, 0.97, 0.09),  # 1, 1.0, 0.073
    "unseen_callers_y.jsonl": (3, 0.96, 0.05),  # 1, 1.0, 0.033 (untouched: 5, 0.96, 0.011)
    "unseen_callers_z.jsonl": (3, 0.97, 0.11),  # 0, 1.0, 0.089 (untouched Z1: 15, 0.68,
    # 0.056; Z2: 4, 1.0, 0.111 after Z1; Z4: 2, 0.96, 0.089 after Z2)
}


@pytest.fixture(scope="module", params=sorted(LEVELS))
def results(request: pytest.FixtureRequest) -> tuple[str, Results]:
    detector = load_detector(E5Embedder())
    lines = (DATA / request.param).read_text(encoding="utf-8").splitlines()
    cases = [json.loads(line) for line in lines if line.strip()]

    def analyze(c: dict[str, Any]) -> AnalysisResult:
        context = CallContext.model_validate(c["context"])
        return analyze_text(c["id"], c["text"], context, detector=detector)

    return request.param, [(c, analyze(c)) for c in cases]


def test_an_urgent_or_emergency_caller_never_gets_a_digital_path(
    results: tuple[str, Results],
) -> None:
    _, rows = results
    unsafe = [
        c["id"]
        for c, r in rows
        if c["expect"]["urgency"] != "non_urgent" and r.triage.route == "digital_path"
    ]
    assert unsafe == []


def test_what_was_not_understood_is_never_digital_nor_called_non_urgent(
    results: tuple[str, Results],
) -> None:
    _, rows = results
    for c, r in rows:
        if r.triage.uncertain:
            assert r.triage.route != "digital_path", c["id"]
            assert r.triage.uncertain_reasons, c["id"]
            assert "kiireetön" not in describe(r.triage, "fi"), c["id"]
            assert "kiireetön" not in r.summary.note, c["id"]


def test_under_triage_stays_rare_and_always_reaches_a_nurse(
    results: tuple[str, Results],
) -> None:
    name, rows = results
    under = [
        (c["id"], r.triage.route)
        for c, r in rows
        if RANK[r.triage.urgency] < RANK[c["expect"]["urgency"]]
    ]
    assert len(under) <= LEVELS[name][0], under
    assert all(route in ("callback", "nurse_queue") for _, route in under)


def test_emergency_recall_on_unseen_callers(results: tuple[str, Results]) -> None:
    name, rows = results
    emergencies = [(c, r) for c, r in rows if c["expect"]["urgency"] == "emergency"]
    caught = sum(r.triage.urgency == "emergency" for _, r in emergencies)
    assert len(emergencies) >= 20  # enough to measure a recall on
    assert caught / len(emergencies) >= LEVELS[name][1]


def test_over_triage_stays_low(results: tuple[str, Results]) -> None:
    name, rows = results
    over = sum(RANK[r.triage.urgency] > RANK[c["expect"]["urgency"]] for c, r in rows)
    assert over / len(rows) <= LEVELS[name][2]
