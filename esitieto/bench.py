"""``esitieto bench ...``: throughput figures printed, never asserted by unit tests."""

from __future__ import annotations

import json
import time
from pathlib import Path

from summarizer.schemas import CallContext

DEFAULT_TEXTS = (
    Path(__file__).resolve().parents[1].parent / "shared" / "eval" / "dev_vignettes.jsonl"
)


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
    from summarizer.extract import summarize

    for text, ctx in items:  # warm the caches (lexicon, lemmas) as a running worker has them
        summarize(text, ctx)
    n = 0
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        for text, ctx in items:
            summarize(text, ctx)
            n += 1
    elapsed = time.perf_counter() - start
    return {
        "summaries": n,
        "seconds": round(elapsed, 3),
        "per_second": round(n / elapsed, 1),
        "ms_per_summary": round(1000 * elapsed / n, 3),
    }


def bench_triage(items: list[tuple[str, CallContext]], seconds: float) -> dict[str, float]:
    from pretriage.engine import decide
    from summarizer.extract import summarize

    prepared = [(summarize(text, ctx), text, ctx) for text, ctx in items]
    n = 0
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        for summary, text, ctx in prepared:
            decide(summary, text, ctx)
            n += 1
    elapsed = time.perf_counter() - start
    return {
        "decisions": n,
        "seconds": round(elapsed, 3),
        "per_second": round(n / elapsed, 1),
        "ms_per_decision": round(1000 * elapsed / n, 4),
    }
