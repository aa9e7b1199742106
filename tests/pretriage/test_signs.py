"""The signs data: complete for policy version 2, in three languages, and the bundled classifier
trained on exactly these examples for the bundled embedding model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pretriage.detector import CLASSIFIER_FILE, Classifier, E5Embedder
from pretriage.ruleset import default_ruleset
from pretriage.signs import LANGUAGES, SIGNS_DIR, SignsError, default_signs, load_signs


def test_every_sign_of_the_policy_is_described() -> None:
    book = default_signs()
    rules = {r.id for r in (*default_ruleset().emergency, *default_ruleset().urgent)}
    described = {s.rule for s in book.signs.values()}
    # Every emergency and urgent sign of the policy has a description (the keypad rule aside).
    assert {r for r in rules if r != "E-key"} == described
    for sign in book.signs.values():
        assert all(sign.label[lang] and sign.description[lang] for lang in LANGUAGES)
        if sign.urgency == "emergency":
            assert sign.ask is not None and all(sign.ask[lang] for lang in LANGUAGES)


def test_every_category_has_examples_in_every_language() -> None:
    book = default_signs()
    for category in book.categories:
        languages = {e.language for e in book.examples if e.category == category}
        assert languages == set(LANGUAGES), category


def test_the_bundled_classifier_was_trained_on_these_examples_for_the_bundled_model() -> None:
    classifier = Classifier.load(CLASSIFIER_FILE)
    book = default_signs()
    assert classifier.source_sha256 == book.source_sha256, "run: esitieto signs train"
    assert classifier.embedder_id == E5Embedder.id
    assert set(classifier.categories) == set(book.categories)
    assert classifier.examples.shape[0] == len(book.examples)


def _copy(tmp_path: Path) -> Path:
    for name in ("signs.yaml", "examples.jsonl"):
        (tmp_path / name).write_bytes((SIGNS_DIR / name).read_bytes())
    return tmp_path


def test_an_emergency_sign_without_its_keypad_question_is_refused(tmp_path: Path) -> None:
    folder = _copy(tmp_path)
    text = (folder / "signs.yaml").read_text("utf-8")
    start = text.index("  E1:\n")
    ask = text.index("    ask:\n", start)
    end = text.index("    description:\n", ask)
    (folder / "signs.yaml").write_text(text[:ask] + text[end:], "utf-8")
    with pytest.raises(SignsError, match="E1: ask"):
        load_signs(folder)


def test_an_example_of_an_unknown_sign_is_refused_with_its_line(tmp_path: Path) -> None:
    folder = _copy(tmp_path)
    with (folder / "examples.jsonl").open("a", encoding="utf-8") as fh:
        fh.write(json.dumps({"sign": "E99", "lang": "fi", "text": "jotain"}) + "\n")
    with pytest.raises(SignsError, match=r"line \d+: unknown sign or matter E99"):
        load_signs(folder)


def test_changing_the_examples_makes_the_classifier_stale(tmp_path: Path) -> None:
    folder = _copy(tmp_path)
    with (folder / "examples.jsonl").open("a", encoding="utf-8") as fh:
        fh.write(json.dumps({"sign": "E1", "lang": "fi", "text": "rintaa puristaa"}) + "\n")
    assert load_signs(folder).source_sha256 != default_signs().source_sha256
