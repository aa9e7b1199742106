"""Every lexicon entry is covered: each example sentence written next to it must give it."""

from __future__ import annotations

from pathlib import Path

import pytest

from summarizer.text.extract import summarize
from summarizer.text.lexicon import LexiconError, default_lexicon, load_lexicon
from summarizer.text.schemas import CallContext

LEX = default_lexicon()
SYMPTOM_EXAMPLES = [
    (code, lang, sentence)
    for code, entry in LEX.symptoms.items()
    for lang, sentences in entry.examples.items()
    for sentence in sentences
]
FINDING_EXAMPLES = [
    (fid, lang, sentence)
    for fid, entry in LEX.findings.items()
    for lang, sentences in entry.examples.items()
    for sentence in sentences
]


def test_every_entry_has_examples_in_three_languages() -> None:
    for code, symptom in LEX.symptoms.items():
        assert set(symptom.examples) >= {"fi", "sv", "en"}, code
    for fid, finding in LEX.findings.items():
        assert set(finding.examples) >= {"fi", "sv", "en"}, fid


@pytest.mark.parametrize(("code", "lang", "sentence"), SYMPTOM_EXAMPLES)
def test_symptom_example(code: str, lang: str, sentence: str) -> None:
    context = CallContext(language=lang, age=40, sex="female")
    summary = summarize(sentence, context)
    assert code in {s.icpc2 for s in summary.symptoms}, (sentence, summary.symptoms)
    for s in summary.symptoms:
        assert sentence[s.evidence.start : s.evidence.end] == s.evidence.text


@pytest.mark.parametrize(("fid", "lang", "sentence"), FINDING_EXAMPLES)
def test_finding_example(fid: str, lang: str, sentence: str) -> None:
    summary = summarize(sentence, CallContext(language=lang))
    found = {f.id for f in summary.findings if not f.negated}
    modifiers = {m for s in summary.symptoms for m in s.modifiers}
    assert fid in found | modifiers, (sentence, summary.findings, summary.symptoms)


def test_malformed_lexicon_fails_with_the_entry_named(tmp_path: Path) -> None:
    for name in ("symptoms.yaml", "findings.yaml", "context.yaml"):
        (tmp_path / name).write_text(
            (Path(__file__).parents[3] / "summarizer/text/lexicon" / name).read_text("utf-8"),
            "utf-8",
        )
    broken = (
        (tmp_path / "symptoms.yaml")
        .read_text("utf-8")
        .replace("  suppresses: [P01]", "  suppresses: [Z99]")
    )
    (tmp_path / "symptoms.yaml").write_text(broken, "utf-8")
    with pytest.raises(LexiconError, match=r"A11.*Z99"):
        load_lexicon(tmp_path)
    (tmp_path / "symptoms.yaml").write_text("A03: {label: {fi: Kuume}, terms: []}\n", "utf-8")
    with pytest.raises(LexiconError, match="A03"):
        load_lexicon(tmp_path)


@pytest.mark.parametrize(
    ("sentence", "lang", "seen"),
    [
        ("We both have food poisoning, I think.", "en", False),
        ("Meillä on varmaan ruokamyrkytys.", "fi", False),
        ("He swallowed rat poison.", "en", True),
    ],
)
def test_food_poisoning_is_not_an_overdose(sentence: str, lang: str, seen: bool) -> None:
    summary = summarize(sentence, CallContext(language=lang))
    found = {f.id for f in summary.findings if not f.negated}
    assert ("overdose_poisoning" in found) is seen, (sentence, summary.findings)


@pytest.mark.parametrize(
    ("sentence", "lang", "seen"),
    [
        ("I need a new prescription for my blood pressure tablets.", "en", False),
        ("Can I get the results of my blood tests from last week?", "en", False),
        ("I'm on blood thinners and want to ask about the dose.", "en", False),
        ("Tarvitsen uuden reseptin verta ohentavaan lääkkeeseen.", "fi", False),
        ("My blood pressure is fine but there was blood in the sink.", "en", True),
        ("Yskiessä tuli verta.", "fi", True),
    ],
)
def test_unless_drops_a_match_inside_a_longer_expression(
    sentence: str, lang: str, seen: bool
) -> None:
    summary = summarize(sentence, CallContext(language=lang))
    found = {f.id for f in summary.findings if not f.negated}
    assert ("blood_seen" in found) is seen, (sentence, summary.findings)


def test_unless_must_be_a_list_of_terms(tmp_path: Path) -> None:
    for name in ("symptoms.yaml", "findings.yaml", "context.yaml"):
        (tmp_path / name).write_text(
            (Path(__file__).parents[3] / "summarizer/text/lexicon" / name).read_text("utf-8"),
            "utf-8",
        )
    with (tmp_path / "findings.yaml").open("a", encoding="utf-8") as f:
        f.write("broken:\n  kind: finding\n  label: {fi: x}\n  terms: [x]\n  unless: 3\n")
    with pytest.raises(LexiconError, match=r"broken.*unless"):
        load_lexicon(tmp_path)
