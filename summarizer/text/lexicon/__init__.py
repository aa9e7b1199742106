"""The summarizer's vocabulary, loaded from the YAML files in this folder.

The files are for clinicians to read and extend; this module only checks and compiles them.
A malformed file raises :class:`LexiconError` when the lexicon is first loaded (at start-up),
never in the middle of a call.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from summarizer.text.matching import PatternIndex, TermSet, WordPattern

LEXICON_DIR = Path(__file__).resolve().parent
LANGUAGES = ("fi", "sv", "en")


class LexiconError(ValueError):
    """A lexicon file is malformed; the message names the file and the entry."""


@dataclass(frozen=True)
class SymptomEntry:
    code: str
    label: Mapping[str, str]
    terms: TermSet
    suppresses: tuple[str, ...] = ()
    request: str | None = None
    also_when: tuple[str, ...] = ()
    examples: Mapping[str, tuple[str, ...]] = field(default_factory=dict)


@dataclass(frozen=True)
class FindingEntry:
    id: str
    kind: str  # modifier | finding
    label: Mapping[str, str]
    terms: TermSet
    red_flag: bool = False
    examples: Mapping[str, tuple[str, ...]] = field(default_factory=dict)


@dataclass(frozen=True)
class ConditionEntry:
    id: str
    label: Mapping[str, str]
    categories: tuple[str, ...]
    terms: TermSet


@dataclass(frozen=True)
class TimeUnit:
    name: str
    days: float
    forms: frozenset[str]


@dataclass(frozen=True)
class Lexicon:
    symptoms: dict[str, SymptomEntry]
    findings: dict[str, FindingEntry]
    conditions: dict[str, ConditionEntry]
    negators_by_language: dict[str, frozenset[str]]
    copulas: frozenset[str]
    scope_coordinators: frozenset[str]
    scope_subjects: frozenset[str]
    scope_verbs: frozenset[str]
    scope_clause_starters: frozenset[str]
    connegatives: frozenset[str]
    before_negator_kept: dict[str, frozenset[str]]
    """Per language: the word before a negator is denied too, unless it is one of these."""
    people: dict[str, TermSet]
    age_year_words: TermSet
    age_month_words: TermSet
    age_week_words: TermSet
    age_baby_words: TermSet
    self_intro: TermSet
    not_age_after: frozenset[str]
    sex_words: dict[str, TermSet]
    time_units: tuple[TimeUnit, ...]
    bare_unit_forms: frozenset[str]
    quantity_words: dict[str, float | None]
    not_duration_before: frozenset[str]
    not_duration_after: frozenset[str]
    relative_times: tuple[tuple[float, TermSet], ...]
    approximately: frozenset[str]
    temperature_cues: TermSet
    decimal_words: dict[str, float]
    medications: dict[str, tuple[str, ...]]
    medication_suffixes: tuple[str, ...]
    medication_generic: dict[str, tuple[str, ...]]
    allergy_cues: TermSet
    allergy_skip: frozenset[str]
    not_allergens: frozenset[str]
    index: PatternIndex

    @property
    def negators(self) -> frozenset[str]:
        """Negation words of every language (for terms that contain one)."""
        return frozenset().union(*self.negators_by_language.values())

    def negators_for(self, language: str) -> frozenset[str]:
        return self.negators_by_language.get(language, self.negators_by_language["fi"])

    def unit_of(self, word: str) -> TimeUnit | None:
        for unit in self.time_units:
            if word in unit.forms:
                return unit
        return None


def _load_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise LexiconError(f"{path.name}: cannot read: {exc}") from exc
    if not isinstance(data, dict):
        raise LexiconError(f"{path.name}: expected a mapping at the top level")
    return data


def _terms(where: str, raw: Any, unless: Any = None) -> TermSet:
    if isinstance(raw, str):
        raw = [raw]
    if not isinstance(raw, list) or not raw or not all(isinstance(t, str) for t in raw):
        raise LexiconError(f"{where}: 'terms' must be a non-empty list of strings")
    unless = [] if unless is None else unless
    if not isinstance(unless, list) or not all(isinstance(t, str) for t in unless):
        raise LexiconError(f"{where}: 'unless' must be a list of strings")
    try:
        return TermSet.of(raw, unless)
    except ValueError as exc:
        raise LexiconError(f"{where}: {exc}") from exc


def _label(where: str, raw: Any) -> dict[str, str]:
    if not isinstance(raw, dict) or "fi" not in raw:
        raise LexiconError(f"{where}: 'label' needs at least a Finnish ('fi') name")
    return {str(k): str(v) for k, v in raw.items()}


def _examples(where: str, raw: Any) -> dict[str, tuple[str, ...]]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise LexiconError(f"{where}: 'examples' must map a language to sentences")
    return {str(k): tuple(str(s) for s in v) for k, v in raw.items()}


def _words(raw: Any) -> frozenset[str]:
    words = list(raw or [])
    if any(isinstance(w, bool) for w in words):
        # YAML reads a bare on/off/yes/no as true/false: the word would silently vanish.
        raise LexiconError(f"a word list holds true/false; quote on/off/yes/no: {words}")
    return frozenset(str(w).lower() for w in words)


def load_lexicon(directory: Path = LEXICON_DIR) -> Lexicon:
    """Read, check and compile the lexicon in ``directory``."""
    symptoms: dict[str, SymptomEntry] = {}
    for code, entry in _load_yaml(directory / "symptoms.yaml").items():
        where = f"symptoms.yaml: {code}"
        if not isinstance(entry, dict):
            raise LexiconError(f"{where}: expected a mapping")
        symptoms[str(code)] = SymptomEntry(
            code=str(code),
            label=_label(where, entry.get("label")),
            terms=_terms(where, entry.get("terms"), entry.get("unless")),
            suppresses=tuple(str(c) for c in entry.get("suppresses", [])),
            request=entry.get("request"),
            also_when=tuple(str(f) for f in entry.get("also_when", [])),
            examples=_examples(where, entry.get("examples")),
        )
    for entry_s in symptoms.values():
        for code in entry_s.suppresses:
            if code not in symptoms:
                raise LexiconError(f"symptoms.yaml: {entry_s.code}: suppresses unknown {code}")

    findings: dict[str, FindingEntry] = {}
    for fid, entry in _load_yaml(directory / "findings.yaml").items():
        where = f"findings.yaml: {fid}"
        if not isinstance(entry, dict) or entry.get("kind") not in ("modifier", "finding"):
            raise LexiconError(f"{where}: needs 'kind: modifier' or 'kind: finding'")
        findings[str(fid)] = FindingEntry(
            id=str(fid),
            kind=entry["kind"],
            label=_label(where, entry.get("label")),
            terms=_terms(where, entry.get("terms"), entry.get("unless")),
            red_flag=bool(entry.get("red_flag", False)),
            examples=_examples(where, entry.get("examples")),
        )

    for entry_s in symptoms.values():
        for fid in entry_s.also_when:
            if fid not in findings:
                raise LexiconError(f"symptoms.yaml: {entry_s.code}: also_when unknown {fid}")

    ctx = _load_yaml(directory / "context.yaml")
    try:
        conditions = {
            str(cid): ConditionEntry(
                id=str(cid),
                label=_label(f"context.yaml: conditions.{cid}", c.get("label")),
                categories=tuple(c.get("categories") or ()),
                terms=_terms(f"context.yaml: conditions.{cid}", c.get("terms")),
            )
            for cid, c in ctx["conditions"].items()
        }
        time = ctx["time"]
        units = tuple(
            TimeUnit(name=str(n), days=float(u["days"]), forms=_words(u["forms"]))
            for n, u in time["units"].items()
        )
        relative = tuple(
            (float(r["days"]), _terms("context.yaml: time.relative", r["terms"]))
            for r in time["relative"]
        )
        age = ctx["age"]
        meds = ctx["medications"]
        lex = Lexicon(
            symptoms=symptoms,
            findings=findings,
            conditions=conditions,
            negators_by_language={
                str(k): _words(v) for k, v in ctx["negation"]["negators"].items()
            },
            copulas=_words(ctx["negation"]["copulas"]),
            scope_coordinators=_words(ctx["negation"]["scope_ends"]["coordinators"]),
            scope_subjects=_words(ctx["negation"]["scope_ends"]["subjects"]),
            scope_verbs=_words(ctx["negation"]["scope_ends"]["verbs"]),
            scope_clause_starters=_words(ctx["negation"]["scope_ends"]["clause_starters"]),
            connegatives=_words(ctx["negation"]["connegatives"]),
            before_negator_kept={
                str(k): _words(v) for k, v in ctx["negation"]["before_negator_kept"].items()
            },
            people={k: _terms(f"context.yaml: people.{k}", v) for k, v in ctx["people"].items()},
            age_year_words=_terms("context.yaml: age.year_words", age["year_words"]),
            age_month_words=_terms("context.yaml: age.month_words", age["month_words"]),
            age_week_words=_terms("context.yaml: age.week_words", age["week_words"]),
            age_baby_words=_terms("context.yaml: age.baby_words", age["baby_words"]),
            self_intro=_terms("context.yaml: age.self_intro", age["self_intro"]),
            not_age_after=_words(age["not_age_after"]),
            sex_words={str(k): _terms(f"context.yaml: sex.{k}", v) for k, v in ctx["sex"].items()},
            time_units=units,
            bare_unit_forms=_words(time["bare_unit_forms"]),
            quantity_words={
                str(k).lower(): (None if v is None else float(v))
                for k, v in time["quantity_words"].items()
            },
            not_duration_before=_words(time["not_duration_before"]),
            not_duration_after=_words(time["not_duration_after"]),
            relative_times=relative,
            approximately=_words(time["approximately"]),
            temperature_cues=_terms("context.yaml: temperature.cues", ctx["temperature"]["cues"]),
            decimal_words={
                str(k): float(v) for k, v in ctx["temperature"]["decimal_words"].items()
            },
            medications={str(k).lower(): tuple(v) for k, v in meds["names"].items()},
            medication_suffixes=tuple(str(s) for s in meds["generic_suffixes"]),
            medication_generic={
                str(k).lower(): tuple(v) for k, v in meds["generic_classes"].items()
            },
            allergy_cues=_terms("context.yaml: allergies.cues", ctx["allergies"]["cues"]),
            allergy_skip=_words(ctx["allergies"]["skip"]),
            not_allergens=_words(ctx["allergies"]["not_allergens"]),
            index=PatternIndex(()),
        )
    except (KeyError, TypeError, AttributeError, ValueError) as exc:
        if isinstance(exc, LexiconError):
            raise
        raise LexiconError(f"context.yaml: missing or malformed section: {exc}") from exc
    patterns: list[WordPattern] = []
    for ts in _all_termsets(lex):
        patterns.extend(ts.patterns())
    object.__setattr__(lex, "index", PatternIndex(patterns))
    return lex


def _all_termsets(lex: Lexicon) -> list[TermSet]:
    out = [e.terms for e in lex.symptoms.values()]
    out += [e.terms for e in lex.findings.values()]
    out += [c.terms for c in lex.conditions.values()]
    out += list(lex.people.values())
    out += [lex.age_year_words, lex.age_month_words, lex.age_week_words, lex.age_baby_words]
    out += [lex.self_intro]
    out += list(lex.sex_words.values())
    out += [ts for _, ts in lex.relative_times]
    out += [lex.temperature_cues, lex.allergy_cues]
    return out


@lru_cache(maxsize=1)
def default_lexicon() -> Lexicon:
    """The bundled lexicon, loaded once per process."""
    return load_lexicon(LEXICON_DIR)
