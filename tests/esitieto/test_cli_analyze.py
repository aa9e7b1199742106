"""``esitieto analyze --jsonl`` and ``esitieto bench`` as operators run them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

CLI = [sys.executable, "-c", "from esitieto.cli import main; raise SystemExit(main())"]


def run(args: list[str], stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *args], input=stdin, capture_output=True, text=True, timeout=120, check=False
    )


@pytest.mark.slow
def test_analyze_jsonl_reports_bad_lines_and_goes_on() -> None:
    lines = [
        json.dumps({"id": "a", "text": "Rintaan puristaa kovasti.", "context": {"age": 60}}),
        "{not json",
        json.dumps(["a list"]),
        json.dumps({"id": "b", "text": 5}),
        json.dumps({"id": "c", "text": "Haluaisin perua ajan.", "context": {"sex": "male"}}),
        json.dumps({"id": 7, "text": "🙂 ### 12345"}),  # any JSON id; no words to read
        json.dumps({"id": ["d"], "text": "Yskää.", "context": {"age": "old"}}),
    ]
    out = run(["analyze", "--jsonl"], "\n".join(lines) + "\n")
    assert out.returncode == 0, out.stderr
    rows = [json.loads(x) for x in out.stdout.splitlines()]
    assert [r.get("id") for r in rows] == ["a", None, None, "b", "c", 7, ["d"]]
    assert rows[5]["triage"]["uncertain"] and rows[5]["triage"]["route"] != "digital_path"
    assert rows[6]["error"].startswith("line 7: context.age:")
    assert rows[0]["triage"]["urgency"] == "emergency"
    assert rows[0]["summary"]["symptoms"][0]["icpc2"] == "A11"
    assert "Pretriage: hätätilanne" in rows[0]["summary"]["note"]
    assert all("error" in r for r in rows[1:4])
    assert rows[4]["triage"]["digital_path"] == "appointment"


@pytest.mark.slow
def test_analyze_prints_only_json_even_with_stderr_merged() -> None:
    """Scripts pipe ``2>&1`` into a JSON reader: nothing else may be printed."""
    line = json.dumps({"id": "x", "text": "Kuumetta kaksi päivää.", "context": {}})
    out = run(["analyze", "--jsonl"], line + "\n")
    assert out.returncode == 0 and out.stderr == ""
    assert json.loads(out.stdout)["id"] == "x"


def test_analyze_needs_jsonl_flag() -> None:
    out = run(["analyze"])
    assert out.returncode != 0 and "--jsonl" in out.stderr


@pytest.mark.slow
def test_bench_prints_figures(tmp_path: Path) -> None:
    texts = tmp_path / "texts.jsonl"
    texts.write_text(json.dumps({"text": "Yskää kolme päivää.", "context": {}}) + "\n", "utf-8")
    for what in ("summarize", "triage", "analyze"):
        out = run(["bench", what, "--file", str(texts), "--seconds", "0.2"])
        assert out.returncode == 0, out.stderr
        result = json.loads(out.stdout)
        assert result["per_second"] > 0 and result["texts"] == 1
    out = run(["bench", "summarize", "--file", str(tmp_path / "missing.jsonl")])
    assert out.returncode != 0 and "cannot read" in out.stderr


@pytest.mark.slow
def test_eval_detectors_prints_the_rules_the_detector_and_both(tmp_path: Path) -> None:
    def case(text: str, urgency: str, route: str, path: str | None = None) -> str:
        expect = {"urgency": urgency, "route": route, "digital_path": path}
        return json.dumps({"text": text, "context": {"age": 50}, "expect": expect})

    cases = tmp_path / "cases.jsonl"
    cases.write_text(
        "\n".join([
            case("Minulla on kova puristava rintakipu ja kylmä hiki.", "emergency", "nurse_queue"),
            case("Haava on syvä ja ammottaa.", "urgent", "nurse_queue"),
            case("Haluaisin uusia reseptin.", "non_urgent", "digital_path", "prescription-renewal"),
        ]),
        "utf-8",
    )  # fmt: skip
    out = run(["eval-detectors", "--cases", str(cases)])
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.splitlines()[-1])
    assert set(result) >= {"rules", "detector", "both"}
    for reading in ("rules", "detector", "both"):
        f = result[reading]
        assert f["cases"] == 3 and f["urgent_on_digital"] == 0
        assert 0 <= f["route_acc"] <= 1 and 0 <= f["over_triage_rate"] <= 1
    # the rules read all three; fusing the detector in can only keep or raise urgency
    assert result["rules"]["emergency_recall"] == 1.0 and result["rules"]["under_triage"] == 0
    assert result["both"]["under_triage"] == 0 and result["both"]["emergency_recall"] == 1.0
    missing = run(["eval-detectors", "--cases", str(tmp_path / "none.jsonl")])
    assert missing.returncode != 0 and "eval-detectors" in missing.stderr


@pytest.mark.slow
def test_eval_fuzzy_prints_recall_and_false_hits() -> None:
    out = run(["eval-fuzzy", "--words", "40"])
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    slips, false = result["slips"], result["false_hits"]
    assert slips["variants"] > 0 and 0.0 <= slips["recall_fuzzy"] <= 1.0
    assert false["dictionary_words"] > 0 and 0.0 <= false["dictionary_false_hit_rate"] <= 1.0
    out = run(["eval-fuzzy", "--cases", "/nonexistent.jsonl"])
    assert out.returncode != 0 and "eval-fuzzy" in out.stderr


@pytest.mark.slow
def test_analyze_writes_the_note_in_the_asked_language() -> None:
    line = {"id": "s", "text": "Jag har feber sedan två dagar.", "note_language": "sv"}
    bad = {"id": "x", "text": "Kuumetta.", "note_language": "de"}
    out = run(["analyze", "--jsonl"], json.dumps(line) + "\n" + json.dumps(bad) + "\n")
    assert out.returncode == 0, out.stderr
    rows = [json.loads(x) for x in out.stdout.splitlines()]
    assert "Orsak:" in rows[0]["summary"]["note"] and rows[0]["generator"] == "deterministic"
    assert "note_language" in rows[1]["error"]


@pytest.mark.slow
def test_convert_model_says_what_is_missing(tmp_path: Path) -> None:
    out = run(
        ["convert-model", "--to", "hf", "--model", str(tmp_path / "none"), str(tmp_path / "o")]
    )
    assert out.returncode != 0 and "convert-model" in out.stderr and "model.bin" in out.stderr
