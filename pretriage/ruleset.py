"""The pretriage ruleset (``ruleset.yaml``): loaded, checked and compiled once, at start-up.

Every condition in the file is compiled to a predicate over :class:`Facts`; an unknown item, a
misspelt code or a missing text raises :class:`RulesetError` naming the rule, so a malformed
ruleset stops the app from starting instead of failing during a call.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from summarizer.text.lexicon import Lexicon, default_lexicon
from summarizer.text.schemas import CallContext, Evidence, Summary

RULESET_PATH = Path(__file__).resolve().parent / "ruleset.yaml"
PATH_IDS = ("prescription-renewal", "lab-results", "appointment", "uti", "respiratory-infection")
MODIFIERS = ("severe", "pressing", "radiating", "sudden", "worsening", "constant")
REQUESTS = ("symptom", "prescription_renewal", "lab_results", "appointment", "certificate", "other")
ADULT_UNKNOWN = (18.0, 74.0)
CHILD_UNKNOWN = (0.0, 17.99)
OTHER_UNKNOWN = (18.0, 120.0)
_COMPARISON = re.compile(r"^(temp|age|age_months|duration)(>=|<=|>|<)(\d+(?:\.\d+)?)$")
_OPS: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge,
    "<=": operator.le,
    ">": operator.gt,
    "<": operator.lt,
}


class RulesetError(ValueError):
    """The ruleset file is malformed; the message says where."""


@dataclass(frozen=True)
class Facts:
    """What a rule may look at: the summary, the call context, and derived values."""

    summary: Summary
    context: CallContext
    age_range: tuple[float, float]
    sex: str | None

    @classmethod
    def of(cls, summary: Summary, context: CallContext) -> Facts:
        age: float | None = None
        if context.age is not None:
            age = float(context.age)
        elif summary.age_months is not None and (summary.age or 0) < 2:
            age = summary.age_months / 12
        elif summary.age is not None:
            age = float(summary.age)
        if age is not None:
            age_range = (age, age)
        elif summary.for_whom == "child":
            age_range = CHILD_UNKNOWN
        elif summary.for_whom == "other":
            age_range = OTHER_UNKNOWN
        else:
            age_range = ADULT_UNKNOWN
        return cls(summary, context, age_range, context.sex or summary.sex)


Result = tuple[bool, list[Evidence]]
Predicate = Callable[[Facts], Result]


@dataclass(frozen=True)
class Rule:
    id: str
    policy: str
    text: Mapping[str, str]
    when: Predicate

    def label(self, language: str) -> str:
        return self.text.get(language) or self.text["fi"]


@dataclass(frozen=True)
class DigitalPath:
    id: str
    policy: str
    text: Mapping[str, str]
    when: Predicate
    codes: frozenset[str]
    guardian_may_use: bool = False
    excluded: tuple[Rule, ...] = ()


@dataclass(frozen=True)
class Blocker:
    rule: Rule
    applies_unless_guardian_may_use: bool = False
    mixed_matter: bool = False


@dataclass(frozen=True)
class PossibleSign:
    """A partial hit: words that point to an emergency sign without what makes it one."""

    rule: Rule
    sign: str
    """The sign in ``pretriage/signs/signs.yaml`` whose question the call asks."""


@dataclass(frozen=True)
class Ruleset:
    version: str
    policy: str
    min_asr_confidence: float
    emergency: tuple[Rule, ...]
    urgent: tuple[Rule, ...]
    digital_paths: dict[str, DigitalPath]
    blocking: tuple[Blocker, ...]
    possible: tuple[PossibleSign, ...] = ()
    sign_findings: frozenset[str] = frozenset()
    """Findings some emergency or urgent rule reads: said beside a digital-path matter, they
    make it a mixed matter for a nurse."""
    texts: dict[str, dict[str, str]] = field(default_factory=dict)


# -- conditions ---------------------------------------------------------------------------------


def _true(evidence: list[Evidence] | None = None) -> Result:
    return True, evidence or []


_FALSE: Result = (False, [])


def _atom(item: str, where: str, lex: Lexicon) -> Predicate:
    """Compile one item ("symptom:A11+severe", "temp>=39", ...) to a predicate."""
    item = item.strip()
    if item == "any_symptom":
        return lambda f: _first(
            [(True, [s.evidence]) for s in f.summary.symptoms if not s.icpc2.startswith("-")]
        )
    if item == "pregnant":
        return lambda f: (
            _true([f.summary.evidence["pregnant"]] if "pregnant" in f.summary.evidence else [])
            if f.summary.pregnant
            else _FALSE
        )
    if item == "duration_unknown":
        return lambda f: _true() if f.summary.duration_days is None else _FALSE
    if item == "sex_unknown":
        return lambda f: _true() if f.sex is None else _FALSE
    m = _COMPARISON.match(item)
    if m:
        return _comparison(m.group(1), _OPS[m.group(2)], float(m.group(3)))
    kind, _, value = item.partition(":")
    if not value:
        raise RulesetError(f"{where}: unknown item {item!r}")
    if kind == "symptom":
        code, *mods = value.split("+")
        if code not in lex.symptoms:
            raise RulesetError(f"{where}: unknown ICPC-2 code {code!r} in {item!r}")
        for mod in mods:
            if mod not in MODIFIERS:
                raise RulesetError(f"{where}: unknown modifier {mod!r} in {item!r}")
        return _symptom(code, tuple(mods))
    if kind == "finding":
        if value not in lex.findings:
            raise RulesetError(f"{where}: unknown finding {value!r}")
        return _finding(value)
    if kind == "only_codes":
        codes = frozenset(c.strip() for c in value.split("/"))
        unknown = [c for c in codes if c not in lex.symptoms]
        if unknown:
            raise RulesetError(f"{where}: unknown codes {unknown} in {item!r}")
        return lambda f: _true() if all(s.icpc2 in codes for s in f.summary.symptoms) else _FALSE
    if kind == "for_whom":
        if value not in ("self", "child", "other"):
            raise RulesetError(f"{where}: for_whom must be self, child or other")
        return lambda f: (
            _true([f.summary.evidence["for_whom"]] if "for_whom" in f.summary.evidence else [])
            if f.summary.for_whom == value
            else _FALSE
        )
    if kind == "sex":
        if value not in ("female", "male"):
            raise RulesetError(f"{where}: sex must be female or male")
        return lambda f: _true() if f.sex == value else _FALSE
    if kind == "request":
        if value not in REQUESTS:
            raise RulesetError(f"{where}: unknown request {value!r}")
        return lambda f: (
            _true([f.summary.evidence["request"]] if "request" in f.summary.evidence else [])
            if f.summary.request == value
            else _FALSE
        )
    if kind == "condition":
        categories = {c for e in lex.conditions.values() for c in e.categories}
        if value not in categories and value not in lex.conditions:
            raise RulesetError(f"{where}: unknown condition category {value!r}")
        return lambda f: _first(
            [(True, [c.evidence]) for c in f.summary.condition_facts if value in c.categories]
        )
    if kind == "medication":
        classes = {c for cs in lex.medications.values() for c in cs}
        classes |= {c for cs in lex.medication_generic.values() for c in cs}
        if value not in classes:
            raise RulesetError(f"{where}: unknown medication class {value!r}")
        return lambda f: _first(
            [(True, [m.evidence]) for m in f.summary.medication_facts if value in m.categories]
        )
    if kind == "context":
        if value not in ("emergency_key", "wants_nurse"):
            raise RulesetError(f"{where}: unknown context item {value!r}")
        return lambda f: _true() if getattr(f.context, value) else _FALSE
    raise RulesetError(f"{where}: unknown item {item!r}")


def _first(results: list[Result]) -> Result:
    return results[0] if results else _FALSE


def _symptom(code: str, mods: tuple[str, ...]) -> Predicate:
    def check(f: Facts) -> Result:
        for s in f.summary.symptoms:
            if s.icpc2 == code and all(m in s.modifiers for m in mods):
                return True, [s.evidence, *(s.modifier_evidence[m] for m in mods)]
        return _FALSE

    return check


def _finding(fid: str) -> Predicate:
    def check(f: Facts) -> Result:
        found = f.summary.finding(fid)
        return (True, [found.evidence]) if found else _FALSE

    return check


def _comparison(field_name: str, op: Callable[[float, float], bool], limit: float) -> Predicate:
    def check(f: Facts) -> Result:
        s = f.summary
        if field_name == "temp":
            if s.temperature_c is None or not op(s.temperature_c, limit):
                return _FALSE
            return _true([s.evidence["temperature_c"]] if "temperature_c" in s.evidence else [])
        if field_name == "duration":
            if s.duration_days is None or not op(s.duration_days, limit):
                return _FALSE
            return _true([s.evidence["duration_days"]] if "duration_days" in s.evidence else [])
        lo, hi = f.age_range
        limit_years = limit / 12 if field_name == "age_months" else limit
        # Certain only: every age the patient may have must satisfy the comparison.
        if op(lo, limit_years) and op(hi, limit_years):
            return _true([s.evidence["age"]] if "age" in s.evidence else [])
        return _FALSE

    return check


def compile_condition(raw: Any, where: str, lex: Lexicon) -> Predicate:
    """A condition: an item, a list (all of them), or {all, any, none}."""
    if isinstance(raw, str):
        return _atom(raw, where, lex)
    if isinstance(raw, list):
        return _combine({"all": raw}, where, lex)
    if isinstance(raw, dict):
        return _combine(raw, where, lex)
    raise RulesetError(f"{where}: a condition must be an item, a list or all/any/none")


def _combine(raw: dict[str, Any], where: str, lex: Lexicon) -> Predicate:
    unknown = set(raw) - {"all", "any", "none"}
    if unknown or not raw:
        raise RulesetError(f"{where}: only all/any/none are allowed, got {sorted(unknown)}")
    parts: dict[str, list[Predicate]] = {}
    for key in ("all", "any", "none"):
        items = raw.get(key)
        if items is None:
            continue
        if not isinstance(items, list) or not items:
            raise RulesetError(f"{where}: '{key}' must be a non-empty list")
        parts[key] = [compile_condition(i, where, lex) for i in items]

    def check(f: Facts) -> Result:
        evidence: list[Evidence] = []
        for p in parts.get("all", []):
            ok, ev = p(f)
            if not ok:
                return _FALSE
            evidence += ev
        if "any" in parts:
            hits = [p(f) for p in parts["any"]]
            fired = [ev for ok, ev in hits if ok]
            if not fired:
                return _FALSE
            for ev in fired:
                evidence += ev
        for p in parts.get("none", []):
            if p(f)[0]:
                return _FALSE
        return True, evidence

    return check


# -- loading ------------------------------------------------------------------------------------


def _text(raw: Any, where: str) -> dict[str, str]:
    if not isinstance(raw, dict) or not raw.get("fi"):
        raise RulesetError(f"{where}: 'text' needs a Finnish ('fi') wording for nurses")
    return {str(k): str(v) for k, v in raw.items()}


def _rule(raw: Any, where: str, lex: Lexicon) -> Rule:
    if not isinstance(raw, dict) or not raw.get("id"):
        raise RulesetError(f"{where}: a rule needs an 'id'")
    where = f"{where} {raw['id']}"
    if "when" not in raw:
        raise RulesetError(f"{where}: a rule needs 'when'")
    return Rule(
        id=str(raw["id"]),
        policy=str(raw.get("policy", "")),
        text=_text(raw.get("text"), where),
        when=compile_condition(raw["when"], where, lex),
    )


def _possible(raw: Any, where: str, lex: Lexicon) -> PossibleSign:
    from pretriage.signs import default_signs

    rule = _rule(raw, where, lex)
    sign = str(raw.get("sign", ""))
    signs = default_signs().signs
    if sign not in signs or signs[sign].ask is None:
        raise RulesetError(f"{where} {rule.id}: 'sign' must be an emergency sign of signs.yaml")
    return PossibleSign(rule, sign)


def load_ruleset(path: Path = RULESET_PATH, lexicon: Lexicon | None = None) -> Ruleset:
    """Read and compile a ruleset file; raises :class:`RulesetError` with the place at fault."""
    lex = lexicon or default_lexicon()
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise RulesetError(f"{path.name}: cannot read: {exc}") from exc
    if not isinstance(data, dict):
        raise RulesetError(f"{path.name}: expected a mapping at the top level")
    for key in ("version", "emergency", "urgent", "digital_paths", "blocking"):
        if key not in data:
            raise RulesetError(f"{path.name}: missing '{key}'")
    name = path.name
    emergency = tuple(_rule(r, f"{name}: emergency", lex) for r in data["emergency"])
    urgent = tuple(_rule(r, f"{name}: urgent", lex) for r in data["urgent"])
    possible = tuple(_possible(r, f"{name}: possible", lex) for r in data.get("possible") or [])
    ids = [r.id for r in emergency + urgent] + [p.rule.id for p in possible]
    if len(ids) != len(set(ids)):
        raise RulesetError(f"{name}: rule ids must be unique")
    paths: dict[str, DigitalPath] = {}
    if not isinstance(data["digital_paths"], dict):
        raise RulesetError(f"{name}: digital_paths must map a path id to its rule")
    for pid, raw in data["digital_paths"].items():
        where = f"{name}: digital_paths {pid}"
        if pid not in PATH_IDS:
            raise RulesetError(f"{where}: unknown path id (known: {', '.join(PATH_IDS)})")
        if not isinstance(raw, dict) or "when" not in raw:
            raise RulesetError(f"{where}: needs 'when'")
        codes = raw.get("codes")
        if not isinstance(codes, list) or not codes:
            raise RulesetError(f"{where}: needs 'codes', the ICPC-2 matters the path covers")
        unknown = [str(c) for c in codes if str(c) not in lex.symptoms]
        if unknown:
            raise RulesetError(f"{where}: unknown codes {unknown}")
        paths[pid] = DigitalPath(
            id=pid,
            policy=str(raw.get("policy", "")),
            text=_text(raw.get("text"), where),
            when=compile_condition(raw["when"], where, lex),
            codes=frozenset(str(c) for c in codes),
            guardian_may_use=bool(raw.get("guardian_may_use", False)),
            excluded=tuple(_rule(r, f"{where} excluded", lex) for r in raw.get("excluded", [])),
        )
    blocking = []
    for raw in data["blocking"]:
        where = f"{name}: blocking"
        if isinstance(raw, dict) and raw.get("mixed_matter"):
            rule = Rule(
                id=str(raw.get("id", "mixed")),
                policy=str(raw.get("policy", "")),
                text=_text(raw.get("text"), f"{where} {raw.get('id')}"),
                when=lambda f: _FALSE,
            )
            blocking.append(Blocker(rule, mixed_matter=True))
            continue
        blocking.append(
            Blocker(
                _rule(raw, where, lex),
                applies_unless_guardian_may_use=bool(
                    raw.get("applies_unless_guardian_may_use", False)
                ),
            )
        )
    try:
        min_conf = float(data.get("min_asr_confidence", 0.0))
    except (TypeError, ValueError) as exc:
        raise RulesetError(f"{name}: min_asr_confidence must be a number") from exc
    return Ruleset(
        version=str(data["version"]),
        policy=str(data.get("policy", "")),
        min_asr_confidence=min_conf,
        emergency=emergency,
        urgent=urgent,
        digital_paths=paths,
        blocking=tuple(blocking),
        possible=possible,
        sign_findings=frozenset(
            re.findall(r"finding:(\w+)", yaml.safe_dump([data["emergency"], data["urgent"]]))
        ),
    )


@lru_cache(maxsize=1)
def default_ruleset() -> Ruleset:
    """The bundled ruleset, compiled once per process (the app loads it at start-up)."""
    return load_ruleset(RULESET_PATH)
