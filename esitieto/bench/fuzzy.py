"""How well the fuzzy matcher catches speech-recognition slips, and how often it hits falsely.

Two sides are measured, because a fuzzy matcher is only as good as its guard:

* **recall on slips**: every lexicon example sentence has the words that give its ICPC-2 code
  corrupted the way a recogniser garbles telephone Finnish, Swedish and English (a long vowel
  heard short, a double consonant heard single, voiced for voiceless, ä for a, a letter lost),
  and the code must come back. Variants that still match exactly are counted apart.
* **false hits**: correctly spelt text must give no fuzzy hit at all: the lexicon examples, the
  given vignette texts, a deterministic sample of real words from simplemma's dictionaries, and
  Finnish compounds made of two such words (real words the dictionary does not list, so the
  known-word guard cannot help): every fuzzy hit there is a false hit.

Optionally, transcripts of spoken vignettes (``eval-spoken``'s ``transcripts.jsonl``) are scored
with fuzzy matching on and off against the codes each vignette expects.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

from summarizer.text.extract import summarize
from summarizer.text.lexicon import FindingEntry, Lexicon, SymptomEntry, default_lexicon
from summarizer.text.schemas import CallContext
from summarizer.text.tokens import analyse, normalise

VOWELS = "aeiouyäöå"
_SWAPS = {
    "k": "g", "g": "k", "t": "d", "d": "t", "p": "b", "b": "p", "v": "f", "f": "v",
    "ä": "a", "a": "ä", "ö": "o", "o": "ö", "y": "u", "u": "y", "å": "o",
}  # fmt: skip


def slips(word: str) -> set[str]:
    """One-slip variants of ``word`` a telephone recogniser typically writes (never the word)."""
    w = word.lower()
    out: set[str] = set()
    for i, ch in enumerate(w):
        if i == 0:
            continue  # the first sound is rarely lost, and the matcher requires it
        nxt = w[i + 1] if i + 1 < len(w) else ""
        if ch == nxt:
            out.add(w[:i] + w[i + 1 :])  # long sound heard short: kuume → kume
        elif ch.isalpha() and ch != w[i - 1]:
            out.add(w[:i] + ch + w[i:])  # short sound heard long: yskä → ysskä
        if ch in _SWAPS:
            out.add(w[:i] + _SWAPS[ch] + w[i + 1 :])  # voicing, vowel quality
        if 0 < i < len(w) - 1 and ch in "hjv":
            out.add(w[:i] + w[i + 1 :])  # a weak consonant lost: hengenahdistus → hengenadistus
    out.discard(w)
    return out


@dataclass
class SlipFigures:
    words: int = 0
    variants: int = 0
    still_exact: int = 0
    recovered_fuzzy: int = 0
    recovered_exact_only: int = 0
    wrong_code: int = 0
    misses: list[str] = field(default_factory=list)

    @property
    def recall_fuzzy(self) -> float:
        """Share of real slips (variants no longer matched exactly) that fuzzy matching catches."""
        slips_ = self.variants - self.still_exact
        return round(self.recovered_fuzzy / slips_, 3) if slips_ else 0.0


@dataclass
class FalseHitFigures:
    texts: int = 0
    fuzzy_hits_on_clean_text: int = 0
    dictionary_words: int = 0
    dictionary_false_hits: int = 0
    compounds: int = 0
    compound_false_hits: int = 0
    examples: list[str] = field(default_factory=list)

    @property
    def dictionary_false_hit_rate(self) -> float:
        return (
            round(self.dictionary_false_hits / self.dictionary_words, 5)
            if self.dictionary_words
            else 0.0
        )

    @property
    def compound_false_hit_rate(self) -> float:
        return round(self.compound_false_hits / self.compounds, 5) if self.compounds else 0.0


@dataclass
class SpokenFigures:
    cases: int = 0
    tp_fuzzy: int = 0
    fp_fuzzy: int = 0
    tp_exact: int = 0
    fp_exact: int = 0
    expected: int = 0

    def as_dict(self) -> dict[str, float]:
        def pr(tp: int, fp: int) -> tuple[float, float]:
            p = tp / (tp + fp) if tp + fp else 1.0
            r = tp / self.expected if self.expected else 0.0
            return round(p, 3), round(r, 3)

        p_f, r_f = pr(self.tp_fuzzy, self.fp_fuzzy)
        p_e, r_e = pr(self.tp_exact, self.fp_exact)
        return {
            "cases": self.cases,
            "expected_codes": self.expected,
            "precision_with_fuzzy": p_f,
            "recall_with_fuzzy": r_f,
            "precision_exact_only": p_e,
            "recall_exact_only": r_e,
        }


def _codes(text: str, language: str, *, fuzzy: bool) -> tuple[set[str], set[str]]:
    """(affirmed codes, codes found by a fuzzy match) for one text."""
    s = summarize(text, CallContext(language=language), fuzzy=fuzzy)
    return {x.icpc2 for x in s.symptoms}, {x.icpc2 for x in s.symptoms if x.fuzzy}


def measure_slips(lex: Lexicon) -> SlipFigures:
    fig = SlipFigures()
    for code, entry in lex.symptoms.items():
        for language, sentences in entry.examples.items():
            for sentence in sentences:
                clean = summarize(sentence, CallContext(language=language), fuzzy=False)
                hit = next((s for s in clean.symptoms if s.icpc2 == code), None)
                if hit is None:
                    continue
                text = analyse(normalise(sentence), language)
                for tok in text.tokens:
                    if not (hit.evidence.start <= tok.start < hit.evidence.end):
                        continue
                    if len(tok.lower) < 4 or tok.lower.isdigit():
                        continue
                    fig.words += 1
                    for variant in sorted(slips(tok.lower)):
                        garbled = sentence[: tok.start] + variant + sentence[tok.end :]
                        fig.variants += 1
                        exact, _ = _codes(garbled, language, fuzzy=False)
                        if code in exact:
                            fig.still_exact += 1
                            continue
                        with_fuzzy, _ = _codes(garbled, language, fuzzy=True)
                        if code in with_fuzzy:
                            fig.recovered_fuzzy += 1
                        elif len(fig.misses) < 40:
                            fig.misses.append(f"{code} {language}: {tok.lower} → {variant}")
                        if with_fuzzy - exact - {code}:
                            fig.wrong_code += 1
    return fig


def dictionary_sample(language: str, n: int, seed: int = 7) -> list[str]:
    """``n`` real word forms of ``language`` from simplemma's dictionary (deterministic)."""
    from simplemma.strategies.dictionaries import DefaultDictionaryFactory

    forms = [
        w
        for w in DefaultDictionaryFactory().get_dictionary(language)
        if w.isalpha() and w.islower() and len(w) >= 5
    ]
    forms.sort()
    return random.Random(seed).sample(forms, min(n, len(forms)))


def measure_false_hits(
    lex: Lexicon, texts: Iterable[tuple[str, str]], words_per_language: int
) -> FalseHitFigures:
    fig = FalseHitFigures()
    for text, language in texts:
        fig.texts += 1
        _, fuzzy_codes = _codes(text, language, fuzzy=True)
        fig.fuzzy_hits_on_clean_text += len(fuzzy_codes)
        if fuzzy_codes and len(fig.examples) < 40:
            fig.examples.append(f"text {language}: {sorted(fuzzy_codes)}")
    for language in ("fi", "sv", "en"):
        words = dictionary_sample(language, words_per_language)
        fig.dictionary_words += len(words)
        fig.dictionary_false_hits += _fuzzy_hits(words, language, fig.examples)
    fi_words = dictionary_sample("fi", 2 * words_per_language, seed=11)
    compounds = [a + b for a, b in zip(fi_words[::2], fi_words[1::2], strict=False)]
    fig.compounds = len(compounds)
    fig.compound_false_hits = _fuzzy_hits(compounds, "fi", fig.examples)
    return fig


def _fuzzy_hits(words: list[str], language: str, examples: list[str]) -> int:
    hits = 0
    for chunk in _chunks(words, 50):
        # one word per clause, so a hit names one word
        s = summarize(". ".join(chunk) + ".", CallContext(language=language), fuzzy=True)
        for sym in s.symptoms:
            if sym.fuzzy:
                hits += 1
                if len(examples) < 40:
                    examples.append(f"{language}: {sym.evidence.text} → {sym.icpc2}")
    return hits


def measure_spoken(cases: dict[str, dict], transcripts: Path) -> SpokenFigures:
    """``transcripts``: eval-spoken's transcripts.jsonl, or the folder that holds it."""
    fig = SpokenFigures()
    if transcripts.is_dir():
        transcripts = transcripts / "transcripts.jsonl"
    for line in transcripts.read_text("utf-8").splitlines():
        if not line.strip():
            continue
        row = json.loads(line)
        case = cases.get(row["id"])
        if case is None:
            continue
        language = case.get("lang", "fi")
        expected = set(case["expect"].get("icpc2", []))
        optional = set(case["expect"].get("icpc2_optional", []))
        fig.cases += 1
        fig.expected += len(expected)
        for fuzzy in (True, False):
            got, _ = _codes(row["heard"], language, fuzzy=fuzzy)
            tp = len(got & expected)
            fp = len(got - expected - optional)
            if fuzzy:
                fig.tp_fuzzy, fig.fp_fuzzy = fig.tp_fuzzy + tp, fig.fp_fuzzy + fp
            else:
                fig.tp_exact, fig.fp_exact = fig.tp_exact + tp, fig.fp_exact + fp
    return fig


def _chunks(items: list[str], size: int) -> Iterator[list[str]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def evaluate(
    cases_path: Path | None,
    transcripts: Path | None = None,
    words_per_language: int = 5000,
) -> dict[str, object]:
    """All figures as one JSON-ready mapping."""
    lex = default_lexicon()
    cases: dict[str, dict] = {}
    if cases_path is not None:
        for line in cases_path.read_text("utf-8").splitlines():
            if line.strip():
                row = json.loads(line)
                cases[row["id"]] = row
    entries: list[SymptomEntry | FindingEntry] = [*lex.symptoms.values(), *lex.findings.values()]
    examples = [
        (sentence, language)
        for entry in entries
        for language, sentences in entry.examples.items()
        for sentence in sentences
    ]
    clean = examples + [(c["text"], c.get("lang", "fi")) for c in cases.values()]
    slip = measure_slips(lex)
    false = measure_false_hits(lex, clean, words_per_language)
    out: dict[str, object] = {
        "slips": {
            **{k: v for k, v in asdict(slip).items() if k != "misses"},
            "recall_fuzzy": slip.recall_fuzzy,
            "misses_sample": slip.misses[:15],
        },
        "false_hits": {
            **{k: v for k, v in asdict(false).items() if k != "examples"},
            "dictionary_false_hit_rate": false.dictionary_false_hit_rate,
            "compound_false_hit_rate": false.compound_false_hit_rate,
            "examples": false.examples[:20],
        },
    }
    if transcripts is not None and cases:
        out["spoken"] = measure_spoken(cases, transcripts).as_dict()
    return out
