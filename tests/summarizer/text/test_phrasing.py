"""The optional language-model phrasing: the model may only rephrase, never add or drop facts.

The OpenAI-compatible backend is tested against a fake chat-completions server on 127.0.0.1;
the transformers backend against a one-layer GPT-2 with a tokenizer trained here (no model
hub, no downloads). All caller sentences are invented for these tests.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from summarizer.text.extract import summarize
from summarizer.text.note import reason_line, render_note
from summarizer.text.phrasing import (
    OpenAICompatiblePhraser,
    Phraser,
    Phrasing,
    PhrasingError,
    TransformersPhraser,
    build_messages,
    build_phraser,
    deterministic_phrasing,
    parse_output,
    validate_phrasing,
)
from summarizer.text.schemas import Summary

FI_CALL = (
    "Yskä ja kuume alkoivat toissapäivänä, mittasin aamulla 38,4 astetta. "
    "Hengenahdistusta ei ole. Otan Buranaa ja sairastan astmaa."
)
PRETRIAGE = "kiireetön, digipolku (sääntökanta 3)"

# (caller's words, note language): a spread of requests, languages and fact kinds.
CALLS = [
    (FI_CALL, "fi"),
    (FI_CALL, "sv"),
    (FI_CALL, "en"),
    ("Halsen gör ont sedan två dagar och jag har feber 38,6. Ingen hosta. "
     "Jag är allergisk mot penicillin.", "sv"),
    ("Rintaan sattuu kovasti ja kipu menee vasempaan olkapäähän, hengitys kulkee huonosti.",
     "fi"),
    ("Rintakipua on ollut puoli tuntia ja hengästyttää.", "fi"),
    ("Min son på fyra år har ont i örat och feber sedan i natt.", "sv"),
    ("Soitan kolmevuotiaan poikani puolesta, hänellä on korvakipua ja kuumetta 39,2 "
     "eilisestä asti.", "fi"),
    ("Tarvitsisin reseptin uusinnan Oxynormiin ja Panadoliin.", "fi"),
    ("Olen raskaana viikolla 20 ja minulla on ollut verenvuotoa tänä aamuna.", "fi"),
    ("Haluaisin kysyä laboratoriotulosten vastauksista.", "fi"),
    ("Min dotter har kräkts sedan i morse och har diarré, ingen feber.", "sv"),
    ("Jag är 80 år och har yrsel och huvudvärk sedan en vecka.", "sv"),
    ("I have had a headache for two days and I feel dizzy. No fever. "
     "I take metformin for diabetes.", "en"),
    ("I need to cancel my appointment next Tuesday.", "en"),
    ("My lips went blue and I can hardly breathe.", "en"),
    ("Polvi on turvonnut ja kipeä, kaaduin eilen. Ei kuumetta eikä pahoinvointia.", "fi"),
    ("Hänellä on vaikea hengittää ja huulet ovat siniset.", "fi"),
    ("I have a rash all over my body and itching after a wasp sting.", "en"),
    ("Ääni ei kuulunut hyvin.", "fi"),
]  # fmt: skip


@dataclass
class Case:
    transcript: str
    language: str
    summary: Summary
    note: str

    @property
    def reason(self) -> str:
        return self.summary.reason or reason_line(self.summary, self.language)

    def validate(self, reason: str, candidate: str) -> str | None:
        return validate_phrasing(
            self.summary,
            self.transcript,
            language=self.language,
            note=self.note,
            reason=reason,
            candidate_note=candidate,
        )


def make_case(transcript: str, language: str, pretriage: str | None = PRETRIAGE) -> Case:
    summary = summarize(transcript, note_language=language)
    return Case(transcript, language, summary, render_note(summary, language, pretriage=pretriage))


@pytest.fixture
def fi_case() -> Case:
    return make_case(FI_CALL, "fi")


def faithful_rewording(case: Case) -> tuple[str, str]:
    """The real deterministic note with words changed but headings, facts and numbers kept."""
    reason = case.reason.replace("Yskä ja kuume", "Yskää ja kuumetta")
    note = (
        case.note.replace("Soittaja: itse.", "Soittaja soittaa omasta puolestaan.")
        .replace("kieltää: hengenahdistus", "ei hengenahdistusta")
        .replace('yskä ("Yskä"), kuume ("kuume")', "yskää ja kuumetta")
        .replace("lämpö 38,4 °C", "korkein mitattu lämpö 38,4 °C")
        .replace("Kesto: 2 vrk.", "Kesto: noin 2 vuorokautta.")
        .replace("Allergiat: ei kerrottu.", "Allergiat: ei mainittu.")
    )
    assert note != case.note
    return reason, note


# -- validate_phrasing --------------------------------------------------------------------------


@pytest.mark.parametrize("pretriage", [None, PRETRIAGE])
@pytest.mark.parametrize(("transcript", "language"), CALLS)
def test_deterministic_note_passes_its_own_validation(
    transcript: str, language: str, pretriage: str | None
) -> None:
    case = make_case(transcript, language, pretriage)
    assert case.validate(case.reason, case.note) is None, case.note


def test_faithful_rewording_is_accepted(fi_case: Case) -> None:
    assert fi_case.validate(*faithful_rewording(fi_case)) is None


def test_spoken_numbers_and_blank_lines_are_tolerated(fi_case: Case) -> None:
    note = fi_case.note.replace("Kesto: 2 vrk.", "Kesto: kaksi vuorokautta.")
    assert fi_case.validate(fi_case.reason, note.replace("\n", "\n\n", 1)) is None


def _without(case: Case, *words: str) -> tuple[str, str]:
    reason, note = case.reason, case.note
    for w in words:
        reason, note = reason.replace(w, ""), note.replace(w, "")
    return reason, note


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        # something the caller never said
        (lambda r, n: (r, n.replace('kuume ("kuume")', 'kuume ("kuume"), rintakipu')),
         "ungrounded_code"),
        (lambda r, n: (r + " ja rintakipu", n), "ungrounded_code"),
        (lambda r, n: (r, n.replace("burana.", "burana, Panadol.")), "ungrounded_medication"),
        (lambda r, n: (r, n.replace("astma.", "astma ja diabetes.")), "ungrounded_condition"),
        (lambda r, n: (r, n.replace("hengenahdistus.", "hengenahdistus; huulet ovat siniset.")),
         "ungrounded_red_flag"),
        (lambda r, n: (r, n.replace("Soittaja: itse.", "Soittaja: itse, raskaana.")),
         "ungrounded_pregnancy"),
        (lambda r, n: (r, n.replace("Soittaja: itse.", "Soittaja: lapsen puolesta.")),
         "changed_for_whom"),
        # a denial turned round, or a denial invented
        (lambda r, n: (r, n.replace("kieltää: hengenahdistus", "hengenahdistusta")),
         "negation_flipped"),
        (lambda r, n: (r, n.replace("kieltää: hengenahdistus", "ei hengenahdistusta eikä "
                                    "rintakipua")), "ungrounded_negation"),
        # invented numbers
        (lambda r, n: (r, n.replace("38,4 °C", "39 °C")), "number_not_in_transcript"),
        (lambda r, n: (r + ", 5 kertaa", n), "number_not_in_transcript"),
        # judgement
        (lambda r, n: (r, n.replace("oireen arvio.", "oireen arvio, todennäköisesti "
                                    "keuhkokuume.")), "assessment_or_advice"),
        (lambda r, n: (r, n.replace("oireen arvio.", "oireen arvio; hakeudu päivystykseen.")),
         "assessment_or_advice"),
        # shape
        (lambda r, n: (r, "\n".join(x for x in n.splitlines() if not x.startswith("Kesto"))),
         "missing_heading"),
        (lambda r, n: (r, n.replace("Kesto:", "Lisäksi väsyttää.\nKesto:")), "extra_line"),
        (lambda r, n: (r, n.replace("Lääkitys:", "Lääke:").replace("Kesto:", "Lääkitys:")
                       .replace("Lääke:", "Kesto:")), "heading_order"),
        (lambda r, n: (r, n.replace("kiireetön", "kiireellinen")), "changed_pretriage"),
        (lambda r, n: (r, n.replace("digipolku (", "digipolku  (")), "changed_pretriage"),
        (lambda r, n: ("", n), "empty_reason"),
        (lambda r, n: (r + "\nlisäksi", n), "reason_not_one_line"),
        (lambda r, n: ("x" * 161, n), "too_long"),
        (lambda r, n: (r, n.replace("Soittaja: itse.", "Soittaja: itse." + " a" * 400)),
         "too_long"),
        (lambda r, n: (r, "   "), "empty_note"),
    ],
)  # fmt: skip
def test_unfaithful_output_is_rejected(fi_case: Case, change: Any, expected: str) -> None:
    reason, note = change(fi_case.reason, fi_case.note)
    assert fi_case.validate(reason, note) == expected


def test_lost_facts_are_rejected(fi_case: Case) -> None:
    case = fi_case
    reason, note = _without(case, 'yskä ("Yskä"), ')
    reason, note = reason.replace("Yskä ja kuume", "Kuume"), note.replace("Yskä ja kuume", "Kuume")
    assert case.validate(reason, note) == "lost_symptom"
    assert case.validate(*_without(case, "; kieltää: hengenahdistus")) == "lost_negation"
    assert case.validate(*_without(case, ", lämpö 38,4", "; lämpö 38,4 °C")) == "lost_temperature"
    reason, note = _without(case, " 2 vrk")
    assert case.validate(reason, note.replace("Kesto:.", "Kesto: joitakin päiviä.")) == (
        "lost_duration"
    )
    assert case.validate(case.reason, case.note.replace("burana", "ei kerrottu")) == (
        "lost_medication"
    )
    assert case.validate(case.reason, case.note.replace("astma", "ei kerrottu")) == (
        "lost_condition"
    )


def test_a_red_flag_must_survive() -> None:
    case = make_case("Hänellä on vaikea hengittää ja huulet ovat siniset.", "fi")
    assert case.summary.red_flags, "the extractor should flag blue lips"
    flag_line = next(x for x in case.note.splitlines() if x.startswith("Hälyttävät merkit"))
    dropped = case.note.replace(flag_line, "Hälyttävät merkit: ei.")
    assert case.validate(case.reason, dropped) == "lost_red_flag"


def test_denials_can_be_rephrased(fi_case: Case) -> None:
    for denial in ("ei hengenahdistusta", "kieltää hengenahdistuksen", "Kieltää: hengenahdistus"):
        note = fi_case.note.replace("kieltää: hengenahdistus", denial)
        assert fi_case.validate(fi_case.reason, note) is None, denial
    sv = make_case("Min dotter har kräkts sedan i morse och har diarré, ingen feber.", "sv")
    assert sv.validate(sv.reason, sv.note.replace("förnekar: feber", "ingen feber")) is None
    assert sv.validate(sv.reason, sv.note.replace("förnekar: feber", "feber")) == (
        "negation_flipped"
    )
    en = make_case("I have had a headache for two days and I feel dizzy. No fever.", "en")
    assert en.validate(en.reason, en.note.replace("denies: fever", "no fever")) is None
    assert en.validate(en.reason, en.note.replace("denies: fever", "fever")) == "negation_flipped"


# -- prompt and output parsing ------------------------------------------------------------------


def test_prompt_carries_instructions_facts_note_and_transcript(fi_case: Case) -> None:
    messages = build_messages(
        fi_case.summary, fi_case.transcript + " {note}", language="fi", note=fi_case.note
    )
    assert [m["role"] for m in messages] == ["system", "user"]
    system, user = messages[0]["content"], messages[1]["content"]
    assert "JSON" in system and "Pretriage" in system
    assert fi_case.note in user and fi_case.transcript + " {note}" in user
    assert '"medications": [\n  "burana"\n ]' in user
    assert "{facts}" not in user
    sv = build_messages(fi_case.summary, "x", language="sv", note="n")[0]["content"]
    assert "svenska" in sv


def test_parse_output_tolerates_fences_and_chatter() -> None:
    text = 'Tässä:\n```json\n{"reason": "Yskä", "note": "A: b\\n\\n C: d  "}\n```'
    assert parse_output(text) == ("Yskä", "A: b\nC: d")
    assert parse_output('{"x": {"reason": 1}} {"reason": "r", "note": "n"}') == ("r", "n")
    assert parse_output('{"answer": {"reason": "r", "note": "n"}}') == ("r", "n")
    with pytest.raises(PhrasingError) as e:
        parse_output("no json here {")
    assert e.value.reason == "invalid_json"
    with pytest.raises(PhrasingError) as e:
        parse_output('{"reason": "r"}')
    assert e.value.reason == "missing_fields"


def test_deterministic_phrasing(fi_case: Case) -> None:
    p = deterministic_phrasing(fi_case.summary, language="fi", note=fi_case.note)
    assert p == Phrasing(reason=fi_case.reason, note=fi_case.note, generator="deterministic")


# -- the OpenAI-compatible backend against a fake server ----------------------------------------


@dataclass
class FakeLLM:
    """A chat-completions endpoint that answers what the test tells it to."""

    content: Any = ""
    status: int = 200
    delay_s: float = 0.0
    raw: bytes | None = None
    requests: list[dict[str, Any]] = field(default_factory=list)
    base_url: str = ""


def chat_completion(content: Any, model: str) -> dict[str, Any]:
    """The response shape of ``POST /v1/chat/completions``."""
    return {
        "id": "chatcmpl-test-1",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 812, "completion_tokens": 143, "total_tokens": 955},
    }


@pytest.fixture
def fake_llm() -> Iterator[FakeLLM]:
    fake = FakeLLM()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            fake.requests.append({"path": self.path, "headers": dict(self.headers), "body": body})
            if fake.delay_s:
                time.sleep(fake.delay_s)
            if fake.raw is not None:
                payload = fake.raw
            elif fake.status != 200:
                payload = b'{"error": {"message": "overloaded", "type": "server_error"}}'
            else:
                payload = json.dumps(chat_completion(fake.content, body["model"])).encode()
            self.send_response(fake.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet: the fake server's access log is not under test."""

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    fake.base_url = f"http://127.0.0.1:{server.server_address[1]}/v1/"
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def phraser(fake_llm: FakeLLM) -> Iterator[OpenAICompatiblePhraser]:
    p = OpenAICompatiblePhraser(
        fake_llm.base_url,
        "county-llm-8b",
        api_key="sk-test-123",
        timeout_s=2.0,
        client=httpx.Client(trust_env=False),  # never a proxy from the environment
    )
    yield p
    p.close()


def _phrase(p: Phraser, case: Case) -> Phrasing:
    return p.phrase(case.summary, case.transcript, language=case.language, note=case.note)


def test_faithful_rephrasing_from_the_endpoint_is_used(
    fake_llm: FakeLLM,
    phraser: OpenAICompatiblePhraser,
    fi_case: Case,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    reason, note = faithful_rewording(fi_case)
    fake_llm.content = json.dumps({"reason": reason, "note": note}, ensure_ascii=False)
    result = _phrase(phraser, fi_case)
    assert result.generator == "openai:county-llm-8b"
    assert result.fallback_reason is None
    assert (result.reason, result.note) == (reason, note)
    assert result.duration_s > 0

    [request] = fake_llm.requests
    assert request["path"] == "/v1/chat/completions"
    assert request["headers"]["Authorization"] == "Bearer sk-test-123"
    body = request["body"]
    assert body["temperature"] == 0
    assert body["model"] == "county-llm-8b"
    assert body["max_tokens"] == 400
    assert body["response_format"] == {"type": "json_object"}
    assert [m["role"] for m in body["messages"]] == ["system", "user"]
    assert fi_case.transcript in body["messages"][1]["content"]
    _assert_no_health_text(caplog, fi_case)


def _assert_no_health_text(caplog: pytest.LogCaptureFixture, case: Case) -> None:
    assert caplog.records, "the outcome should be logged"
    logged = caplog.text.casefold()
    for word in {*re.findall(r"\w{4,}", case.transcript + case.note)} - {"Pretriage"}:
        assert word.casefold() not in logged, word
    assert "sk-test-123" not in logged


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (lambda n: n.replace('kuume ("kuume")', 'kuume ("kuume"), rintakipu'), "ungrounded_code"),
        (lambda n: n.replace("38,4 °C", "39,1 °C"), "number_not_in_transcript"),
        (lambda n: "\n".join(x for x in n.splitlines() if not x.startswith("Allergiat")),
         "missing_heading"),
    ],
)  # fmt: skip
def test_unfaithful_endpoint_output_falls_back(
    fake_llm: FakeLLM,
    phraser: OpenAICompatiblePhraser,
    fi_case: Case,
    caplog: pytest.LogCaptureFixture,
    content: Any,
    expected: str,
) -> None:
    caplog.set_level(logging.DEBUG)
    # fenced and with chatter around it, as chat models like to answer
    answer = json.dumps({"reason": fi_case.reason, "note": content(fi_case.note)})
    fake_llm.content = f"Tässä muotoiltu versio:\n```json\n{answer}\n```"
    result = _phrase(phraser, fi_case)
    assert result == Phrasing(
        reason=fi_case.reason,
        note=fi_case.note,
        generator="deterministic",
        fallback_reason=expected,
        duration_s=result.duration_s,
    )
    _assert_no_health_text(caplog, fi_case)


@pytest.mark.parametrize(
    ("setup", "expected"),
    [
        ({"status": 500}, "http_500"),
        ({"status": 401}, "http_401"),
        ({"content": "Yskää ja kuumetta kaksi päivää."}, "invalid_json"),
        ({"content": '{"reason": "Yskä"}'}, "missing_fields"),
        ({"content": None}, "bad_response"),
        ({"raw": b"<html>gateway</html>"}, "bad_response"),
        ({"raw": b'{"choices": []}'}, "bad_response"),
    ],
)
def test_backend_failures_fall_back(
    fake_llm: FakeLLM,
    phraser: OpenAICompatiblePhraser,
    fi_case: Case,
    caplog: pytest.LogCaptureFixture,
    setup: dict[str, Any],
    expected: str,
) -> None:
    caplog.set_level(logging.DEBUG)
    for key, value in setup.items():
        setattr(fake_llm, key, value)
    result = _phrase(phraser, fi_case)
    assert result.generator == "deterministic"
    assert result.fallback_reason == expected
    assert (result.reason, result.note) == (fi_case.reason, fi_case.note)
    assert len(fake_llm.requests) == 1
    _assert_no_health_text(caplog, fi_case)


def test_timeout_falls_back(fake_llm: FakeLLM, fi_case: Case) -> None:
    fake_llm.delay_s = 0.6
    p = OpenAICompatiblePhraser(
        fake_llm.base_url, "slow", api_key=None, timeout_s=0.1, client=httpx.Client(trust_env=False)
    )
    started = time.perf_counter()
    result = _phrase(p, fi_case)
    assert result.fallback_reason == "timeout"
    assert result.generator == "deterministic"
    assert time.perf_counter() - started < 0.5
    assert "Authorization" not in fake_llm.requests[0]["headers"]


def test_unreachable_endpoint_falls_back(fi_case: Case) -> None:
    with ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler) as s:
        port = s.server_address[1]  # closed again: nothing listens there
    p = build_phraser("openai", base_url=f"http://127.0.0.1:{port}", model="m", timeout_s=1)
    assert p is not None
    result = _phrase(p, fi_case)
    assert (result.generator, result.fallback_reason) == ("deterministic", "http_error")
    p.close()


# -- the transformers backend with a tiny model built here ---------------------------------------


def _tiny_gpt2(path: Path, *, n_positions: int = 2048, chat_template: bool = False) -> Path:
    """A one-layer GPT-2 with random weights and a word-level tokenizer trained on a few lines."""
    transformers = pytest.importorskip("transformers", reason="the [llm] extra is not installed")
    torch = pytest.importorskip("torch", reason="the [llm] extra is not installed")
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    tok = Tokenizer(models.WordLevel(unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    trainer = trainers.WordLevelTrainer(special_tokens=["[UNK]", "[PAD]", "<|endoftext|>"])
    corpus = [
        "Soittaja kertoo yskästä ja kuumeesta.",
        "Hoitaja soittaa takaisin iltapäivällä.",
        "Uppringaren har feber och hosta.",
        "The caller has a cough and a fever.",
    ]
    tok.train_from_iterator(corpus, trainer)
    tokenizer = transformers.PreTrainedTokenizerFast(
        tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", eos_token="<|endoftext|>"
    )
    if chat_template:
        tokenizer.chat_template = (
            "{% for m in messages %}<{{ m['role'] }}> {{ m['content'] }}\n{% endfor %}"
            "{% if add_generation_prompt %}<assistant>{% endif %}"
        )
    tokenizer.save_pretrained(path)
    torch.manual_seed(0)
    config = transformers.GPT2Config(
        vocab_size=len(tokenizer),
        n_positions=n_positions,
        n_layer=1,
        n_head=2,
        n_embd=32,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    transformers.GPT2LMHeadModel(config).save_pretrained(path)
    return path


@pytest.mark.slow
@pytest.mark.parametrize("chat_template", [False, True])
def test_tiny_local_model_generates_and_its_garbage_falls_back(
    tmp_path: Path, fi_case: Case, caplog: pytest.LogCaptureFixture, chat_template: bool
) -> None:
    caplog.set_level(logging.DEBUG)
    model_dir = _tiny_gpt2(tmp_path / "tiny-gpt2", chat_template=chat_template)
    p = TransformersPhraser(model_dir, max_new_tokens=12)
    assert p.name == "transformers:tiny-gpt2"
    result = _phrase(p, fi_case)
    assert p.generations == 1, "the model should really have generated"
    assert result.generator == "deterministic"
    assert result.fallback_reason == "invalid_json"
    assert (result.reason, result.note) == (fi_case.reason, fi_case.note)
    assert result.duration_s > 0
    # The second call goes through the loaded model: count the tokens it really produced.
    shapes: list[tuple[int, int]] = []
    generate = p._model.generate

    def recording_generate(**kwargs: Any) -> Any:
        out = generate(**kwargs)
        shapes.append((kwargs["input_ids"].shape[1], out.shape[1]))
        return out

    p._model.generate = recording_generate
    messages = build_messages(fi_case.summary, fi_case.transcript, language="fi", note="x")
    assert isinstance(p._phrase_impl(messages, max_new_tokens=5), str)
    [(n_in, n_out)] = shapes
    assert n_out == n_in + 5, "greedy decoding of a random model runs to max_new_tokens"
    assert p.generations == 2
    _assert_no_health_text(caplog, fi_case)


def test_prompt_longer_than_the_model_window_falls_back(tmp_path: Path, fi_case: Case) -> None:
    p = TransformersPhraser(_tiny_gpt2(tmp_path / "short", n_positions=64), max_new_tokens=8)
    result = _phrase(p, fi_case)
    assert result.fallback_reason == "prompt_too_long"
    assert p.generations == 0


def test_model_directory_without_a_model_falls_back(tmp_path: Path, fi_case: Case) -> None:
    pytest.importorskip("transformers", reason="the [llm] extra is not installed")
    p = build_phraser("transformers", model_dir=tmp_path)
    assert isinstance(p, TransformersPhraser)
    result = _phrase(p, fi_case)
    assert (result.generator, result.fallback_reason) == ("deterministic", "backend_error")


# -- build_phraser -------------------------------------------------------------------------------


def test_build_phraser_choices(tmp_path: Path) -> None:
    assert build_phraser("none") is None
    p = build_phraser("openai", base_url="http://127.0.0.1:9/v1", model="m", api_key="k")
    assert isinstance(p, OpenAICompatiblePhraser)
    assert p.name == "openai:m" and p.url == "http://127.0.0.1:9/v1/chat/completions"
    p.close()
    pytest.importorskip("transformers", reason="the [llm] extra is not installed")
    t = build_phraser("transformers", model_dir=tmp_path, max_new_tokens=50)
    assert isinstance(t, TransformersPhraser) and t.max_new_tokens == 50


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"backend": "transformers"}, "model_dir"),
        ({"backend": "openai"}, "base_url and model"),
        ({"backend": "openai", "model": "m"}, "base_url"),
        ({"backend": "openai", "base_url": "http://x"}, "model"),
        ({"backend": "llama"}, "none, transformers, openai"),
    ],
)
def test_build_phraser_argument_errors(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build_phraser(**kwargs)


def test_missing_model_directory_is_a_clear_error(tmp_path: Path) -> None:
    pytest.importorskip("transformers", reason="the [llm] extra is not installed")
    with pytest.raises(ValueError, match="not found"):
        build_phraser("transformers", model_dir=tmp_path / "nowhere")
