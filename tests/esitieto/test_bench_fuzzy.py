"""``esitieto eval-fuzzy``: the slips it generates and the figures it measures."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from esitieto.bench.fuzzy import evaluate, measure_spoken, slips


def test_slips_are_typical_recogniser_errors_and_never_the_word() -> None:
    variants = slips("kuumetta")
    assert {"kumetta", "kuumeta", "kuumedda"} & variants == {"kumetta", "kuumeta"}
    assert "kuumedta" in variants  # t heard as d
    assert "kuumetta" not in variants
    assert all(v[0] == "k" for v in variants)


@pytest.mark.slow
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
