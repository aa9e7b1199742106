"""The policy's signs described in words, and the everyday matters they must be told apart
from: versioned data for the detector that recognises signs by meaning (``detector.py``).

``signs.yaml`` names each sign, the rule it resembles, its plain-words label and keypad question
in Finnish, Swedish and English; ``examples.jsonl`` says how people put each sign and matter;
``classifier.npz`` is what ``esitieto signs train`` learnt from them. A malformed file raises
:class:`SignsError` at start-up, naming the file and the entry.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import yaml

SIGNS_DIR = Path(__file__).resolve().parent
LANGUAGES = ("fi", "sv", "en")
Urgency = Literal["emergency", "urgent"]


class SignsError(ValueError):
    """A sign file is malformed; the message names the file and the entry."""


@dataclass(frozen=True)
class Sign:
    id: str
    rule: str
    """The ruleset rule the caller's words resemble."""
    urgency: Urgency
    label: Mapping[str, str]
    description: Mapping[str, str]
    ask: Mapping[str, str] | None = None
    """The keypad question that confirms an emergency sign during a call."""
    raises: bool = True
    """False: the rules read this sign exactly (numbers, age, sex); a resemblance never raises."""
    needs: Any = None
    """A ruleset condition the rules must also find for a resemblance to count ("fever" for a
    rash that does not fade); compiled by the engine."""

    def text(self, field: Literal["label", "ask", "description"], language: str) -> str:
        values = getattr(self, field) or {}
        return str(values.get(language) or values.get("fi") or next(iter(values.values()), ""))


@dataclass(frozen=True)
class Thresholds:
    """How strong a resemblance must be (the classifier's probability in one clause)."""

    emergency_unexplained: float
    emergency_explained: float
    possible_emergency: float
    """Weaker than a resemblance that raises: the call asks the caller to confirm."""
    urgent_unexplained: float
    urgent_explained: float
    health_talk: float
    """A clause this likely to be about a symptom must map to a recognised fact."""
    similarity: float
    """A resemblance needs an example of its sign at least this similar (cosine) to the clause."""
    neighbours: int
    """... and one of this many examples nearest to the clause must be of its sign."""
    explained_share: float
    """A clause counts as explained by the lexicon when its facts cover this share of it."""
    short_clause: int
    """A clause of at most this many words is read in its context: inside a longer span that
    is surely an everyday matter, it resembles nothing on its own."""
    everyday_sure: float
    """How sure the classifier must be that a longer span is an everyday matter."""

    def strength(
        self, urgency: Urgency, probability: float, explained: bool
    ) -> Literal["emergency", "possible", "urgent"] | None:
        """What a resemblance to a sign of ``urgency`` this strong may do: raise to an
        emergency, make a possible emergency (urgent, asked on the keypad), raise to urgent,
        or nothing."""
        if urgency == "emergency":
            strong = self.emergency_explained if explained else self.emergency_unexplained
            if probability >= strong:
                return "emergency"
            return "possible" if probability >= self.possible_emergency else None
        strong = self.urgent_explained if explained else self.urgent_unexplained
        return "urgent" if probability >= strong else None


MatterKind = Literal["symptom", "admin", "talk"]


@dataclass(frozen=True)
class Example:
    category: str
    """A sign id (``E3-face``) or a matter id (``N-cold``)."""
    language: str
    text: str


@dataclass(frozen=True)
class SignBook:
    version: str
    signs: Mapping[str, Sign]
    matters: Mapping[str, MatterKind]
    examples: tuple[Example, ...]
    thresholds: Thresholds
    source_sha256: str
    """Of ``examples.jsonl``: a classifier trained on other examples is stale (labels,
    questions and thresholds in ``signs.yaml`` can change without retraining)."""

    @property
    def categories(self) -> tuple[str, ...]:
        """Every category the classifier tells apart, in a fixed order."""
        return tuple(sorted({e.category for e in self.examples}))


def _texts(where: str, raw: Any, *, required: bool = True) -> dict[str, str]:
    if raw is None and not required:
        return {}
    if not isinstance(raw, dict) or any(not raw.get(lang) for lang in LANGUAGES):
        raise SignsError(f"{where}: needs a text in each of {', '.join(LANGUAGES)}")
    return {str(k): str(v) for k, v in raw.items()}


def load_signs(directory: Path = SIGNS_DIR) -> SignBook:
    """Read and check the signs, the matters and the examples in ``directory``."""
    signs_path, examples_path = directory / "signs.yaml", directory / "examples.jsonl"
    try:
        raw_signs = signs_path.read_bytes()
        raw_examples = examples_path.read_bytes()
        data = yaml.safe_load(raw_signs)
    except (OSError, yaml.YAMLError) as exc:
        raise SignsError(f"signs: cannot read: {exc}") from exc
    if not isinstance(data, dict) or not isinstance(data.get("signs"), dict):
        raise SignsError("signs.yaml: expected 'version', 'signs' and 'matters'")
    signs: dict[str, Sign] = {}
    for sid, entry in data["signs"].items():
        where = f"signs.yaml: {sid}"
        if not isinstance(entry, dict) or entry.get("urgency") not in ("emergency", "urgent"):
            raise SignsError(f"{where}: needs 'urgency: emergency' or 'urgency: urgent'")
        if not entry.get("rule"):
            raise SignsError(f"{where}: needs the 'rule' it resembles")
        ask = _texts(f"{where}: ask", entry.get("ask"), required=entry["urgency"] == "emergency")
        signs[str(sid)] = Sign(
            id=str(sid),
            rule=str(entry["rule"]),
            urgency=entry["urgency"],
            label=_texts(f"{where}: label", entry.get("label")),
            description=_texts(f"{where}: description", entry.get("description")),
            ask=ask or None,
            raises=bool(entry.get("raises", True)),
            needs=entry.get("needs"),
        )
    matters: dict[str, MatterKind] = {}
    for mid, entry in (data.get("matters") or {}).items():
        kind = (entry or {}).get("kind")
        if kind not in ("symptom", "admin", "talk"):
            raise SignsError(f"signs.yaml: {mid}: needs 'kind: symptom', 'admin' or 'talk'")
        matters[str(mid)] = kind
    try:
        th = data["thresholds"]
        thresholds = Thresholds(
            emergency_unexplained=float(th["emergency"]["unexplained"]),
            emergency_explained=float(th["emergency"]["explained"]),
            possible_emergency=float(th["possible_emergency"]),
            urgent_unexplained=float(th["urgent"]["unexplained"]),
            urgent_explained=float(th["urgent"]["explained"]),
            health_talk=float(th["health_talk"]),
            similarity=float(th["similarity"]),
            neighbours=int(th["neighbours"]),
            explained_share=float(th["explained_share"]),
            short_clause=int(th["short_clause"]),
            everyday_sure=float(th["everyday_sure"]),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise SignsError(f"signs.yaml: thresholds: missing or malformed: {exc}") from exc
    known = set(signs) | set(matters)
    examples = []
    for n, line in enumerate(raw_examples.decode("utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            example = Example(str(row["sign"]), str(row["lang"]), str(row["text"]))
        except (ValueError, KeyError, TypeError) as exc:
            raise SignsError(f"examples.jsonl: line {n}: {exc}") from exc
        if example.category not in known:
            raise SignsError(f"examples.jsonl: line {n}: unknown sign or matter {example.category}")
        if example.language not in LANGUAGES:
            raise SignsError(f"examples.jsonl: line {n}: language must be one of {LANGUAGES}")
        examples.append(example)
    missing = sorted(known - {e.category for e in examples})
    if missing:
        raise SignsError(f"examples.jsonl: no examples for {', '.join(missing)}")
    return SignBook(
        version=str(data.get("version", "")),
        signs=signs,
        matters=matters,
        examples=tuple(examples),
        thresholds=thresholds,
        source_sha256=hashlib.sha256(raw_examples).hexdigest(),
    )


@lru_cache(maxsize=1)
def default_signs() -> SignBook:
    """The bundled signs, loaded once per process."""
    return load_signs(SIGNS_DIR)
