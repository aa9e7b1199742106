"""Spoken numbers in Finnish, Swedish and English ("kolmekymmentäkahdeksan", "trettioåtta").

Speech recognition writes numbers either as digits or as words, often in spoken forms
("kaks", "kolkytkaheksan") and, in Finnish, inflected ("kolmen", "viiden"). A word number is
read by splitting it into known parts (``lexicon/grammar.yaml``), longest first, so compounds
need no list of their own.
"""

from __future__ import annotations

from functools import lru_cache

from summarizer.text.grammar import grammar


def _decompose(word: str) -> list[tuple[int, str]] | None:
    """Split ``word`` into number parts (longest match first, with backtracking)."""
    if not word:
        return []
    for part, value, kind in grammar().number_parts:
        if word.startswith(part):
            rest = _decompose(word[len(part) :].lstrip("-"))
            if rest is not None:
                return [(value, kind), *rest]
    return None


@lru_cache(maxsize=4096)
def word_number(word: str) -> int | None:
    """The integer a spoken number word stands for, or None ("kolmekymmentäkahdeksan" → 38)."""
    w = word.lower()
    if w.isdigit():
        return int(w)
    parts = _decompose(w)
    if not parts:
        return None
    total = 0
    pending = 0
    for value, kind in parts:
        if kind == "unit":
            if pending and value < 10 and pending < 10:
                return None  # "kaksikolme" is not a number
            pending += value
        elif kind == "ten":
            total += (pending or 1) * 10
            pending = 0
        elif kind == "teen":
            if not pending or pending >= 10:
                return None
            total += pending + 10
            pending = 0
        elif kind == "hundred":
            total += (pending or 1) * 100
            pending = 0
    return total + pending


def digits_value(token: str) -> float | None:
    """A number written with digits, with a comma or point decimal ("38,5" → 38.5)."""
    t = token.replace(",", ".")
    try:
        return float(t)
    except ValueError:
        return None
