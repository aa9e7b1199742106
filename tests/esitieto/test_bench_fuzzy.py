"""Fuzzy matching of misheard words: what it catches, and the guard against false hits."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from esitieto.bench.fuzzy import evaluate, measure_spoken, slips
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


def test_slips_are_typical_recogniser_errors_and_never_the_word() -> None:
    variants = slips("kuumetta")
    assert {"kumetta", "kuumeta", "kuumedda"} & variants == {"kumetta", "kuumeta"}
    assert "kuumedta" in variants  # t heard as d
    assert "kuumetta" not in variants
    assert all(v[0] == "k" for v in variants)


def test_evaluation_measures_recall_and_false_hits(tmp_path: Path) -> None:
    cases = tmp_path / "cases.jsonl"
    case = {
        "id": "x1",
        "lang": "fi",
        "text": "Minulla on ollut kuumetta ja yskää kaksi päivää.",
        "expect": {"icpc2": ["A03", "R05"]},
    }
    cases.write_text(json.dumps(case, ensure_ascii=False) + "\n", "utf-8")
    heard = tmp_path / "transcripts.jsonl"
    row = {"id": "x1", "heard": "Minulla on ollut kumetta ja uskää kaksi päivää."}
    heard.write_text(json.dumps(row, ensure_ascii=False) + "\n", "utf-8")

    figures = evaluate(cases, heard, words_per_language=300)
    slip = figures["slips"]
    false = figures["false_hits"]
    assert isinstance(slip, dict) and isinstance(false, dict)
    assert slip["variants"] > 1000 and slip["recall_fuzzy"] > 0.4
    assert false["fuzzy_hits_on_clean_text"] == 0  # correctly spelt text never fuzzy-matches
    assert false["dictionary_words"] == 900 and false["dictionary_false_hit_rate"] < 0.01
    assert false["compound_false_hit_rate"] < 0.02

    spoken = measure_spoken({"x1": case}, heard).as_dict()
    assert spoken["recall_with_fuzzy"] == 1.0 and spoken["recall_exact_only"] == 0.0
