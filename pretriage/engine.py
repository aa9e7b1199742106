"""Apply the ruleset to one call: urgency, route, digital path, and the reasons in plain words.

Safety by construction: emergency signs are checked first and always win; a digital path is
only offered when a path's eligibility holds *and* nothing blocks it *and* nothing is uncertain
(low recognition confidence, an unrecognised complaint, contradictory or misheard words).
Everything else goes to a nurse.
"""

from __future__ import annotations

from collections.abc import Mapping

from pretriage.ruleset import Facts, Rule, Ruleset, default_ruleset
from pretriage.schemas import Reason, TriageDecision
from summarizer.text.lexicon import default_lexicon
from summarizer.text.schemas import CallContext, Evidence, Summary

_MESSAGES = {
    "fi": {
        "no_words": "Nauhoitteessa ei ollut tunnistettavaa puhetta: hoitaja soittaa takaisin",
        "unrecognised": "Soittajan asiaa ei tunnistettu: hoitaja arvioi",
        "low_confidence": "Puheentunnistus epävarma (luotettavuus {value:.2f}): ei digipolkua",
        "contradiction": "Ristiriitaiset tiedot ({labels}): hoitaja arvioi",
        "misheard": "Sana tunnistettiin epävarmasti ({words}): ei digipolkua",
        "no_path": "Ei sovi digipolulle: hoitaja soittaa takaisin samana päivänä",
        "path_off": "Asema ei käytä digipolkua {path}: hoitaja soittaa takaisin",
        "red_flag": "Hälyttävä tieto",
    },
    "en": {
        "no_words": "No recognisable speech in the recording: a nurse calls back",
        "unrecognised": "The caller's matter was not recognised: a nurse assesses",
        "low_confidence": "Speech recognition unsure (confidence {value:.2f}): no digital path",
        "contradiction": "Contradictory facts ({labels}): a nurse assesses",
        "misheard": "Words recognised with doubt ({words}): no digital path",
        "no_path": "No digital path fits: a nurse calls back the same day",
        "path_off": "The station does not use the digital path {path}: a nurse calls back",
        "red_flag": "Red flag",
    },
}


def _quote(evidence: list[Evidence]) -> list[str]:
    """The caller's words, in the order said, each span once (nested spans folded)."""
    spans: list[Evidence] = []
    for e in sorted(evidence, key=lambda e: (e.start, -e.end)):
        if spans and e.start >= spans[-1].start and e.end <= spans[-1].end:
            continue
        spans.append(e)
    out: list[str] = []
    for e in spans:
        if e.text not in out:
            out.append(e.text)
    return out


def _reason(rule: Rule, evidence: list[Evidence], language: str) -> Reason:
    words = _quote(evidence)
    label = rule.label(language)
    text = f"{label}: " + ", ".join(f'"{w}"' for w in words) if words else label
    return Reason(rule=rule.id, text=text, evidence=words)


def decide(
    summary: Summary,
    text: str,
    context: CallContext | None = None,
    *,
    asr_confidence: float | None = None,
    ruleset: Ruleset | None = None,
    enabled_paths: Mapping[str, str | None] | None = None,
    language: str = "fi",
) -> TriageDecision:
    """The pretriage decision. ``enabled_paths`` maps the station's paths to their SMS links
    (None: every path in the ruleset, without a link)."""
    rs = ruleset or default_ruleset()
    context = context or CallContext()
    lang = language if language in _MESSAGES else "fi"
    msg = _MESSAGES[lang]
    facts = Facts.of(summary, context)

    def fired(rules: tuple[Rule, ...]) -> list[Reason]:
        out = []
        for rule in rules:
            ok, evidence = rule.when(facts)
            if ok:
                out.append(_reason(rule, evidence, lang))
        return out

    emergency = fired(rs.emergency)
    if emergency:
        return TriageDecision(
            urgency="emergency",
            route="nurse_queue",
            reasons=emergency,
            ruleset_version=rs.version,
            advise_112=True,
        )
    urgent = fired(rs.urgent)
    if urgent:
        return TriageDecision(
            urgency="urgent", route="nurse_queue", reasons=urgent, ruleset_version=rs.version
        )

    uncertain = _uncertainty(summary, text, asr_confidence, rs, msg)
    eligible = ((p, p.when(facts)) for p in rs.digital_paths.values())
    path, (_, path_evidence) = next(((p, r) for p, r in eligible if r[0]), (None, (False, [])))
    if path is None:
        reasons = uncertain or [Reason(rule="no-digital-path", text=msg["no_path"])]
        return TriageDecision(
            urgency="non_urgent", route="callback", reasons=reasons, ruleset_version=rs.version
        )

    blocks: list[Reason] = []
    if enabled_paths is not None and path.id not in enabled_paths:
        blocks.append(Reason(rule="station-path-off", text=msg["path_off"].format(path=path.id)))
    blocks += fired(path.excluded)
    lex = default_lexicon()
    for blocker in rs.blocking:
        if blocker.applies_unless_guardian_may_use and path.guardian_may_use:
            continue
        if blocker.mixed_matter:
            extra = [s for s in summary.symptoms if s.icpc2 not in path.codes]
            flags = [
                f
                for f in summary.findings
                if not f.negated and f.id in lex.findings and lex.findings[f.id].red_flag
            ]
            if extra or flags:
                evidence = [s.evidence for s in extra] + [f.evidence for f in flags]
                blocks.append(_reason(blocker.rule, evidence, lang))
            continue
        ok, evidence = blocker.rule.when(facts)
        if ok:
            blocks.append(_reason(blocker.rule, evidence, lang))
    blocks += uncertain
    if blocks:
        return TriageDecision(
            urgency="non_urgent", route="callback", reasons=blocks, ruleset_version=rs.version
        )
    path_rule = Rule(id=f"path-{path.id}", policy=path.policy, text=path.text, when=path.when)
    return TriageDecision(
        urgency="non_urgent",
        route="digital_path",
        digital_path=path.id,
        sms_link=(enabled_paths or {}).get(path.id),
        reasons=[_reason(path_rule, path_evidence, lang)],
        ruleset_version=rs.version,
    )


def _uncertainty(
    summary: Summary,
    text: str,
    asr_confidence: float | None,
    rs: Ruleset,
    msg: Mapping[str, str],
) -> list[Reason]:
    """Why the words cannot be trusted for a digital path (empty when they can)."""
    out: list[Reason] = []
    if not text.strip():
        return [Reason(rule="no-speech", text=msg["no_words"])]
    if summary.request == "other" and not summary.symptoms:
        out.append(Reason(rule="unrecognised", text=msg["unrecognised"]))
    if asr_confidence is not None and asr_confidence < rs.min_asr_confidence:
        out.append(
            Reason(
                rule="low-asr-confidence", text=msg["low_confidence"].format(value=asr_confidence)
            )
        )
    affirmed = {s.icpc2 for s in summary.symptoms}
    both = [s for s in summary.negated_symptoms if s.icpc2 in affirmed]
    if both:
        labels = ", ".join(s.label.lower() for s in both)
        out.append(
            Reason(
                rule="contradiction",
                text=msg["contradiction"].format(labels=labels),
                evidence=[s.evidence.text for s in both],
            )
        )
    misheard = [s for s in summary.symptoms if s.fuzzy]
    if misheard:
        words = ", ".join(f'"{s.evidence.text}"' for s in misheard)
        out.append(
            Reason(
                rule="misheard",
                text=msg["misheard"].format(words=words),
                evidence=[s.evidence.text for s in misheard],
            )
        )
    return out


def describe(decision: TriageDecision, language: str = "fi") -> str:
    """One line for the nurse note: urgency, route, path, ruleset version."""
    names = {
        "fi": {
            "emergency": "hätätilanne (112-ohje annettu)",
            "urgent": "kiireellinen",
            "non_urgent": "kiireetön",
            "nurse_queue": "hoitajajonoon",
            "callback": "takaisinsoitto samana päivänä",
            "digital_path": "digipolku",
            "version": "sääntökanta",
        },
        "sv": {
            "emergency": "nödsituation (råd om 112 givet)",
            "urgent": "brådskande",
            "non_urgent": "icke brådskande",
            "nurse_queue": "till sjukskötarkön",
            "callback": "återuppringning samma dag",
            "digital_path": "digital tjänst",
            "version": "regelverk",
        },
        "en": {
            "emergency": "emergency (112 advice given)",
            "urgent": "urgent",
            "non_urgent": "non-urgent",
            "nurse_queue": "to the nurse queue",
            "callback": "same-day callback",
            "digital_path": "digital path",
            "version": "ruleset",
        },
    }[language if language in ("fi", "sv", "en") else "fi"]
    route = names[decision.route]
    if decision.digital_path:
        route += f" {decision.digital_path}"
    return f"{names[decision.urgency]}, {route} ({names['version']} {decision.ruleset_version})"
