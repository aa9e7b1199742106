"""The matcher's cost: a word costs lookups in proportion to its length, and a "word" longer
than any word anybody says costs none (a 20,000-letter word once stalled the server)."""

from __future__ import annotations

from typing import Any

from summarizer.text.extract import summarize
from summarizer.text.lexicon import default_lexicon
from summarizer.text.matching import PatternIndex, TermSet
from summarizer.text.schemas import CallContext
from summarizer.text.tokens import LONGEST_WORD, analyse, normalise


class CountingTable(dict[str, Any]):
    lookups = 0

    def get(self, key: str, default: Any = None) -> Any:
        CountingTable.lookups += 1
        return super().get(key, default)


def _lookups(index: PatternIndex, text: str) -> int:
    saved = index.by_kind
    index.by_kind = {kind: CountingTable(table) for kind, table in saved.items()}
    CountingTable.lookups = 0
    try:
        index.index(analyse(normalise(text), "fi"), fuzzy=True)
    finally:
        index.by_kind = saved
    return CountingTable.lookups


def test_a_word_costs_lookups_in_proportion_to_its_length() -> None:
    index = PatternIndex(TermSet.of(["ab*", "*cd*", "*ef", "kuume"]).patterns())
    for n in (16, 32, LONGEST_WORD):
        # every piece of the word is looked up only as long as the longest pattern (2 letters
        # here): a few lookups a letter, where every substring would be n²/2
        assert _lookups(index, "x" * n) <= 2 * (6 * n + 2)  # said and dictionary form


def test_a_word_longer_than_anybody_says_is_not_looked_up_and_reads_as_nothing() -> None:
    monster = "kuume" * 4000
    assert _lookups(default_lexicon().index, monster) == 0
    summary = summarize(monster, CallContext(language="fi"))
    assert summary.symptoms == [] and summary.findings == []


def test_the_longest_real_words_are_still_read() -> None:
    compound = ("kuume" + "mittarilukema" * 5)[:LONGEST_WORD]
    summary = summarize(f"Minulla on {compound}.", CallContext(language="fi"))
    assert "A03" in {s.icpc2 for s in summary.symptoms}
