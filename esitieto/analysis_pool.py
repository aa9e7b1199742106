"""Text analysis for the API in separate processes, each request with a deadline.

``POST /api/v1/analyze`` takes any text from outside. The matcher is linear and words are
capped, but an analysis the server cannot foresee (a pathological text, a language model
phraser that hangs) must still never hold a web worker, a CPU or the call webhooks: each
request runs in a pool of worker processes (``pebble``), and one that passes its deadline is
killed and replaced, and the request answered 503. Each pool process loads the analyzer
(rules, lexicon, the detector's model) when it starts, before its deadline clock runs.
"""

from __future__ import annotations

import logging
import multiprocessing
from collections.abc import Callable
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

from pebble import ProcessExpired, ProcessPool

from pretriage.analysis import AnalysisResult, Analyzer
from pretriage.settings import DetectorSettings
from summarizer.text.schemas import CallContext
from summarizer.text.settings import SummarizerSettings

log = logging.getLogger(__name__)


class AnalysisUnavailable(Exception):
    """The analysis passed its deadline or its process died; nothing was kept of it."""


_analyzer: Analyzer | None = None


def _load(summarizer: dict[str, Any], detector: dict[str, Any]) -> None:
    """In each pool process: build the analyzer from the parent's settings."""
    global _analyzer
    from pretriage.detector import detector_from_settings
    from summarizer.text.phrasing import phraser_from_settings

    _analyzer = Analyzer(
        phraser=phraser_from_settings(SummarizerSettings.model_validate(summarizer)),
        detector=detector_from_settings(DetectorSettings.model_validate(detector)),
    )
    _analyzer(None, "Yskää.")  # load the lexicon and the detector's model before any deadline


def _analyze(
    item_id: str | None, text: str, context: dict[str, Any] | None, note_language: str
) -> dict[str, Any]:
    assert _analyzer is not None, "the pool's initializer did not run"
    result = _analyzer(
        item_id,
        text,
        CallContext.model_validate(context) if context is not None else None,
        note_language=note_language,
    )
    return result.model_dump(mode="json")


class AnalysisPool:
    """``workers`` processes; each request answered within ``deadline_s`` or refused."""

    def __init__(
        self,
        summarizer: SummarizerSettings,
        detector: DetectorSettings,
        *,
        workers: int,
        deadline_s: float,
        task: Callable[..., dict[str, Any]] = _analyze,
    ) -> None:
        self.deadline_s = deadline_s
        self._task = task
        self._pool = ProcessPool(
            max_workers=workers,
            initializer=_load,
            initargs=(
                summarizer.model_dump(mode="python"),
                detector.model_dump(mode="python"),
            ),
            # spawn, not fork: the web server's threads and database connections stay home
            context=multiprocessing.get_context("spawn"),
        )

    def analyze(
        self,
        item_id: str | None,
        text: str,
        context: CallContext | None,
        *,
        note_language: str = "fi",
        deadline_s: float | None = None,
    ) -> AnalysisResult:
        future = self._pool.schedule(
            self._task,
            args=(
                item_id,
                text,
                context.model_dump(mode="json") if context is not None else None,
                note_language,
            ),
            timeout=deadline_s or self.deadline_s,
        )
        try:
            data = future.result()
        except FutureTimeout as exc:
            log.warning("an analysis passed its %.1f s deadline: stopped", self.deadline_s)
            raise AnalysisUnavailable("the analysis passed its deadline") from exc
        except ProcessExpired as exc:
            log.warning("an analysis process died (exit code %s)", exc.exitcode)
            raise AnalysisUnavailable("the analysis process died") from exc
        return AnalysisResult.model_validate(data)

    def close(self) -> None:
        self._pool.stop()
        self._pool.join(timeout=10)
