"""The nurse note: copy-ready plain text for the patient record, in the station's language.

Only facts with evidence appear, and what the caller did not tell is said plainly
("Lääkitys: ei kerrottu"), so the nurse knows what to ask. Headings come from
``templates/<language>.toml``; a station may pass its own.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

from summarizer.text.schemas import Summary

TEMPLATE_DIR = Path(__file__).resolve().parent / "templates"
NOTE_LANGUAGES = ("fi", "sv", "en")
HEADING_ORDER = (
    "reason",
    "symptoms",
    "duration",
    "medications",
    "allergies",
    "conditions",
    "request",
    "pretriage",
)


@lru_cache(maxsize=8)
def template(language: str) -> dict[str, Any]:
    lang = language if language in NOTE_LANGUAGES else "fi"
    with (TEMPLATE_DIR / f"{lang}.toml").open("rb") as f:
        return tomllib.load(f)


def _number(value: float, language: str) -> str:
    text = f"{value:g}"
    return text.replace(".", ",") if language in ("fi", "sv") else text


def _duration(summary: Summary, language: str) -> str | None:
    words = template(language)["words"]
    if summary.duration_days is None:
        return None
    if summary.duration_days < 1:
        return str(words["under_a_day"])
    return f"{_number(summary.duration_days, language)} {words['days']}"


def reason_line(summary: Summary, language: str = "fi") -> str:
    """One line for the worklist: the main complaint(s), how long, how hot."""
    words = template(language)["words"]
    requests = template(language)["requests"]
    symptom_labels = [s.label for s in summary.symptoms if not s.icpc2.startswith("-")]
    if summary.request != "symptom" and summary.request != "other":
        head = str(requests[summary.request]).capitalize()
        meds = ", ".join(summary.medications[:2])
        line = f"{head}: {meds}" if meds and summary.request == "prescription_renewal" else head
        if symptom_labels:
            line += f"; {', '.join(symptom_labels[:2]).lower()}"
        return line
    if not symptom_labels:
        flags = summary.red_flags[:2]
        return ", ".join(flags).capitalize() if flags else str(words["no_reason"])
    labels = symptom_labels[:3]
    text = (
        labels[0] if len(labels) == 1 else f"{', '.join(labels[:-1])} {words['and']} {labels[-1]}"
    )
    text = text[0].upper() + text[1:].lower()
    duration = _duration(summary, language)
    if duration:
        text += f" {duration}"
    if summary.temperature_c is not None:
        text += f", {words['temperature']} {_number(summary.temperature_c, language)}"
    return text


def render_note(
    summary: Summary,
    language: str = "fi",
    *,
    pretriage: str | None = None,
    headings: Mapping[str, str] | None = None,
) -> str:
    """The note text. ``pretriage`` is the decision line once pretriage has run."""
    tpl = template(language)
    words = tpl["words"]
    head = {**tpl["headings"], **(headings or {})}
    not_told = str(words["not_told"])

    who = str(words[f"caller_{summary.for_whom}"])
    details = []
    if summary.age_months is not None and (summary.age or 0) < 2:
        details.append(f"{summary.age_months} {words['months']}")
    elif summary.age is not None:
        details.append(f"{summary.age} {words['years']}")
    if summary.sex:
        details.append(str(words[summary.sex]))
    if summary.pregnant:
        details.append(str(words["pregnant"]))
    lines = [who + (f", {' '.join(details)}" if details else "") + "."]

    lines.append(f"{head['reason']}: {summary.reason or reason_line(summary, language)}.")
    symptom_parts = [f'{s.label.lower()} ("{s.evidence.text}")' for s in summary.symptoms]
    extra = []
    if summary.temperature_c is not None:
        extra.append(f"{words['temperature']} {_number(summary.temperature_c, language)} °C")
    if summary.negated_symptoms:
        denied = ", ".join(s.label.lower() for s in summary.negated_symptoms)
        extra.append(f"{words['denies']}: {denied}")
    symptoms_text = "; ".join(p for p in [", ".join(symptom_parts), *extra] if p) or not_told
    lines.append(f"{head['symptoms']}: {symptoms_text}.")
    if summary.red_flags:
        lines.append(f"{words['red_flags']}: {', '.join(summary.red_flags)}.")
    lines.append(f"{head['duration']}: {_duration(summary, language) or not_told}.")
    lines.append(f"{head['medications']}: {', '.join(summary.medications) or not_told}.")
    lines.append(f"{head['allergies']}: {', '.join(summary.allergies) or not_told}.")
    lines.append(f"{head['conditions']}: {', '.join(summary.conditions) or not_told}.")
    lines.append(f"{head['request']}: {tpl['requests'][summary.request]}.")
    lines.append(f"{head['pretriage']}: {pretriage or words['pending']}.")
    return "\n".join(lines)
