"""``esitieto bench ...``: throughput figures printed, never asserted by unit tests."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path

from summarizer.text.schemas import CallContext

DEFAULT_TEXTS = Path(__file__).with_name("texts.jsonl")
"""The 41 public development vignettes' texts and contexts (what the README's figures use)."""


def load_texts(path: Path) -> list[tuple[str, CallContext]]:
    """Texts and contexts from a JSON-lines file with ``text`` and ``context``."""
    items = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            row = json.loads(line)
            items.append((row["text"], CallContext.model_validate(row.get("context") or {})))
    if not items:
        raise ValueError(f"{path}: no texts")
    return items


def bench_summarize(items: list[tuple[str, CallContext]], seconds: float) -> dict[str, float]:
    from summarizer.text.extract import summarize

    for text, ctx in items:  # warm the caches (lexicon, lemmas) as a running worker has them
        summarize(text, ctx)
    return _timed(lambda i: summarize(*items[i]), len(items), seconds, "summary", "summaries")


def bench_triage(items: list[tuple[str, CallContext]], seconds: float) -> dict[str, float]:
    from pretriage.engine import decide
    from summarizer.text.extract import summarize

    prepared = [(summarize(text, ctx), text, ctx) for text, ctx in items]
    return _timed(lambda i: decide(*prepared[i]), len(prepared), seconds, "decision", "decisions")


def bench_analyze(items: list[tuple[str, CallContext]], seconds: float) -> dict[str, float]:
    """The whole analysis a finished call gets: summary, rules and the detector by meaning."""
    from pretriage.analysis import analyze_text
    from pretriage.detector import E5Embedder, load_detector

    detector = load_detector(E5Embedder(threads=1))
    for text, ctx in items:  # warm the model and the caches
        analyze_text(None, text, ctx, detector=detector)
    return _timed(
        lambda i: analyze_text(None, *items[i], detector=detector),
        len(items),
        seconds,
        "call",
        "calls",
    )


def one_core() -> int | None:
    """Pin this process to one CPU so figures compare across machines of any size; returns
    the CPU (None where the system cannot pin)."""
    try:
        cpu = min(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {cpu})
    except (AttributeError, OSError):
        return None
    return cpu


def _timed(
    run_one: Callable[[int], object], count: int, seconds: float, noun: str, plural: str
) -> dict[str, float]:
    """Run items 0..count-1 round and round for ``seconds``; throughput figures."""
    n = 0
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        for i in range(count):
            run_one(i)
            n += 1
    elapsed = time.perf_counter() - start
    return {
        plural: n,
        "seconds": round(elapsed, 3),
        "per_second": round(n / elapsed, 1),
        f"ms_per_{noun}": round(1000 * elapsed / n, 4),
    }
