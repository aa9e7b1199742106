"""Lexicon terms compiled to matchers over :class:`summarizer.text.Text`.

Term syntax (documented for clinicians at the top of ``lexicon/symptoms.yaml``)::

    term    := group (" + " group)*        groups: same clause, any order, close together
    group   := phrase ("|" phrase)*        alternatives
    phrase  := word (" " word)*            consecutive words
    word    := "stem*" | "*end" | "*part*" | "exact"

A word matches a token when the pattern matches the token as said or its dictionary form.
Speech-recognition slips are caught by a guarded fuzzy match on the words' *sound keys*
(:func:`sound_key`: doubled letters collapsed, voiced and voiceless stops, front and back vowels
folded), so "kumetta", "lampöä" and "febber" still say fever. Long stems also allow one more
edit ("hengenahdistus" heard as "hengenahdistos"). The guard: a word that is in the language's
dictionary is taken as said (the recogniser wrote a real word, not a slip), the first sound must
agree, and stems under four letters never match fuzzily. ``esitieto eval-fuzzy`` measures both
the slips caught and the false hits.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from summarizer.text.tokens import Text, known_word, too_long

GROUP_WINDOW = 7
"""How many tokens apart the groups of a ``a + b`` term may be."""

FUZZY_MIN_STEM = 4
"""Stems shorter than this are never fuzzy-matched: too many words sound alike."""

FUZZY_EDIT_MIN_STEM = 7
"""Stems this long may also differ by one edit beyond the sound key (short ones may not)."""

_SOUND_FOLD = str.maketrans({"g": "k", "d": "t", "b": "p", "v": "f", "w": "f", "z": "s",
                             "c": "k", "q": "k", "ä": "a", "å": "o", "ö": "o", "y": "u",
                             "é": "e"})  # fmt: skip


def sound_key(word: str) -> str:
    """What a word sounds like to a telephone recogniser: length and voicing folded.

    "kuumetta" → "kumeta", "lämpöä" → "lampoa", "feber" → "fefer": a long vowel heard short,
    a double consonant heard single, "d" for "t" or "a" for "ä" give the same key.
    """
    folded = word.lower().translate(_SOUND_FOLD)
    out: list[str] = []
    for ch in folded:
        if not out or out[-1] != ch:
            out.append(ch)
    return "".join(out)


@dataclass(frozen=True, slots=True, eq=False)
class WordPattern:
    """One word of a term. Instances are interned (:func:`_word`), so identity is equality and
    the per-token lookups hash at C speed."""

    kind: str  # exact | prefix | suffix | infix
    value: str
    fuzzy_key: str | None = field(init=False, default=None)
    """The sound key fuzzy matching compares, or None when this word is never fuzzy."""

    def __post_init__(self) -> None:
        fuzzy = (
            self.kind in ("prefix", "exact")
            and len(self.value) >= FUZZY_MIN_STEM
            and " " not in self.value
            and self.value.isalpha()
        )
        object.__setattr__(self, "fuzzy_key", sound_key(self.value) if fuzzy else None)

    def matches_form(self, form: str) -> bool:
        v = self.value
        if self.kind == "exact":
            return form == v
        if self.kind == "prefix":
            return form.startswith(v)
        if self.kind == "suffix":
            return form.endswith(v) and len(form) > len(v)
        return v in form

    def matches_fuzzy(self, form: str, heard: str | None = None) -> bool:
        """``form`` sounds like this word, or (long stems) is one slip away from sounding so.
        ``heard`` is ``sound_key(form)`` when the caller has it already."""
        key = self.fuzzy_key
        if key is None or not form:
            return False
        heard = heard or sound_key(form)
        if heard[0] != key[0]:
            return False
        if self.kind == "exact":
            if heard == key:
                return True
            return len(self.value) >= FUZZY_EDIT_MIN_STEM and fuzzy_equal(heard, key)
        if heard.startswith(key):
            return True
        if len(self.value) < FUZZY_EDIT_MIN_STEM:
            return False
        n = len(key)
        return any(fuzzy_equal(heard[:k], key) for k in (n - 1, n + 1) if k <= len(heard))


class PatternIndex:
    """Finds, for a text, every token each word pattern matches, with dictionary lookups.

    Checking every pattern against every token is too slow for hundreds of summaries a second;
    instead each token's prefixes, suffixes and substrings are looked up in tables built once.
    """

    def __init__(self, patterns: Iterable[WordPattern]) -> None:
        self.by_kind: dict[str, dict[str, list[WordPattern]]] = {
            "exact": {}, "prefix": {}, "suffix": {}, "infix": {}
        }  # fmt: skip
        self.fuzzy_by_letter: dict[str, list[WordPattern]] = {}
        for p in set(patterns):
            self.by_kind[p.kind].setdefault(p.value, []).append(p)
            key = p.fuzzy_key
            if key is not None:
                self.fuzzy_by_letter.setdefault(key[0], []).append(p)
        self.has_infix = bool(self.by_kind["infix"])
        # A pattern can only match a piece of a word as long as itself: looking up longer
        # pieces finds nothing, so each word costs (its length × the longest pattern), not
        # its length squared (a 20,000-letter "word" must not stall the server).
        self.longest = {k: max(map(len, table), default=0) for k, table in self.by_kind.items()}

    def index(self, text: Text, *, fuzzy: bool = False) -> TextIndex:
        exact: dict[WordPattern, set[int]] = {}
        approx: dict[WordPattern, set[int]] = {}
        ex, pre, suf, inf = (self.by_kind[k] for k in ("exact", "prefix", "suffix", "infix"))
        for tok in text.tokens:
            if too_long(tok.lower):
                continue  # not a word anybody said (``tokens.LONGEST_WORD``)
            found: set[WordPattern] = set()
            whole = False  # some pattern is this very word, not only a stem of it
            for form in {tok.lower, tok.lemma}:
                whole = whole or form in ex
                found.update(ex.get(form, ()))
                n = len(form)
                for k in range(1, min(n, self.longest["prefix"]) + 1):
                    found.update(pre.get(form[:k], ()))
                for k in range(max(1, n - self.longest["suffix"]), n):
                    found.update(suf.get(form[k:], ()))
                if self.has_infix:
                    longest = self.longest["infix"]
                    for a in range(n):
                        for b in range(a + 1, min(n, a + longest) + 1):
                            found.update(inf.get(form[a:b], ()))
            for p in found:
                exact.setdefault(p, set()).add(tok.index)
            if (
                fuzzy
                and not whole
                and len(tok.lower) >= FUZZY_MIN_STEM
                and tok.lower.isalpha()
                and not known_word(tok.lower, text.language)
            ):
                heard = sound_key(tok.lower)
                for p in self.fuzzy_by_letter.get(heard[0], ()):
                    if p in found:
                        continue
                    if p.matches_fuzzy(tok.lower, heard) and not _begins_with_real_word(
                        tok.lower, len(p.value), text.language
                    ):
                        approx.setdefault(p, set()).add(tok.index)
        return TextIndex(text, exact, approx)


def _begins_with_real_word(word: str, stem_length: int, language: str) -> bool:
    """A compound whose first part, about as long as the stem, is a real word: "huumaus-"
    is not a slip for "huimaus", "kuristus-" not for "kouristus"."""
    return any(
        known_word(word[:k], language)
        for k in range(max(FUZZY_MIN_STEM, stem_length - 2), min(len(word) - 1, stem_length + 3))
    )


@dataclass(slots=True)
class TextIndex:
    text: Text
    exact: dict[WordPattern, set[int]]
    approx: dict[WordPattern, set[int]]
    present: set[WordPattern] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.present = set(self.exact) | set(self.approx)

    def positions(self, word: WordPattern) -> set[int]:
        return self.exact.get(word, _EMPTY)

    def fuzzy_positions(self, word: WordPattern) -> set[int]:
        return self.approx.get(word, _EMPTY)


_EMPTY: set[int] = set()


def fuzzy_equal(a: str, b: str) -> bool:
    """Edit distance at most one (substitution, insertion, deletion or adjacent swap)."""
    if a == b:
        return True
    la, lb = len(a), len(b)
    if abs(la - lb) > 1:
        return False
    i = 0
    while i < min(la, lb) and a[i] == b[i]:
        i += 1
    if la == lb:
        if a[i + 1 :] == b[i + 1 :]:
            return True
        return i + 1 < la and a[i] == b[i + 1] and a[i + 1] == b[i] and a[i + 2 :] == b[i + 2 :]
    if la > lb:
        return a[i + 1 :] == b[i:]
    return a[i:] == b[i + 1 :]


_INTERNED: dict[tuple[str, str], WordPattern] = {}


def _word(raw: str) -> WordPattern:
    w = raw.strip().lower()
    if len(w) > 2 and w.startswith("*") and w.endswith("*"):
        kind, value = "infix", w[1:-1]
    elif w.startswith("*") and len(w) > 1:
        kind, value = "suffix", w[1:]
    elif w.endswith("*") and len(w) > 1:
        kind, value = "prefix", w[:-1]
    else:
        kind, value = "exact", w
    return _INTERNED.setdefault((kind, value), WordPattern(kind, value))


@dataclass(frozen=True, slots=True)
class Phrase:
    words: tuple[WordPattern, ...]
    source: str

    def starts(self, idx: TextIndex) -> list[tuple[int, int, bool]]:
        """(first, last, fuzzy) token positions where the phrase occurs."""
        tokens = idx.text.tokens
        out: list[tuple[int, int, bool]] = []
        first = self.words[0]
        candidates = [(i, False) for i in idx.positions(first)]
        if len(self.words) == 1:
            candidates += [(i, True) for i in idx.fuzzy_positions(first)]
        for i, fz in candidates:
            last = i + len(self.words) - 1
            if last >= len(tokens) or tokens[last].clause != tokens[i].clause:
                continue
            if all(i + k in idx.positions(w) for k, w in enumerate(self.words[1:], 1)):
                out.append((i, last, fz))
        return out


@dataclass(frozen=True, slots=True)
class Hit:
    first: int
    last: int
    fuzzy: bool
    phrases: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Term:
    source: str
    groups: tuple[tuple[Phrase, ...], ...]
    anchors: tuple[frozenset[WordPattern], ...] = ()
    """Per group, the first words of its phrases: a term none of whose anchors occur in a text
    is skipped with one set operation (most terms, for most texts)."""

    def hits(self, idx: TextIndex) -> list[Hit]:
        """Every place the term occurs, left to right, without overlaps."""
        if any(a.isdisjoint(idx.present) for a in self.anchors):
            return []
        tokens = idx.text.tokens
        per_group: list[list[tuple[int, int, str, bool]]] = []
        for group in self.groups:
            found = [
                (a, b, phrase.source, fz) for phrase in group for a, b, fz in phrase.starts(idx)
            ]
            if not found:
                return []
            found.sort(key=lambda f: (f[0], -f[1]))
            per_group.append(found)
        if len(per_group) == 1:
            return [Hit(a, b, fz, (src,)) for a, b, src, fz in _non_overlapping(per_group[0])]
        hits: list[Hit] = []
        used_until = -1
        for a0, b0, src0, fz0 in per_group[0]:
            if a0 <= used_until:
                continue
            parts = [(a0, b0, src0, fz0)]
            for other in per_group[1:]:
                best = None
                for a, b, src, fz in other:
                    if tokens[a].clause != tokens[a0].clause:
                        continue
                    if _overlaps((a, b), (a0, b0)):
                        continue
                    dist = min(abs(a - b0), abs(a0 - b))
                    if dist <= GROUP_WINDOW and (best is None or dist < best[0]):
                        best = (dist, (a, b, src, fz))
                if best is None:
                    break
                parts.append(best[1])
            else:
                first = min(p[0] for p in parts)
                last = max(p[1] for p in parts)
                hits.append(Hit(first, last, any(p[3] for p in parts), tuple(p[2] for p in parts)))
                used_until = last
        return hits


def _overlaps(x: tuple[int, int], y: tuple[int, int]) -> bool:
    return x[0] <= y[1] and y[0] <= x[1]


def _non_overlapping(
    found: Iterable[tuple[int, int, str, bool]],
) -> list[tuple[int, int, str, bool]]:
    out: list[tuple[int, int, str, bool]] = []
    for item in sorted(found, key=lambda f: (f[0], -f[1])):
        if out and item[0] <= out[-1][1]:
            continue
        out.append(item)
    return out


def compile_term(source: str) -> Term:
    """Compile one term; raises ValueError on an empty group or word."""
    groups: list[tuple[Phrase, ...]] = []
    for raw_group in source.split(" + "):
        phrases: list[Phrase] = []
        for raw_phrase in raw_group.split("|"):
            words = tuple(_word(w) for w in raw_phrase.split())
            if not words or any(not w.value for w in words):
                raise ValueError(f"empty word or phrase in term {source!r}")
            phrases.append(Phrase(words, raw_phrase.strip()))
        groups.append(tuple(phrases))
    anchors = tuple(frozenset(p.words[0] for p in group) for group in groups)
    return Term(source=source, groups=tuple(groups), anchors=anchors)


@dataclass(slots=True)
class TermSet:
    """All the ways of saying one thing."""

    terms: list[Term] = field(default_factory=list)
    unless: list[Term] = field(default_factory=list)
    """Longer expressions that contain a term's words but say something else ("blood
    pressure" is not blood seen): a hit that lies inside one of them is dropped."""

    @classmethod
    def of(cls, sources: Iterable[str], unless: Iterable[str] = ()) -> TermSet:
        return cls([compile_term(s) for s in sources], [compile_term(s) for s in unless])

    def hits(self, idx: TextIndex) -> list[Hit]:
        out: list[Hit] = []
        for term in self.terms:
            out.extend(term.hits(idx))
        if out and self.unless:
            spans = [(h.first, h.last) for t in self.unless for h in t.hits(idx)]
            out = [h for h in out if not any(a <= h.first and h.last <= b for a, b in spans)]
        return out

    def patterns(self) -> Iterable[WordPattern]:
        for term in [*self.terms, *self.unless]:
            for group in term.groups:
                for phrase in group:
                    yield from phrase.words
