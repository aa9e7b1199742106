"""The ruleset file: it loads, it carries a version, and a malformed one fails at load."""

from __future__ import annotations

from pathlib import Path

import pytest

from pretriage.ruleset import RULESET_PATH, RulesetError, default_ruleset, load_ruleset


def test_bundled_ruleset_covers_the_policy() -> None:
    rs = default_ruleset()
    assert rs.version
    assert len(rs.emergency) >= 10 and len(rs.urgent) >= 13
    assert set(rs.digital_paths) == {
        "prescription-renewal",
        "lab-results",
        "appointment",
        "uti",
        "respiratory-infection",
    }
    for rule in (*rs.emergency, *rs.urgent):
        assert rule.text["fi"] and rule.policy
    # the policy table's ICPC-2 column; a fever under 39 °C may go with a cold
    assert rs.digital_paths["uti"].codes == {"U01", "U02"}
    assert rs.digital_paths["respiratory-infection"].codes == {"R05", "R21", "R07", "R74", "A03"}
    assert rs.digital_paths["prescription-renewal"].codes == {"-50"}


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("when: symptom:A11\n", "when: symptom:Q99\n", r"U1-chest-pain.*Q99"),
        ("finding:cold_sweat, symptom:D09", "finding:cold_swaet, symptom:D09", r"E1.*cold_swaet"),
        ("any: [symptom:A11+severe", "any: [symptom:A11+awful", "modifier 'awful'"),
        ("        - temp>=40", "        - tmp>=40", "unknown item 'tmp>=40'"),
        ('version: "2026.11-3"\n', "", "missing 'version'"),
        ("  uti:\n", "  bladder:\n", "unknown path id"),
        ("any: [medication:controlled", "any: [medication:narcotic", "class 'narcotic'"),
        ("    codes: [U01, U02]\n", "    codes: [U01, U99]\n", r"uti: unknown codes \['U99'\]"),
        ("    codes: [U01, U02]\n", "", r"uti: needs 'codes'"),
    ],
)
def test_malformed_ruleset_fails_with_its_place(
    tmp_path: Path, old: str, new: str, message: str
) -> None:
    text = RULESET_PATH.read_text("utf-8")
    assert old in text
    bad = tmp_path / "ruleset.yaml"
    bad.write_text(text.replace(old, new, 1), "utf-8")
    with pytest.raises(RulesetError, match=message):
        load_ruleset(bad)


def test_unparseable_file(tmp_path: Path) -> None:
    bad = tmp_path / "ruleset.yaml"
    bad.write_text("emergency: [", "utf-8")
    with pytest.raises(RulesetError, match="cannot read"):
        load_ruleset(bad)
