"""The closed word classes of ``lexicon/grammar.yaml``, loaded once per process.

Kept apart from the lexicon proper because the tokeniser and the number reader need them
before any term can be matched (and the lexicon's term index needs the tokeniser).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

GRAMMAR_FILE = Path(__file__).resolve().parent / "lexicon" / "grammar.yaml"


class GrammarError(ValueError):
    """``grammar.yaml`` is malformed; the message names the section."""


@dataclass(frozen=True)
class Grammar:
    clause_break_words: frozenset[str]
    negator_forms: dict[str, dict[str, str]]
    language_markers: dict[str, frozenset[str]]
    number_parts: tuple[tuple[str, int, str], ...]
    """(part, value, kind), longest part first; kind: unit, ten, teen, hundred."""
    half_words: frozenset[str]
    half_articles: frozenset[str]
    decimal_joiners: frozenset[str]
    age_word: re.Pattern[str]
    not_temperature_after: frozenset[str]


def _words(section: str, raw: Any) -> frozenset[str]:
    if not isinstance(raw, list) or any(isinstance(w, bool) for w in raw):
        raise GrammarError(f"grammar.yaml: {section}: a list of quoted words is needed")
    return frozenset(str(w).lower() for w in raw)


def load_grammar(path: Path = GRAMMAR_FILE) -> Grammar:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        numbers = data["numbers"]
        units = {str(k): int(v) for k, v in numbers["units"].items()}
        parts = (
            [(w, v, "unit") for w, v in units.items()]
            + [(str(w), 10, "ten") for w in numbers["tens"]]
            + [(str(w), 10, "teen") for w in numbers["teens"]]
            + [(str(w), 100, "hundred") for w in numbers["hundreds"]]
        )
        endings = "|".join(re.escape(str(e)) + r"\w*" for e in data["age_word_endings"])
        return Grammar(
            clause_break_words=_words("clause_break_words", data["clause_break_words"]),
            negator_forms={
                str(lang): {str(k): str(v) for k, v in forms.items()}
                for lang, forms in data["negator_forms"].items()
            },
            language_markers={
                str(lang): _words(f"language_markers.{lang}", words)
                for lang, words in data["language_markers"].items()
            },
            number_parts=tuple(sorted(parts, key=lambda p: -len(p[0]))),
            half_words=_words("numbers.half_words", numbers["half_words"]),
            half_articles=_words("numbers.half_articles", numbers["half_articles"]),
            decimal_joiners=_words("numbers.decimal_joiners", numbers["decimal_joiners"]),
            age_word=re.compile(rf"^(\d+|[a-zåäö]+?)-?(?:{endings})$"),
            not_temperature_after=_words("not_temperature_after", data["not_temperature_after"]),
        )
    except GrammarError:
        raise
    except (OSError, yaml.YAMLError, KeyError, TypeError, AttributeError, ValueError) as exc:
        raise GrammarError(f"grammar.yaml: missing or malformed section: {exc}") from exc


@lru_cache(maxsize=1)
def grammar() -> Grammar:
    """The bundled grammar, loaded once per process."""
    return load_grammar()
