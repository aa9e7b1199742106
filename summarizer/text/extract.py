"""Transcript → the nurse-facing summary (``shared/spec/summary-schema.md``), deterministically.

Every fact carries the words it came from; :func:`check_faithful` drops any fact whose evidence
is not literally in the transcript, so nothing reaches the nurse that the caller did not say.
The vocabulary is data (``summarizer/text/lexicon/*.yaml``); this module only applies it.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass

from summarizer.text.lexicon import Lexicon, default_lexicon
from summarizer.text.matching import Hit, TermSet, TextIndex
from summarizer.text.note import reason_line, render_note
from summarizer.text.numbers import DECIMAL_JOINERS, HALF_WORDS, digits_value, word_number
from summarizer.text.schemas import (
    CallContext,
    Evidence,
    Fact,
    Finding,
    ForWhom,
    Request,
    Sex,
    Summary,
    Symptom,
)
from summarizer.text.tokens import Text, analyse, lemma, normalise

TEMPERATURE_RANGE = (34.0, 43.5)
_AGE_TOKEN = re.compile(r"^(\d+|[a-zåäö]+?)-?(vuotia\w*|vuotias|vuotiaa\w*|åring\w*|årig\w*)$")
_REQUEST_BY_CODE: dict[str, Request] = {
    "-50": "prescription_renewal",
    "-60": "lab_results",
    "-62": "appointment",
}
_LANGUAGE_MARKERS = {
    "fi": {"on", "ja", "ei", "minulla", "mulla", "ollut", "että", "kun", "nyt", "se", "olen"},
    "sv": {"jag", "har", "och", "det", "inte", "är", "en", "att", "i", "sedan", "ont", "med"},
    "en": {"i", "have", "and", "the", "my", "is", "a", "to", "it", "since", "of", "with"},
}


@dataclass(frozen=True, slots=True)
class _Match:
    key: str
    hit: Hit
    negated: bool


def detect_language(raw: str) -> str:
    """fi, sv or en by function words; Finnish when unsure (the stations' default)."""
    words = re.findall(r"\w+", raw.lower())
    scores = {lang: sum(w in marks for w in words) for lang, marks in _LANGUAGE_MARKERS.items()}
    best = max(scores, key=lambda k: scores[k])
    return best if scores[best] > scores["fi"] else "fi"


def summarize(
    text: str,
    context: CallContext | None = None,
    *,
    note_language: str = "fi",
    lexicon: Lexicon | None = None,
    fuzzy: bool = True,
) -> Summary:
    """Summarise one caller's words. ``note_language`` is the station's documentation language."""
    lex = lexicon or default_lexicon()
    context = context or CallContext()
    raw = normalise(text)
    language = context.language or detect_language(raw)
    t = analyse(raw, language if language in ("fi", "sv", "en") else detect_language(raw))
    idx = lex.index.index(t, fuzzy=fuzzy)
    negated_tokens = _negation_scope(t, lex)

    def matches(key: str, terms: TermSet) -> list[_Match]:
        return [_Match(key, h, _is_negated(h, negated_tokens, lex)) for h in terms.hits(idx)]

    def ev(hit: Hit) -> Evidence:
        start, end = t.span(hit.first, hit.last)
        return Evidence(text=raw[start:end], start=start, end=end)

    # Findings first: modifiers attach to symptoms, pregnancy shields the word "lasta".
    finding_matches = [m for f in lex.findings.values() for m in matches(f.id, f.terms)]
    findings = _dedupe_findings(finding_matches)
    present = {m.key for m in findings if not m.negated}

    symptom_matches = [m for e in lex.symptoms.values() for m in matches(e.code, e.terms)]
    symptom_matches = _suppress(symptom_matches, lex)
    for entry in lex.symptoms.values():
        if entry.also_when and all(f in present for f in entry.also_when):
            first = next(m for m in findings if m.key == entry.also_when[0] and not m.negated)
            symptom_matches.append(_Match(entry.code, first.hit, False))

    # A term that itself says "not" ("en oo nukkunut") describes the symptom: a shorter term
    # inside the same words that reads as denied does not deny it.
    said = [m for m in symptom_matches if not m.negated]
    symptom_matches = [
        m
        for m in symptom_matches
        if not m.negated
        or not any(
            a.key == m.key and a.hit.first <= m.hit.last and m.hit.first <= a.hit.last for a in said
        )
    ]
    affirmed: dict[str, _Match] = {}
    denied: dict[str, _Match] = {}
    for m in sorted(symptom_matches, key=lambda m: m.hit.first):
        (denied if m.negated else affirmed).setdefault(m.key, m)
    # A code said both ways stays in both lists: pretriage treats that as a contradiction.

    modifiers = _attach_modifiers(t, findings, affirmed, lex)
    lang_label = note_language if note_language in ("fi", "sv", "en") else "fi"

    def symptom(m: _Match, negated: bool) -> Symptom:
        entry = lex.symptoms[m.key]
        return Symptom(
            icpc2=m.key,
            label=entry.label.get(lang_label, entry.label["fi"]),
            negated=negated,
            evidence=ev(m.hit),
            modifiers=sorted(modifiers.get(m.key, {})),
            modifier_evidence={k: ev(h) for k, h in modifiers.get(m.key, {}).items()},
            fuzzy=m.hit.fuzzy,
        )

    symptoms = [symptom(m, False) for m in sorted(affirmed.values(), key=lambda m: m.hit.first)]
    negated_symptoms = [
        symptom(m, True) for m in sorted(denied.values(), key=lambda m: m.hit.first)
    ]
    finding_models = [
        Finding(
            id=m.key,
            label=lex.findings[m.key].label.get(lang_label, lex.findings[m.key].label["fi"]),
            negated=m.negated,
            evidence=ev(m.hit),
        )
        for m in findings
        if lex.findings[m.key].kind == "finding"
    ]
    evidence: dict[str, Evidence] = {}

    request, request_ev = _request(affirmed, present, findings, symptoms)
    if request_ev is not None:
        evidence["request"] = ev(request_ev)

    age, age_months, age_hit = _age(t, idx, lex)
    if age_hit is not None:
        evidence["age"] = ev(age_hit)
    said_sex, sex_hit = _self_sex(idx, lex)
    if sex_hit is not None and context.sex is None:
        evidence["sex"] = ev(sex_hit)
    for_whom, whom_hit = _for_whom(t, idx, lex, finding_matches, age, not_at=sex_hit)
    if context.for_whom is not None:
        for_whom = context.for_whom
    elif whom_hit is not None:
        evidence["for_whom"] = ev(whom_hit)
    if context.age is not None:
        age, age_months = context.age, None
    if age is not None and age >= 18 and for_whom == "child" and context.for_whom is None:
        for_whom = "other"

    duration, duration_hit = _duration(t, idx, lex, not_at=age_hit)
    if duration_hit is not None:
        evidence["duration_days"] = ev(duration_hit)
    temperature, temp_hit = _temperature(t, idx, lex)
    if temp_hit is not None:
        evidence["temperature_c"] = ev(temp_hit)

    pregnant: bool | None = None
    preg = next((m for m in findings if m.key == "pregnancy"), None)
    if preg is not None:
        pregnant = not preg.negated
        evidence["pregnant"] = ev(preg.hit)

    medication_facts = _medications(t, raw, lex, negated_tokens)
    condition_facts = [
        Fact(
            name=lex.conditions[m.key].label.get(lang_label, lex.conditions[m.key].label["fi"]),
            categories=list(lex.conditions[m.key].categories),
            evidence=ev(m.hit),
        )
        for m in _dedupe_findings(
            [m for c in lex.conditions.values() for m in matches(c.id, c.terms)]
        )
        if not m.negated
    ]
    allergy_facts = _allergies(t, raw, idx, lex, negated_tokens)
    # "allergisk mot penicillin": the allergen is not a medicine the caller takes.
    allergens = [(a.evidence.start, a.evidence.end) for a in allergy_facts]
    medication_facts = [
        f
        for f in medication_facts
        if not any(start <= f.evidence.start < end for start, end in allergens)
    ]

    summary = Summary(
        language=t.language,
        for_whom=for_whom,
        age=age,
        sex=context.sex or said_sex,
        request=request,
        symptoms=symptoms,
        negated_symptoms=negated_symptoms,
        duration_days=duration,
        temperature_c=temperature,
        medications=_unique(f.name for f in medication_facts),
        allergies=_unique(f.name for f in allergy_facts),
        conditions=_unique(f.name for f in condition_facts),
        pregnant=pregnant,
        red_flags=_unique(
            f.label for f in finding_models if not f.negated and lex.findings[f.id].red_flag
        ),
        age_months=age_months,
        findings=finding_models,
        medication_facts=medication_facts,
        condition_facts=condition_facts,
        allergy_facts=allergy_facts,
        evidence=evidence,
    )
    summary = check_faithful(summary, raw)
    summary.reason = reason_line(summary, lang_label)
    summary.note = render_note(summary, lang_label)
    return summary


def check_faithful(summary: Summary, transcript: str) -> Summary:
    """Drop every fact whose evidence is not exactly the transcript's words at its offsets."""

    def ok(e: Evidence) -> bool:
        return 0 <= e.start < e.end <= len(transcript) and transcript[e.start : e.end] == e.text

    data = summary.model_copy(deep=True)
    data.symptoms = [s for s in data.symptoms if ok(s.evidence)]
    for s in data.symptoms:
        s.modifier_evidence = {k: e for k, e in s.modifier_evidence.items() if ok(e)}
        s.modifiers = [m for m in s.modifiers if m in s.modifier_evidence]
    data.negated_symptoms = [s for s in data.negated_symptoms if ok(s.evidence)]
    data.findings = [f for f in data.findings if ok(f.evidence)]
    data.medication_facts = [f for f in data.medication_facts if ok(f.evidence)]
    data.condition_facts = [f for f in data.condition_facts if ok(f.evidence)]
    data.allergy_facts = [f for f in data.allergy_facts if ok(f.evidence)]
    data.medications = _unique(f.name for f in data.medication_facts)
    data.conditions = _unique(f.name for f in data.condition_facts)
    data.allergies = _unique(f.name for f in data.allergy_facts)
    bad = {k for k, e in data.evidence.items() if not ok(e)}
    for key in bad:
        del data.evidence[key]
        if key in ("duration_days", "temperature_c", "pregnant"):
            setattr(data, key, None)
    return data


# -- negation -------------------------------------------------------------------------------


def _negation_scope(t: Text, lex: Lexicon) -> set[int]:
    """Token positions a negation word denies.

    Forward to the end of the clause ("ei kuumetta eikä yskää", "no chest pain"); backward to
    the start of the clause when only "to be" words follow the negation ("hengenahdistusta ei
    ole", "kuumetta ei ole ollut").
    """
    denied: set[int] = set()
    tokens = t.tokens
    negators = lex.negators_for(t.language)
    for tok in tokens:
        if tok.lower not in negators:
            continue
        if tok.lower == "et" and not _negating_et(tokens, tok.index, lex):
            continue
        clause = [x for x in tokens if x.clause == tok.clause]
        after = [x for x in clause if x.index > tok.index]
        for k, x in enumerate(after):  # "... sanoo että/et huulet on siniset": a new clause
            spoken_that = x.lower == "et" and not _negating_et(tokens, x.index, lex)
            if x.lower in lex.scope_clause_starters or spoken_that:
                after = after[:k]
                break
        for k in range(len(after) - 1):
            if after[k].lower in lex.scope_coordinators and (
                after[k + 1].lower in lex.scope_subjects
                or any(x.lower in lex.scope_verbs for x in after[k + 1 : k + 5])
            ):
                after = after[:k]
                break
        # Only "to be" words up to the next negation or "and": the negation looks back
        # ("lämpöä ei oo ollu ollenkaan eikä hengästytä").
        head = []
        for x in after:
            if x.lower in negators or x.lower in lex.scope_coordinators:
                break
            head.append(x)
        if all(x.lower in lex.copulas for x in head):
            denied.update(x.index for x in clause if x.index < tok.index)
        else:
            denied.update(x.index for x in after)
    return denied


def _negating_et(tokens: tuple, i: int, lex: Lexicon) -> bool:
    """Whether Finnish "et" at ``i`` is "you don't" rather than spoken "että" (that)."""
    return i + 1 < len(tokens) and tokens[i + 1].lower in lex.connegatives


def _is_negated(hit: Hit, denied: set[int], lex: Lexicon) -> bool:
    words_say_not = any(w in lex.negators for phrase in hit.phrases for w in phrase.lower().split())
    if words_say_not:
        return False
    return any(i in denied for i in range(hit.first, hit.last + 1))


# -- symptoms and findings --------------------------------------------------------------------


def _suppress(found: list[_Match], lex: Lexicon) -> list[_Match]:
    out = []
    for m in found:
        hidden = any(
            other.key != m.key
            and m.key in lex.symptoms[other.key].suppresses
            and other.hit.first <= m.hit.last
            and m.hit.first <= other.hit.last
            for other in found
        )
        if not hidden:
            out.append(m)
    return out


def _dedupe_findings(found: list[_Match]) -> list[_Match]:
    """One finding per id: the first affirmed mention, else the first denied one."""
    by_key: dict[str, _Match] = {}
    for m in sorted(found, key=lambda m: m.hit.first):
        cur = by_key.get(m.key)
        if cur is None or (cur.negated and not m.negated):
            by_key[m.key] = m
    return sorted(by_key.values(), key=lambda m: m.hit.first)


def _attach_modifiers(
    t: Text, findings: list[_Match], affirmed: dict[str, _Match], lex: Lexicon
) -> dict[str, dict[str, Hit]]:
    """Give each modifier ("kova", "säteilee") to the nearest symptom, same clause first."""
    out: dict[str, dict[str, Hit]] = {}
    if not affirmed:
        return out
    for m in findings:
        if m.negated or lex.findings[m.key].kind != "modifier":
            continue
        tok = t.tokens[m.hit.first]

        def distance(s: _Match, tok_index: int = tok.index) -> int:
            return min(abs(s.hit.first - tok_index), abs(s.hit.last - tok_index))

        for scope in ("clause", "sentence", "any"):
            candidates = [
                s
                for s in affirmed.values()
                if scope == "any" or getattr(t.tokens[s.hit.first], scope) == getattr(tok, scope)
            ]
            if candidates:
                best = min(candidates, key=distance)
                out.setdefault(best.key, {}).setdefault(m.key, m.hit)
                break
    return out


def _request(
    affirmed: dict[str, _Match],
    present: set[str],
    findings: list[_Match],
    symptoms: list[Symptom],
) -> tuple[Request, Hit | None]:
    process = sorted(
        (m for code, m in affirmed.items() if code in _REQUEST_BY_CODE), key=lambda m: m.hit.first
    )
    if "certificate_request" in present:
        cert = next(m for m in findings if m.key == "certificate_request" and not m.negated)
        return "certificate", cert.hit
    if process:
        return _REQUEST_BY_CODE[process[0].key], process[0].hit
    if symptoms:
        first = min((m for m in affirmed.values()), key=lambda m: m.hit.first)
        return "symptom", first.hit
    if any(f.key not in ("pregnancy",) and not f.negated for f in findings):
        return "symptom", None
    return "other", None


# -- who, how old ------------------------------------------------------------------------------


def _age(t: Text, idx: TextIndex, lex: Lexicon) -> tuple[int | None, int | None, Hit | None]:
    """Age said in words: "45-vuotias", "kolmevuotiaalla", "80 år", "kahden kuukauden ikäinen"."""
    tokens = t.tokens
    for tok in tokens:
        m = _AGE_TOKEN.match(tok.lower)
        if m:
            said = word_number(m.group(1))
            if said is not None and said < 120:
                return said, None, Hit(tok.index, tok.index, False, ())
    for unit_terms, factor in (
        (lex.age_year_words, "years"),
        (lex.age_month_words, "months"),
        (lex.age_week_words, "weeks"),
    ):
        for hit in unit_terms.hits(idx):
            if hit.first == 0:
                continue
            n_val = _number_at(tokens, hit.first - 1)
            if n_val is None:
                continue
            n, first = n_val
            if factor == "years" and n < 120:
                return int(n), None, Hit(first, hit.last, False, ())
            if factor == "months" and n < 36:
                return int(n // 12), int(n), Hit(first, hit.last, False, ())
            if factor == "weeks" and n < 60:
                return 0, int(n * 7 // 30), Hit(first, hit.last, False, ())
    baby = _baby_age(tokens, idx, lex)
    if baby is not None:
        return baby
    return _stated_age(tokens, idx, lex) or (None, None, None)


def _baby_age(
    tokens: tuple, idx: TextIndex, lex: Lexicon
) -> tuple[int | None, int | None, Hit | None] | None:
    """ "N weeks/months" beside a baby word is the baby's age ("viiden kuukauden vauvalla",
    "bebisen är sex veckor"), not how long the complaint has lasted."""
    babies = [h.first for h in lex.age_baby_words.hits(idx)]
    if not babies:
        return None
    for i, tok in enumerate(tokens):
        unit = lex.unit_of(tok.lower)
        if unit is None or unit.days not in (7, 30) or i == 0:
            continue
        said = _number_at(tokens, i - 1)
        if said is None:
            continue
        n, first = said
        if not any(first - 3 <= b <= i + 2 for b in babies):
            continue
        months = int(n) if unit.days == 30 else int(n * 7 // 30)
        if months < 36:
            return months // 12, months, Hit(first, i, False, ())
    return None


def _stated_age(
    tokens: tuple, idx: TextIndex, lex: Lexicon
) -> tuple[int | None, int | None, Hit | None] | None:
    """A bare number right after "olen / jag är / I'm" is the caller's age ("oon kuuskytviis"),
    unless a unit or a temperature word follows it."""
    for intro in lex.self_intro.hits(idx):
        for last in (intro.last + 2, intro.last + 1):
            if last >= len(tokens):
                continue
            said = _number_at(tokens, last)
            if said is None or said[1] != intro.last + 1:
                continue
            n, first = said
            after = tokens[last + 1].lower if last + 1 < len(tokens) else ""
            if n != int(n) or not 1 <= n < 110 or lex.unit_of(after) is not None:
                break
            if after in lex.not_age_after:
                break
            return int(n), None, Hit(first, last, False, ())
    return None


def _number_at(tokens: tuple, i: int) -> tuple[float, int] | None:
    """The number ending at token ``i`` (digits, words, "thirty eight"), with its first token."""
    tok = tokens[i]
    v = digits_value(tok.lower)
    if v is None:
        n = word_number(tok.lower.replace("-", ""))
        v = float(n) if n is not None else None
    if v is None:
        return None
    first = i
    if i > 0 and 0 < v < 10:
        prev = word_number(tokens[i - 1].lower)
        if prev is not None and prev % 10 == 0 and 20 <= prev < 100:
            return float(prev) + v, i - 1
    return v, first


def _self_sex(idx: TextIndex, lex: Lexicon) -> tuple[Sex | None, Hit | None]:
    """ "Olen 34-vuotias nainen": a sex word at most five words after a self-introduction."""
    intros = lex.self_intro.hits(idx)
    for sex, terms in lex.sex_words.items():
        for hit in terms.hits(idx):
            if hit.fuzzy:
                continue
            intro = next((i for i in intros if 0 < hit.first - i.last <= 5), None)
            if intro is not None:
                return ("female" if sex == "female" else "male"), Hit(
                    intro.first, hit.last, False, ()
                )
    return None, None


def _for_whom(
    t: Text,
    idx: TextIndex,
    lex: Lexicon,
    findings: list[_Match],
    age: int | None,
    *,
    not_at: Hit | None = None,
) -> tuple[ForWhom, Hit | None]:
    shielded: set[int] = set(range(not_at.first, not_at.last + 1)) if not_at else set()
    for m in findings:
        if m.key in ("pregnancy", "fetal_movements_reduced"):
            shielded.update(range(m.hit.first, m.hit.last + 1))
    if any(m.key == "pregnancy" and not m.negated for m in findings):
        for hit in lex.people["unborn"].hits(idx):
            shielded.update(range(hit.first, hit.last + 1))
    for whom in ("child", "other"):
        for hit in lex.people[whom].hits(idx):
            if any(i in shielded for i in range(hit.first, hit.last + 1)):
                continue
            if whom == "other" and age is not None and age < 18:
                return "child", hit  # "she is 4", "my 4-year-old daughter": anyone under 18
            return ("child" if whom == "child" else "other"), hit
    if age is not None and age < 18:
        return "child", None
    return "self", None


# -- time and temperature -----------------------------------------------------------------------


def _duration(
    t: Text, idx: TextIndex, lex: Lexicon, not_at: Hit | None = None
) -> tuple[float | None, Hit | None]:
    """How long the complaint has lasted, in days: the first time expression said that is not
    the patient's age (``not_at``: "sju år" is an age, not seven years of vomiting)."""
    tokens = t.tokens
    candidates: list[tuple[int, float, Hit]] = []
    for i, tok in enumerate(tokens):
        unit = lex.unit_of(tok.lower)
        if unit is None or (not_at is not None and not_at.first <= i <= not_at.last):
            continue
        before = tokens[i - 1].lower if i > 0 else ""
        after = tokens[i + 1].lower if i + 1 < len(tokens) else ""
        if after in lex.not_duration_after:
            continue
        count: float | None = None
        first = i
        if i > 0:
            num = _number_at(tokens, i - 1)
            if num is not None:
                count, first = num
            elif (said := _words_before(tokens, i, lex.quantity_words)) is not None:
                q = lex.quantity_words[said[0]]
                if q is None:
                    continue  # "muutaman päivän", "a few days": a few, not a number
                count, first = q, said[1]
        if count is None:
            bare = _words_before(tokens, i + 1, lex.bare_unit_forms)  # "viikon", "a week"
            if bare is None or before in lex.not_duration_before:
                continue
            count, first = 1.0, bare[1]
        lead = tokens[first - 1].lower if first > 0 else ""
        if lead in lex.not_duration_before:
            continue
        days = count * unit.days
        candidates.append(
            (first, float(int(days)) if unit.days < 1 else days, Hit(first, i, False, ()))
        )
    for days, terms in lex.relative_times:
        for hit in terms.hits(idx):
            candidates.append((hit.first, days, hit))
    if not candidates:
        return None, None
    _, days, hit = min(candidates, key=lambda c: c[0])
    return (round(days, 1) if days % 1 else float(int(days))), hit


def _words_before(tokens: tuple, end: int, phrases: Collection[str]) -> tuple[str, int] | None:
    """The longest of ``phrases`` (one to three words) said right before token ``end``, with
    its first token: "a couple of" before "days", "a" + "week" for a bare "a week"."""
    for length in (3, 2, 1):
        if end - length < 0:
            continue
        said = " ".join(tok.lower for tok in tokens[end - length : end])
        if said in phrases:
            return said, end - length
    return None


def _temperature(t: Text, idx: TextIndex, lex: Lexicon) -> tuple[float | None, Hit | None]:
    """The highest body temperature said, when a fever word is near it."""
    tokens = t.tokens
    cue_sentences = {tokens[h.first].sentence for h in lex.temperature_cues.hits(idx)}
    if not cue_sentences:
        return None, None
    best: tuple[float, Hit] | None = None
    i = 0
    while i < len(tokens):
        num = _number_at(tokens, i)
        # a tens word followed by a unit word ("thirty eight") reads as one number
        if num is not None and i + 1 < len(tokens):
            nxt = _number_at(tokens, i + 1)
            if nxt is not None and nxt[1] == i:
                num = (nxt[0], i)
                i += 1
        if num is None:
            i += 1
            continue
        value, first = num
        last = i
        # decimals: "39 ja 2", "trettioåtta komma sju", "kolmekymmentäkahdeksan ja puoli"
        if value == int(value) and i + 2 < len(tokens) and tokens[i + 1].lower in DECIMAL_JOINERS:
            word = tokens[i + 2].lower
            third = tokens[i + 3].lower if i + 3 < len(tokens) else ""
            if word in HALF_WORDS:
                value, last = value + 0.5, i + 2
            elif word in ("en", "a") and third in HALF_WORDS:  # "och en halv", "and a half"
                value, last = value + 0.5, i + 3
            else:
                dec = word_number(word) if not word.isdigit() else int(word)
                if (
                    dec is not None
                    and 0 <= dec <= 9
                    and lex.unit_of(tokens[i + 3].lower if i + 3 < len(tokens) else "") is None
                ):
                    value, last = value + dec / 10, i + 2
        elif (
            value == int(value)
            and TEMPERATURE_RANGE[0] <= value <= TEMPERATURE_RANGE[1]
            and i + 1 < len(tokens)
            and tokens[i + 1].clause == tokens[i].clause
        ):
            # "kolmekymmentäkahdeksan kolme", "38 3": a single digit straight after is a tenth
            word = tokens[i + 1].lower
            dec = int(word) if word.isdigit() else word_number(word)
            following = tokens[i + 2].lower if i + 2 < len(tokens) else ""
            if dec is not None and 0 <= dec <= 9 and lex.unit_of(following) is None:
                value, last = value + dec / 10, i + 1
        before = tokens[first - 1].lower if first > 0 else ""
        after = tokens[last + 1].lower if last + 1 < len(tokens) else ""
        in_range = TEMPERATURE_RANGE[0] <= value <= TEMPERATURE_RANGE[1]
        is_other = lex.unit_of(after) is not None or before in ("viikolla", "week", "vecka")
        wanted = in_range and not is_other and tokens[i].sentence in cue_sentences
        if wanted and (best is None or value > best[0]):
            best = (round(value, 1), Hit(first, last, False, ()))
        i = last + 1
    return (best[0], best[1]) if best else (None, None)


# -- medicines, conditions, allergies ----------------------------------------------------------


def _medications(t: Text, raw: str, lex: Lexicon, denied: set[int]) -> list[Fact]:
    out: list[Fact] = []
    seen: set[str] = set()
    for tok in t.tokens:
        if tok.index in denied:
            continue
        for part_start, part in _parts(tok.text):
            low = part.lower()
            name, classes = _medicine(low, lex, t.language)
            if name is None or name in seen:
                continue
            seen.add(name)
            start = tok.start + part_start
            end = start + len(part)
            out.append(
                Fact(
                    name=name,
                    categories=list(classes),
                    evidence=Evidence(text=raw[start:end], start=start, end=end),
                )
            )
    return out


def _parts(word: str) -> list[tuple[int, str]]:
    """A hyphenated word and its parts ("Oxynorm-resepti" → Oxynorm, resepti)."""
    parts = [(0, word)]
    offset = 0
    for piece in word.split("-"):
        if piece and piece != word:
            parts.append((offset, piece))
        offset += len(piece) + 1
    return parts


def _medicine(word: str, lex: Lexicon, language: str) -> tuple[str | None, tuple[str, ...]]:
    base = lemma(word, language)
    for form in (word, base):
        if form in lex.medications:
            return form, lex.medications[form]
    for name, classes in lex.medications.items():
        if len(name) >= 5 and word.startswith(name):
            return name, classes
    for generic, classes in lex.medication_generic.items():
        if base.startswith(generic) or word.startswith(generic):
            return generic, classes
    for suffix in lex.medication_suffixes:
        if base.endswith(suffix) and len(base) > len(suffix) + 2 and base != suffix:
            return base, ()
    return None, ()


def _allergies(t: Text, raw: str, idx: TextIndex, lex: Lexicon, denied: set[int]) -> list[Fact]:
    out: list[Fact] = []
    for hit in lex.allergy_cues.hits(idx):
        if hit.first in denied:
            continue
        j = hit.last + 1
        while j < len(t.tokens) and t.tokens[j].lower in lex.allergy_skip:
            j += 1
        if j >= len(t.tokens) or t.tokens[j].clause != t.tokens[hit.first].clause:
            continue
        tok = t.tokens[j]
        if tok.lower in ("reaktio", "reaction", "reaktion", "reaktiota"):
            continue
        out.append(
            Fact(
                name=tok.lemma,
                categories=["allergy"],
                evidence=Evidence(text=raw[tok.start : tok.end], start=tok.start, end=tok.end),
            )
        )
    return out


def _unique(items: object) -> list[str]:
    out: list[str] = []
    for item in items:  # type: ignore[attr-defined]
        if item not in out:
            out.append(item)
    return out
