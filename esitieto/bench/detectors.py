"""``esitieto eval-detectors``: the rules alone, the detector by meaning alone, and both.

Each case of a JSON-lines file with ``text``, ``context`` and ``expect`` (the format of
``tests/data/unseen_callers*.jsonl`` and the public vignettes) is read three ways:

* **rules**: the ruleset on the lexicon's facts (``decide`` with no detection);
* **detector**: the resemblances alone, at the thresholds of ``signs.yaml``: a strong
  resemblance to an emergency sign is an emergency, a possible one or a strong one to an urgent
  sign is urgent, anything else non-urgent (it never chooses a digital path: callback);
* **both**: the product, ``decide`` with the detection fused in.

Printed figures use the evaluation harness's definitions: emergency recall (expected
emergencies decided emergency), urgent safe (expected urgent decided urgent or emergency),
under- and over-triage, route accuracy; and two safety counts: urgent or emergency callers on
a digital path, and uncertain cases on a digital path.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pretriage.detector import Detection, E5Embedder, SignDetector, load_detector
from pretriage.engine import decide
from pretriage.signs import SignBook, default_signs
from summarizer.text.extract import summarize
from summarizer.text.schemas import CallContext

RANK = {"non_urgent": 0, "urgent": 1, "emergency": 2}


@dataclass(frozen=True)
class Verdict:
    urgency: str
    route: str
    digital_path: str | None = None
    uncertain: bool = False


def detector_alone(detection: Detection, book: SignBook) -> Verdict:
    """What the resemblances would decide with no rules at all."""
    urgency = "non_urgent"
    for r in detection.resemblances:
        sign = book.signs[r.sign]
        if not sign.raises:
            continue
        strength = book.thresholds.strength(sign.urgency, r.probability, r.explained)
        if strength == "emergency":
            return Verdict("emergency", "nurse_queue", uncertain=True)
        if strength is not None:
            urgency = "urgent"
    route = "nurse_queue" if urgency != "non_urgent" else "callback"
    return Verdict(urgency, route, uncertain=bool(detection.health_talk))


def evaluate(path: Path, detector: SignDetector | None = None) -> dict[str, dict[str, Any]]:
    """Figures for the three readings of every case in ``path``."""
    detector = detector or load_detector(E5Embedder())
    book = default_signs()
    verdicts: dict[str, list[tuple[dict[str, Any], Verdict]]] = {
        "rules": [],
        "detector": [],
        "both": [],
    }
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        case = json.loads(line)
        context = CallContext.model_validate(case.get("context") or {})
        text = case["text"]
        summary = summarize(text, context)
        detection = detector.detect(text, summary)
        for name, decision in (
            ("rules", decide(summary, text, context)),
            ("both", decide(summary, text, context, detection=detection)),
        ):
            verdicts[name].append(
                (
                    case,
                    Verdict(
                        decision.urgency,
                        decision.route,
                        decision.digital_path,
                        decision.uncertain,
                    ),
                )
            )
        verdicts["detector"].append((case, detector_alone(detection, book)))
    return {name: figures(rows) for name, rows in verdicts.items()}


def figures(rows: list[tuple[dict[str, Any], Verdict]]) -> dict[str, Any]:
    emergencies = [v for c, v in rows if c["expect"]["urgency"] == "emergency"]
    urgent = [v for c, v in rows if c["expect"]["urgency"] == "urgent"]
    under = sum(RANK[v.urgency] < RANK[c["expect"]["urgency"]] for c, v in rows)
    over = sum(RANK[v.urgency] > RANK[c["expect"]["urgency"]] for c, v in rows)
    route_ok = sum(
        v.route == c["expect"]["route"]
        and (v.route != "digital_path" or v.digital_path == c["expect"]["digital_path"])
        for c, v in rows
    )
    return {
        "cases": len(rows),
        "emergency_recall": _share(sum(v.urgency == "emergency" for v in emergencies), emergencies),
        "urgent_safe": _share(sum(v.urgency != "non_urgent" for v in urgent), urgent),
        "under_triage": under,
        "over_triage_rate": _share(over, rows),
        "route_acc": _share(route_ok, rows),
        "urgent_on_digital": sum(
            c["expect"]["urgency"] != "non_urgent" and v.route == "digital_path" for c, v in rows
        ),
        "uncertain": sum(v.uncertain for _, v in rows),
        "uncertain_on_digital": sum(v.uncertain and v.route == "digital_path" for _, v in rows),
    }


def _share(n: int, of: list[Any]) -> float | None:
    return round(n / len(of), 3) if of else None


def table(result: dict[str, dict[str, Any]]) -> str:
    cols = ("emergency_recall", "urgent_safe", "under_triage", "over_triage_rate", "route_acc",
            "urgent_on_digital", "uncertain")  # fmt: skip
    lines = ["| reading | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
    for name, f in result.items():
        lines.append(f"| {name} | " + " | ".join(str(f[c]) for c in cols) + " |")
    return "\n".join(lines)
