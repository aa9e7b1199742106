"""Fuzzy matching of misheard words: what it catches, and the guard against false hits
(``esitieto eval-fuzzy`` measures it at scale: ``tests/esitieto/test_bench_fuzzy.py``)."""

from __future__ import annotations

import pytest

from summarizer.text.extract import summarize
from summarizer.text.matching import sound_key
from summarizer.text.schemas import CallContext


def fuzzy_codes(text: str, language: str = "fi") -> dict[str, str]:
    s = summarize(text, CallContext(language=language))
    return {x.icpc2: x.evidence.text for x in s.symptoms if x.fuzzy}


def test_sound_key_folds_length_and_voicing() -> None:
    assert sound_key("kuumetta") == sound_key("kumetta") == "kumeta"
    assert sound_key("lämpöä") == sound_key("lampoa")
    assert sound_key("feber") == sound_key("fepper")
    assert sound_key("yskää") != sound_key("kuume")


@pytest.mark.parametrize(
    ("heard", "language", "code"),
    [
        ("Minulla on ollut kumetta kaksi päivää.", "fi", "A03"),  # long vowel heard short
        ("Lapsella on lampöä.", "fi", "A03"),  # ä heard as a
        ("Mulla on uskään ollut.", "fi", "R05"),  # y heard as u
        ("Jag har haft fepper i två dagar.", "sv", "A03"),  # voicing and length
        ("I have had a feever since Monday.", "en", "A03"),  # long vowel
        ("Minulla on hengenahistusta.", "fi", "R02"),  # a weak consonant lost, long stem
    ],
)
def test_a_misheard_word_is_caught_and_flagged(heard: str, language: str, code: str) -> None:
    assert code in fuzzy_codes(heard, language)


@pytest.mark.parametrize(
    ("text", "language"),
    [
        ("Minulla on kysymys laskusta.", "fi"),  # short, unrelated words
        ("Sää on kuuma ja kumea ääni kuului.", "fi"),  # real words that sound like kuume
        ("Huumausainepoliisi soitti eilen.", "fi"),  # a compound starting with a real word
        ("Kuristusote oli tiukka judossa.", "fi"),
        ("The fewer the better.", "en"),
        ("Jag vill boka en tid.", "sv"),
    ],
)
def test_real_words_are_not_turned_into_symptoms(text: str, language: str) -> None:
    assert fuzzy_codes(text, language) == {}


def test_a_stem_of_another_entry_does_not_hide_a_misheard_word() -> None:
    """ "jäykä" begins with the stem "jäyk*" of a stiff jaw, and is still heard as the stiff
    neck's "jäykkä": an entry added for one sign must not blind fuzzy matching for another."""
    from summarizer.text.matching import PatternIndex, TermSet
    from summarizer.text.tokens import analyse, normalise

    stem_only = TermSet.of(["leuka + jäyk*"])
    neck = TermSet.of(["niska* + jäykkä"])
    index = PatternIndex([*stem_only.patterns(), *neck.patterns()])
    text = analyse(normalise("Niska on ihan jäykä."), "fi")
    hits = neck.hits(index.index(text, fuzzy=True))
    assert len(hits) == 1 and hits[0].fuzzy
    assert not neck.hits(index.index(text, fuzzy=False))
