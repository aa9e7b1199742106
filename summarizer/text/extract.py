"""Transcript → the nurse-facing summary (``docs/summary-schema.md``), deterministically.

Every fact carries the words it came from; :func:`check_faithful` drops any fact whose evidence
is not literally in the transcript, so nothing reaches the nurse that the caller did not say.
The vocabulary is data (``summarizer/text/lexicon/*.yaml``); this module only applies it.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass

from summarizer.text.grammar import grammar
from summarizer.text.lexicon import Lexicon, default_lexicon
from summarizer.text.matching import Hit, TermSet, TextIndex
from summarizer.text.note import reason_line, render_note
from summarizer.text.numbers import digits_value, word_number
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
_REQUEST_BY_CODE: dict[str, Request] = {
    "-50": "prescription_renewal",
    "-60": "lab_results",
    "-62": "appointment",
}


@dataclass(frozen=True, slots=True)
class _Match:
    key: str
    hit: Hit
    negated: bool


def detect_language(raw: str) -> str:
    """fi, sv or en by function words; Finnish when unsure (the stations' default)."""
    words = re.findall(r"\w+", raw.lower())
    markers = grammar().language_markers
    scores = {lang: sum(w in marks for w in words) for lang, marks in markers.items()}
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
    """Summarise one caller's words. ``note_language`` is the station's documentation language.

    Six stages, each returning a small result the next ones read: the words ready to match
    (:func:`read`), the complaints (:func:`find_complaints`), what the call is for
    (:func:`main_request`), who it is about (:func:`find_person`), how long and how high
    (:func:`find_time_and_temperature`), and the background (:func:`find_background`).
    """
    context = context or CallContext()
    label_language = note_language if note_language in ("fi", "sv", "en") else "fi"
    words = read(text, context, lexicon or default_lexicon(), fuzzy=fuzzy)
    complaints = find_complaints(words, label_language)
    request = main_request(words, complaints)
    person = find_person(words, complaints, context)
    timing = find_time_and_temperature(words, person)
    background = find_background(words, complaints, label_language)
    evidence = {**request.evidence, **person.evidence, **timing.evidence, **background.evidence}
    summary = Summary(
        language=words.text.language,
        for_whom=person.for_whom,
        age=person.age,
        sex=person.sex,
        request=request.request,
        symptoms=complaints.symptoms,
        negated_symptoms=complaints.negated_symptoms,
        duration_days=timing.duration_days,
        temperature_c=timing.temperature_c,
        medications=_unique(f.name for f in background.medications),
        allergies=_unique(f.name for f in background.allergies),
        conditions=_unique(f.name for f in background.conditions),
        pregnant=background.pregnant,
        red_flags=_unique(
            f.label
            for f in complaints.findings
            if not f.negated and words.lexicon.findings[f.id].red_flag
        ),
        age_months=person.age_months,
        findings=complaints.findings,
        medication_facts=background.medications,
        condition_facts=background.conditions,
        allergy_facts=background.allergies,
        evidence=evidence,
    )
    summary = check_faithful(summary, words.raw)
    summary.reason = reason_line(summary, label_language)
    summary.note = render_note(summary, label_language)
    return summary


# -- the stages ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Words:
    """The caller's words ready to match: tokens, the lexicon's hits, what negation covers."""

    raw: str
    text: Text
    index: TextIndex
    denied: set[int]
    """Token positions a negation word denies."""
    lexicon: Lexicon

    def matches(self, key: str, terms: TermSet) -> list[_Match]:
        return [
            _Match(key, h, _is_negated(h, self.denied, self.lexicon))
            for h in terms.hits(self.index)
        ]

    def evidence(self, hit: Hit) -> Evidence:
        start, end = self.text.span(hit.first, hit.last)
        return Evidence(text=self.raw[start:end], start=start, end=end)


def read(text: str, context: CallContext, lexicon: Lexicon, *, fuzzy: bool = True) -> Words:
    raw = normalise(text)
    language = context.language or detect_language(raw)
    t = analyse(raw, language if language in ("fi", "sv", "en") else detect_language(raw))
    return Words(
        raw=raw,
        text=t,
        index=lexicon.index.index(t, fuzzy=fuzzy),
        denied=_negation_scope(t, lexicon),
        lexicon=lexicon,
    )


@dataclass(frozen=True)
class Complaints:
    symptoms: list[Symptom]
    negated_symptoms: list[Symptom]
    findings: list[Finding]
    """Findings (not modifiers) as the nurse sees them, denied ones included."""
    finding_matches: list[_Match]
    """Every mention of a finding or modifier (people words must not be read inside them)."""
    mentioned: list[_Match]
    """One mention per finding or modifier: the first affirmed, else the first denied."""
    affirmed: dict[str, _Match]
    """The first mention of each symptom the caller has."""

    @property
    def present(self) -> set[str]:
        return {m.key for m in self.mentioned if not m.negated}


def find_complaints(words: Words, label_language: str) -> Complaints:
    """Symptoms said and denied, with their modifiers, and the findings."""
    lex = words.lexicon
    # Findings first: modifiers attach to symptoms, pregnancy shields the word "lasta".
    finding_matches = [m for f in lex.findings.values() for m in words.matches(f.id, f.terms)]
    mentioned = _dedupe_findings(finding_matches)
    present = {m.key for m in mentioned if not m.negated}

    symptom_matches = [m for e in lex.symptoms.values() for m in words.matches(e.code, e.terms)]
    symptom_matches = _suppress(symptom_matches, lex)
    for entry in lex.symptoms.values():
        if entry.also_when and all(f in present for f in entry.also_when):
            first = next(m for m in mentioned if m.key == entry.also_when[0] and not m.negated)
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

    modifiers = _attach_modifiers(words.text, mentioned, affirmed, lex)

    def symptom(m: _Match, negated: bool) -> Symptom:
        entry = lex.symptoms[m.key]
        return Symptom(
            icpc2=m.key,
            label=_label(entry.label, label_language),
            negated=negated,
            evidence=words.evidence(m.hit),
            modifiers=sorted(modifiers.get(m.key, {})),
            modifier_evidence={k: words.evidence(h) for k, h in modifiers.get(m.key, {}).items()},
            fuzzy=m.hit.fuzzy,
        )

    return Complaints(
        symptoms=[symptom(m, False) for m in sorted(affirmed.values(), key=lambda m: m.hit.first)],
        negated_symptoms=[
            symptom(m, True) for m in sorted(denied.values(), key=lambda m: m.hit.first)
        ],
        findings=[
            Finding(
                id=m.key,
                label=lex.findings[m.key].label.get(
                    label_language, lex.findings[m.key].label["fi"]
                ),
                negated=m.negated,
                evidence=words.evidence(m.hit),
            )
            for m in mentioned
            if lex.findings[m.key].kind == "finding"
        ],
        finding_matches=finding_matches,
        mentioned=mentioned,
        affirmed=affirmed,
    )


@dataclass(frozen=True)
class RequestFacts:
    request: Request
    evidence: dict[str, Evidence]


def main_request(words: Words, complaints: Complaints) -> RequestFacts:
    request, hit = _request(
        complaints.affirmed, complaints.present, complaints.mentioned, complaints.symptoms
    )
    return RequestFacts(request, {"request": words.evidence(hit)} if hit is not None else {})


@dataclass(frozen=True)
class Person:
    """Who the call is about, as the words and the keypad tell it."""

    for_whom: ForWhom
    age: int | None
    age_months: int | None
    sex: Sex | None
    age_hit: Hit | None
    """Where the words said an age (a duration is never read there)."""
    evidence: dict[str, Evidence]


def find_person(words: Words, complaints: Complaints, context: CallContext) -> Person:
    """For whom, age and sex; what the caller keyed in wins over the words."""
    lex, idx = words.lexicon, words.index
    evidence: dict[str, Evidence] = {}
    age, age_months, age_hit = _age(words.text, idx, lex)
    if age_hit is not None:
        evidence["age"] = words.evidence(age_hit)
    said_sex, sex_hit = _self_sex(idx, lex)
    if sex_hit is not None and context.sex is None:
        evidence["sex"] = words.evidence(sex_hit)
    for_whom, whom_hit = _for_whom(
        words.text, idx, lex, complaints.finding_matches, age, not_at=sex_hit
    )
    if context.for_whom is not None:
        for_whom = context.for_whom
    elif whom_hit is not None:
        evidence["for_whom"] = words.evidence(whom_hit)
    if context.age is not None:
        age, age_months = context.age, None
    if age is not None and age >= 18 and for_whom == "child" and context.for_whom is None:
        for_whom = "other"
    return Person(
        for_whom=for_whom,
        age=age,
        age_months=age_months,
        sex=context.sex or said_sex,
        age_hit=age_hit,
        evidence=evidence,
    )


@dataclass(frozen=True)
class Timing:
    duration_days: float | None
    temperature_c: float | None
    evidence: dict[str, Evidence]


def find_time_and_temperature(words: Words, person: Person) -> Timing:
    evidence: dict[str, Evidence] = {}
    duration, duration_hit = _duration(words.text, words.index, words.lexicon, person.age_hit)
    if duration_hit is not None:
        evidence["duration_days"] = words.evidence(duration_hit)
    temperature, temp_hit = _temperature(words.text, words.index, words.lexicon)
    if temp_hit is not None:
        evidence["temperature_c"] = words.evidence(temp_hit)
    return Timing(duration, temperature, evidence)


@dataclass(frozen=True)
class Background:
    pregnant: bool | None
    medications: list[Fact]
    conditions: list[Fact]
    allergies: list[Fact]
    evidence: dict[str, Evidence]


def find_background(words: Words, complaints: Complaints, label_language: str) -> Background:
    """Pregnancy, medicines, long-term conditions and allergies."""
    lex, t = words.lexicon, words.text
    evidence: dict[str, Evidence] = {}
    pregnant: bool | None = None
    preg = next((m for m in complaints.mentioned if m.key == "pregnancy"), None)
    if preg is not None:
        pregnant = not preg.negated
        evidence["pregnant"] = words.evidence(preg.hit)

    medications = _medications(t, words.raw, lex, words.denied)
    conditions = [
        Fact(
            name=_label(lex.conditions[m.key].label, label_language),
            categories=list(lex.conditions[m.key].categories),
            evidence=words.evidence(m.hit),
        )
        for m in _dedupe_findings(
            [m for c in lex.conditions.values() for m in words.matches(c.id, c.terms)]
        )
        if not m.negated
    ]
    allergies = _allergies(t, words.raw, words.index, lex, words.denied)
    # "allergisk mot penicillin": the allergen is not a medicine the caller takes.
    allergens = [(a.evidence.start, a.evidence.end) for a in allergies]
    medications = [
        f
        for f in medications
        if not any(start <= f.evidence.start < end for start, end in allergens)
    ]
    return Background(pregnant, medications, conditions, allergies, evidence)


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
        kept = lex.before_negator_kept.get(t.language)
        if kept is not None and tok.index > 0:
            before = tokens[tok.index - 1]
            if before.clause == tok.clause and before.lower not in kept:
                denied.add(before.index)  # "det strålar inte ut"
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
        m = grammar().age_word.match(tok.lower)
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
    g = grammar()
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
        if value == int(value) and i + 2 < len(tokens) and tokens[i + 1].lower in g.decimal_joiners:
            word = tokens[i + 2].lower
            third = tokens[i + 3].lower if i + 3 < len(tokens) else ""
            if word in g.half_words:
                value, last = value + 0.5, i + 2
            elif word in g.half_articles and third in g.half_words:  # "och en halv"
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
        is_other = lex.unit_of(after) is not None or before in g.not_temperature_after
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
        if tok.lower in lex.not_allergens:
            continue
        out.append(
            Fact(
                name=tok.lemma,
                categories=["allergy"],
                evidence=Evidence(text=raw[tok.start : tok.end], start=tok.start, end=tok.end),
            )
        )
    return out


def _label(labels: Mapping[str, str], language: str) -> str:
    return labels.get(language, labels["fi"])


def _unique(items: object) -> list[str]:
    out: list[str] = []
    for item in items:  # type: ignore[attr-defined]
        if item not in out:
            out.append(item)
    return out
