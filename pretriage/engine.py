"""Apply the ruleset to one call: urgency, route, digital path, and the reasons in plain words.

Safety by construction: emergency signs are checked first and always win; a digital path is
only offered when a path's eligibility holds *and* nothing blocks it *and* nothing is uncertain
(low recognition confidence, an unrecognised complaint, contradictory or misheard words).
Everything else goes to a nurse.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache

from pretriage.detector import Detection
from pretriage.ruleset import Facts, Predicate, Rule, Ruleset, compile_condition, default_ruleset
from pretriage.schemas import Reason, TriageDecision
from pretriage.signs import default_signs
from summarizer.text.lexicon import default_lexicon
from summarizer.text.schemas import CallContext, Evidence, Summary

_MESSAGES = {
    "fi": {
        "no_words": "Nauhoitteessa ei ollut tunnistettavaa puhetta: hoitaja soittaa takaisin",
        "unrecognised": "Soittajan asiaa ei tunnistettu: hoitaja arvioi",
        "low_confidence": "Puheentunnistus epävarma (luotettavuus {value:.2f}): ei digipolkua",
        "contradiction": "Ristiriitaiset tiedot ({labels}): hoitaja arvioi",
        "misheard": "Sana tunnistettiin epävarmasti ({words}): ei digipolkua",
        "not_understood": "Sanoja ei ymmärretty ({words}): hoitaja arvioi",
        "unread_unavailable": "Sanoja ei voitu lukea merkityksen perusteella: hoitaja arvioi",
        "unread_too_long": "Vastaus oli liian pitkä luettavaksi kokonaan: hoitaja arvioi",
        "resembles": "Muistuttaa: {sign} — {words}",
        "no_path": "Ei sovi digipolulle: hoitaja soittaa takaisin samana päivänä",
        "path_off": "Asema ei käytä digipolkua {path}: hoitaja soittaa takaisin",
        "red_flag": "Hälyttävä tieto",
    },
    "sv": {
        "no_words": "Inspelningen hade inget tal som kändes igen: sjukskötaren ringer upp",
        "unrecognised": "Uppringarens ärende kändes inte igen: sjukskötaren bedömer",
        "low_confidence": "Osäker taligenkänning (tillförlitlighet {value:.2f}): ingen e-tjänst",
        "contradiction": "Motstridiga uppgifter ({labels}): sjukskötaren bedömer",
        "misheard": "Ordet kändes igen med osäkerhet ({words}): ingen digital tjänst",
        "not_understood": "Orden förstods inte ({words}): sjukskötaren bedömer",
        "unread_unavailable": "Orden kunde inte läsas efter betydelse: sjukskötaren bedömer",
        "unread_too_long": "Svaret var för långt för att läsas helt: sjukskötaren bedömer",
        "resembles": "Liknar: {sign} — {words}",
        "no_path": "Passar ingen digital tjänst: sjukskötaren ringer upp samma dag",
        "path_off": "Stationen använder inte den digitala tjänsten {path}: sjukskötaren ringer upp",
        "red_flag": "Alarmerande uppgift",
    },
    "en": {
        "no_words": "No recognisable speech in the recording: a nurse calls back",
        "unrecognised": "The caller's matter was not recognised: a nurse assesses",
        "low_confidence": "Speech recognition unsure (confidence {value:.2f}): no digital path",
        "contradiction": "Contradictory facts ({labels}): a nurse assesses",
        "misheard": "Words recognised with doubt ({words}): no digital path",
        "not_understood": "Words not understood ({words}): a nurse assesses",
        "unread_unavailable": "The words could not be read for meaning: a nurse assesses",
        "unread_too_long": "The answer was too long to read in full: a nurse assesses",
        "resembles": "Resembles: {sign} — {words}",
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
    detection: Detection | None = None,
) -> TriageDecision:
    """The pretriage decision. ``enabled_paths`` maps the station's paths to their SMS links
    (None: every path in the ruleset, without a link); ``detection`` is what the detector by
    meaning found in the words (None: the rules alone)."""
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
    resembles = _resemblances(detection, lang, facts)
    uncertain = _uncertainty(summary, text, asr_confidence, rs, msg)
    if resembles.emergency:
        # Words a list did not foresee, close to an emergency sign's description: the safe
        # side, marked as resembling so the nurse sees why.
        return TriageDecision(
            urgency="emergency",
            route="nurse_queue",
            reasons=resembles.emergency,
            ruleset_version=rs.version,
            advise_112=True,
            uncertain=True,
            uncertain_reasons=resembles.emergency + uncertain,
        )
    urgent = fired(rs.urgent)
    # A resemblance to a sign the rules read anyway adds nothing, and no doubt.
    read = {r.rule for r in urgent}
    signs = default_signs().signs
    resembles.urgent[:] = [
        r for r in resembles.urgent if signs[r.rule.removeprefix("resembles:")].rule not in read
    ]
    partial = [
        (p.sign, _reason(p.rule, ev, lang))
        for p in rs.possible
        for ok, ev in [p.rule.when(facts)]
        if ok
    ]
    possible = [r for _, r in partial] + resembles.possible
    confirm = next(iter([sign for sign, _ in partial] + resembles.possible_signs), None)
    if urgent or resembles.urgent or possible:
        unsure = possible + resembles.urgent + uncertain
        return TriageDecision(
            urgency="urgent",
            route="nurse_queue",
            reasons=urgent + resembles.urgent + possible,
            ruleset_version=rs.version,
            uncertain=bool(unsure),
            uncertain_reasons=unsure,
            confirm_sign=confirm,
        )
    if detection is not None and detection.unread:
        uncertain.append(
            Reason(rule=f"unread:{detection.unread}", text=msg[f"unread_{detection.unread}"])
        )
    if detection is not None and detection.health_talk:
        words = ", ".join(f'"{e.text}"' for e in detection.health_talk)
        uncertain.append(
            Reason(
                rule="not-understood",
                text=msg["not_understood"].format(words=words),
                evidence=[e.text for e in detection.health_talk],
            )
        )
    eligible = ((p, p.when(facts)) for p in rs.digital_paths.values())
    path, (_, path_evidence) = next(((p, r) for p, r in eligible if r[0]), (None, (False, [])))
    if path is None:
        reasons = uncertain or [Reason(rule="no-digital-path", text=msg["no_path"])]
        return _callback(reasons, uncertain, rs.version)

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
                if not f.negated
                and f.id in lex.findings
                and (lex.findings[f.id].red_flag or f.id in rs.sign_findings)
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
        return _callback(blocks, uncertain, rs.version)
    path_rule = Rule(id=f"path-{path.id}", policy=path.policy, text=path.text, when=path.when)
    return TriageDecision(
        urgency="non_urgent",
        route="digital_path",
        digital_path=path.id,
        sms_link=(enabled_paths or {}).get(path.id),
        reasons=[_reason(path_rule, path_evidence, lang)],
        ruleset_version=rs.version,
    )


@cache
def _needs(sign_id: str) -> Predicate:
    """What the rules must also find for a resemblance to this sign to count."""
    needs = default_signs().signs[sign_id].needs
    if needs is None:
        return lambda f: (True, [])
    return compile_condition(needs, f"signs.yaml: {sign_id}: needs", default_lexicon())


def _callback(reasons: list[Reason], uncertain: list[Reason], version: str) -> TriageDecision:
    """A nurse calls back the same day; uncertain when something was not understood."""
    return TriageDecision(
        urgency="non_urgent",
        route="callback",
        reasons=reasons,
        ruleset_version=version,
        uncertain=bool(uncertain),
        uncertain_reasons=uncertain,
    )


@dataclass(frozen=True)
class _Resembling:
    emergency: list[Reason]
    possible: list[Reason]
    possible_signs: list[str]
    urgent: list[Reason]


def _resemblances(detection: Detection | None, language: str, facts: Facts) -> _Resembling:
    """The detector's findings as reasons: strong enough to raise to an emergency or to urgent,
    or only a possible emergency sign (the case stays urgent and uncertain, and a call asks)."""
    out = _Resembling([], [], [], [])
    if detection is None:
        return out
    book = default_signs()
    th = book.thresholds
    msg = _MESSAGES[language]
    seen: set[str] = set()
    for r in detection.resemblances:
        sign = book.signs[r.sign]
        if not sign.raises or sign.id in seen or not _needs(sign.id)(facts)[0]:
            continue
        reason = Reason(
            rule=f"resembles:{sign.id}",
            text=msg["resembles"].format(
                sign=sign.text("label", language), words=f'"{r.evidence.text}"'
            ),
            evidence=[r.evidence.text],
        )
        strength = th.strength(sign.urgency, r.probability, r.explained)
        if strength is None:
            continue
        if strength == "emergency":
            out.emergency.append(reason)
        elif strength == "possible":
            out.possible.append(reason)
            out.possible_signs.append(sign.id)
        else:
            out.urgent.append(reason)
        seen.add(sign.id)
    return out


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


_DESCRIBE = {
    "fi": {
        "emergency": "hätätilanne (112-ohje annettu)",
        "urgent": "kiireellinen",
        "non_urgent": "kiireetön",
        "uncertain": "epäselvä – hoitaja arvioi",
        "nurse_queue": "hoitajajonoon",
        "callback": "takaisinsoitto samana päivänä",
        "callback_at": "takaisinsoitto {window}",
        "digital_path": "digipolku",
        "version": "sääntökanta",
    },
    "sv": {
        "emergency": "nödsituation (råd om 112 givet)",
        "urgent": "brådskande",
        "non_urgent": "icke brådskande",
        "uncertain": "oklart – sjukskötaren bedömer",
        "nurse_queue": "till sjukskötarkön",
        "callback": "återuppringning samma dag",
        "callback_at": "återuppringning {window}",
        "digital_path": "digital tjänst",
        "version": "regelverk",
    },
    "en": {
        "emergency": "emergency (112 advice given)",
        "urgent": "urgent",
        "non_urgent": "non-urgent",
        "uncertain": "unclear – a nurse assesses",
        "nurse_queue": "to the nurse queue",
        "callback": "same-day callback",
        "callback_at": "callback {window}",
        "digital_path": "digital path",
        "version": "ruleset",
    },
}


def describe(decision: TriageDecision, language: str = "fi", *, window: str | None = None) -> str:
    """One line for the nurse note: urgency (never "non-urgent" for what pretriage did not
    understand), route, path, ruleset version. ``window``: when the promised callback is
    known ("ma 1.12. 8.00–9.00"), the line says it instead of "the same day"."""
    names = _DESCRIBE[language if language in _DESCRIBE else "fi"]
    urgency: str = decision.urgency
    if decision.uncertain and urgency == "non_urgent":
        urgency = "uncertain"
    route = names[decision.route]
    if decision.route == "callback" and window:
        route = names["callback_at"].format(window=window)
    if decision.digital_path:
        route += f" {decision.digital_path}"
    return f"{names[urgency]}, {route} ({names['version']} {decision.ruleset_version})"
