"""Transcript text as tokens with character offsets, clauses, and dictionary forms.

Offsets are kept from the first step so every fact the extractor finds can point at the exact
words the caller said (``transcript[start:end]``). Dictionary forms (lemmas) come from
simplemma's Finnish, Swedish and English dictionaries, so "kuumetta", "kuumeen" and "kuume"
are one word to the lexicon without suffix rules of our own.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache

import simplemma

from summarizer.text.grammar import grammar

_TOKEN = re.compile(r"\d+(?:[.,]\d+)?|\w+(?:['’]\w+)*", re.UNICODE)
_CLAUSE_BREAK = re.compile(r"(?<!\.)\.(?!\.)|[!?;:\n]|,(?!\d)")
"""Clause breaks; a run of dots ("En... saa... henkeä...") is a hesitation, not a break."""
SUPPORTED_LANGUAGES = ("fi", "sv", "en")


@dataclass(frozen=True, slots=True)
class Token:
    index: int
    text: str
    lower: str
    lemma: str
    start: int
    end: int
    clause: int
    sentence: int

    @property
    def forms(self) -> tuple[str, str]:
        return (self.lower, self.lemma)


@dataclass(frozen=True, slots=True)
class Text:
    raw: str
    language: str
    tokens: tuple[Token, ...]

    def span(self, first: int, last: int) -> tuple[int, int]:
        """Character offsets from token ``first`` to token ``last`` (inclusive)."""
        return self.tokens[first].start, self.tokens[last].end


def normalise(raw: str) -> str:
    """NFC, so "ä" typed two ways is one letter; offsets stay valid for the returned string."""
    return unicodedata.normalize("NFC", raw)


LONGEST_WORD = 64
"""Letters in the longest word read as a word. Finnish compounds reach about 60 letters
("lentokonesuihkuturbiinimoottoriapumekaanikkoaliupseerioppilas"); anything longer is not
speech, and looking it up costs its length squared, so it is kept as it is and matches
nothing."""


def too_long(word: str) -> bool:
    return len(word) > LONGEST_WORD


@lru_cache(maxsize=65536)
def lemma(word: str, language: str) -> str:
    """Dictionary form of ``word`` (lower case); the word itself when unknown."""
    if word.isdigit() or too_long(word):
        return word.lower()
    try:
        return str(simplemma.lemmatize(word, lang=language)).lower()
    except ValueError:  # a language simplemma does not know
        return word


@lru_cache(maxsize=65536)
def known_word(word: str, language: str) -> bool:
    """Whether ``word`` is a form in the language's dictionary (a real word, not a slip)."""
    if too_long(word):
        return False
    try:
        return bool(simplemma.is_known(word, lang=language))
    except ValueError:
        return False


def analyse(raw: str, language: str) -> Text:
    """Tokenise ``raw`` into tokens that know their clause and sentence."""
    lang = language if language in SUPPORTED_LANGUAGES else "fi"
    words = grammar()
    fused = words.negator_forms.get(lang, {})
    breaks = [m.start() for m in _CLAUSE_BREAK.finditer(raw)]
    sentence_breaks = [m.start() for m in re.finditer(r"(?<!\.)\.(?!\.)|[!?\n]", raw)]
    tokens: list[Token] = []
    clause = sentence = 0
    bi = si = 0
    for m in _TOKEN.finditer(raw):
        while bi < len(breaks) and breaks[bi] < m.start():
            clause += 1
            bi += 1
        while si < len(sentence_breaks) and sentence_breaks[si] < m.start():
            sentence += 1
            si += 1
        word = m.group()
        lower = word.lower()
        if lower in words.clause_break_words:
            clause += 1
        tokens.append(
            Token(
                index=len(tokens),
                text=word,
                lower=lower,
                lemma=fused.get(lower) or lemma(lower, lang),
                start=m.start(),
                end=m.end(),
                clause=clause,
                sentence=sentence,
            )
        )
    return Text(raw=raw, language=lang, tokens=tuple(tokens))


@dataclass(frozen=True, slots=True)
class Span:
    """A stretch of the caller's words: ``raw[start:end] == text``."""

    start: int
    end: int
    text: str


LONG_CLAUSE = 14
"""A clause longer than this (a transcript with no punctuation) is also read in windows."""
WINDOW, STRIDE = 10, 5
SHORT_CLAUSE = 3


@dataclass(frozen=True, slots=True)
class Clause:
    span: Span
    words: int
    windows: tuple[Span, ...] = ()
    """Overlapping windows of words, for a clause too long to read as one."""


def clauses(t: Text) -> list[Clause]:
    """The caller's words as clauses, as the detector by meaning reads them: a clause of one or
    two words joins the next one, and a long unpunctuated clause also comes in windows."""
    groups: dict[int, list[Token]] = {}
    for tok in t.tokens:
        groups.setdefault(tok.clause, []).append(tok)
    merged: list[list[Token]] = []
    for group in (groups[k] for k in sorted(groups)):
        if merged and len(merged[-1]) < SHORT_CLAUSE:
            merged[-1] = merged[-1] + group
        else:
            merged.append(group)
    if len(merged) > 1 and len(merged[-1]) < SHORT_CLAUSE:
        tail = merged.pop()
        merged[-1] = merged[-1] + tail

    def span(first: Token, last: Token) -> Span:
        return Span(first.start, last.end, t.raw[first.start : last.end])

    out = []
    for g in merged:
        windows: tuple[Span, ...] = ()
        if len(g) > LONG_CLAUSE:
            windows = tuple(
                span(g[i], g[min(i + WINDOW, len(g)) - 1])
                for i in range(0, len(g) - STRIDE, STRIDE)
            )
        out.append(Clause(span(g[0], g[-1]), len(g), windows))
    return out


def joined(raw: str, first: Span, last: Span) -> Span:
    """The words from ``first`` to ``last`` as one span."""
    return Span(first.start, last.end, raw[first.start : last.end])
