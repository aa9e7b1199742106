"""Speech-to-text providers behind one small interface (after livekit/agents ``stt/stt.py``).

:class:`SpeechToText.transcribe` does what every engine needs (decode and validate the audio,
time the call, fill in the bookkeeping fields, keep engine failures apart from bad audio) and
leaves the recognition itself to ``_transcribe_impl``. :func:`get_engine` hands out one engine
per process, because a loaded Whisper model costs hundreds of MB and a second or two to load.

Error contract, which the pipeline relies on:

* bad audio (empty, corrupt, too long) raises :class:`~summarizer.audio.AudioError`: retrying
  will not help, the recording is marked failed with the message;
* silence is *not* an error: the caller said nothing, which is worth recording as such, so an
  empty :class:`Transcript` (``text == ""``, no segments) is returned without running a model;
* anything that goes wrong inside the engine raises :class:`TranscriptionError` (may be
  transient: out of memory, a damaged model), which the job queue retries.

Transcript text is health data: it is never logged here.
"""

from __future__ import annotations

import abc
import logging
import math
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from summarizer.audio import AudioClip, AudioError, SilentAudioError, load_audio
from summarizer.bundled_model import ensure_bundled_model
from summarizer.schemas import Transcript, TranscriptSegment

if TYPE_CHECKING:
    from esitieto.settings import AsrSettings

log = logging.getLogger(__name__)

FASTER_WHISPER_INSTALL_HINT = (
    "faster-whisper is not installed; install it with: pip install 'faster-whisper>=1.1,<2'"
)

NO_SPEECH_PROB_THRESHOLD = 0.6
"""With :data:`AVG_LOGPROB_THRESHOLD`: a segment the model thinks is probably not speech *and*
is unsure of the words is Whisper's classic hallucination on silence/noise ("Kiitos kun
katsoit!"); such segments are dropped."""
AVG_LOGPROB_THRESHOLD = -1.0

DEFAULT_MAX_AUDIO_SECONDS = 600.0


class TranscriptionError(RuntimeError):
    """The engine failed on audio that decoded fine (may be transient: worth a retry)."""


class SpeechToText(abc.ABC):
    name: str = ""
    model_name: str = ""
    max_audio_seconds: float = DEFAULT_MAX_AUDIO_SECONDS

    @property
    def loaded(self) -> bool:
        """Whether the model is in memory (engines without a model are always ready)."""
        return True

    def load(self) -> None:  # noqa: B027  (optional hook, deliberately empty)
        """Load the model now instead of on the first call (e.g. at worker start)."""

    def transcribe(
        self, audio: Path | bytes, *, language: str | None = None, prompt: str | None = None
    ) -> Transcript:
        """Transcribe one recording; see the module docstring for what raises and what not.

        ``language`` is an ISO 639-1 code (``"fi"``; ``"fi-FI"`` is accepted), None to detect.
        ``prompt`` is vocabulary to bias recognition (e.g. the station's drug names).
        """
        started = time.perf_counter()
        try:
            clip = load_audio(audio, max_seconds=self.max_audio_seconds)
        except SilentAudioError as exc:
            log.info("%s: %.1f s of silence, nothing to transcribe", self.name, exc.duration_s)
            return Transcript(
                text="",
                language=normalise_language(language) or "",
                audio_duration_s=exc.duration_s,
                processing_s=time.perf_counter() - started,
                engine=self.name,
                model=self.model_name,
            )
        try:
            result = self._transcribe_impl(
                clip, language=normalise_language(language), prompt=prompt or None
            )
        except AudioError:
            raise
        except Exception as exc:
            raise TranscriptionError(
                f"{self.name} failed on {clip.duration_s:.1f} s of audio: "
                f"{type(exc).__name__}: {exc}"
            ) from exc
        processing_s = time.perf_counter() - started
        log.info(
            "%s: %.1f s of audio in %.2f s, %d segments",
            self.name,
            clip.duration_s,
            processing_s,
            len(result.segments),
        )
        return result.model_copy(
            update={
                "processing_s": processing_s,
                "engine": self.name,
                "model": self.model_name,
                "audio_duration_s": clip.duration_s,
            }
        )

    @abc.abstractmethod
    def _transcribe_impl(
        self, clip: AudioClip, *, language: str | None, prompt: str | None
    ) -> Transcript: ...


class FasterWhisperEngine(SpeechToText):
    """Whisper on CTranslate2 (``faster-whisper``), CPU int8 by default."""

    name = "faster-whisper"

    def __init__(
        self,
        model_dir: Path | str,
        *,
        device: str = "cpu",
        compute_type: str = "int8",
        cpu_threads: int = 0,
        beam_size: int = 5,
        max_audio_seconds: float = DEFAULT_MAX_AUDIO_SECONDS,
    ) -> None:
        self.model_dir = Path(model_dir)
        if not (self.model_dir / "model.bin").is_file():
            raise FileNotFoundError(
                f"no CTranslate2 Whisper model in {self.model_dir} (model.bin is missing)"
            )
        self.model_name = self.model_dir.name
        self.device = device
        self.compute_type = compute_type
        self.cpu_threads = cpu_threads
        self.beam_size = beam_size
        self.max_audio_seconds = max_audio_seconds
        self._model: Any = None
        self._lock = threading.Lock()

    @property
    def loaded(self) -> bool:
        return self._model is not None

    def load(self) -> None:
        self._get_model()

    def _get_model(self) -> Any:
        if self._model is not None:
            return self._model
        with self._lock:
            if self._model is None:
                try:
                    from faster_whisper import WhisperModel
                except ImportError as exc:
                    raise ImportError(FASTER_WHISPER_INSTALL_HINT) from exc
                started = time.perf_counter()
                self._model = WhisperModel(
                    str(self.model_dir),
                    device=self.device,
                    compute_type=self.compute_type,
                    cpu_threads=self.cpu_threads,
                    local_files_only=True,
                )
                log.info(
                    "loaded Whisper model %s (%s, %s) in %.2f s",
                    self.model_name,
                    self.device,
                    self.compute_type,
                    time.perf_counter() - started,
                )
        return self._model

    def _transcribe_impl(
        self, clip: AudioClip, *, language: str | None, prompt: str | None
    ) -> Transcript:
        model = self._get_model()
        if language is not None and language not in model.supported_languages:
            log.warning("language %r is not supported by Whisper; detecting it", language)
            language = None
        segments, info = self._run(model, clip, language, prompt, vad=True)
        if not segments:
            # The clip has energy (silence never gets here) but VAD found no speech: a
            # quiet or unusual voice can fool it, so look again without VAD rather than
            # drop what the caller said. The hallucination filter still applies.
            log.info(
                "VAD found no speech in %.1f s of audio; retrying without VAD", clip.duration_s
            )
            segments, info = self._run(model, clip, language, prompt, vad=False)
        kept = [
            TranscriptSegment(
                start=float(s.start),
                end=float(s.end),
                text=s.text.strip(),
                avg_logprob=float(s.avg_logprob),
                no_speech_prob=float(s.no_speech_prob),
            )
            for s in segments
            if s.text.strip() and not is_hallucination(s.no_speech_prob, s.avg_logprob)
        ]
        return Transcript(
            text=" ".join(s.text for s in kept),
            language=info.language,
            language_probability=float(info.language_probability),
            segments=kept,
        )

    def _run(
        self, model: Any, clip: AudioClip, language: str | None, prompt: str | None, *, vad: bool
    ) -> tuple[list[Any], Any]:
        segments, info = model.transcribe(
            clip.samples,
            language=language,
            beam_size=self.beam_size,
            initial_prompt=prompt,
            vad_filter=vad,
            condition_on_previous_text=False,  # a wrong segment cannot start a repetition loop
        )
        return list(segments), info  # the generator does the actual decoding


def is_hallucination(no_speech_prob: float | None, avg_logprob: float | None) -> bool:
    """Whisper's tell-tale for words invented over silence (see the thresholds)."""
    if no_speech_prob is None or avg_logprob is None:
        return False
    return no_speech_prob > NO_SPEECH_PROB_THRESHOLD and avg_logprob < AVG_LOGPROB_THRESHOLD


def normalise_language(language: str | None) -> str | None:
    """``"fi-FI"``/``"FI"`` → ``"fi"``; empty → None (detect)."""
    if not language or not language.strip():
        return None
    return language.strip().replace("_", "-").split("-")[0].lower()


def average_confidence(t: Transcript) -> float | None:
    """Mean per-token probability, exp(avg_logprob), over segments weighted by duration.

    None when there is nothing to judge (no segments with a logprob). Pretriage sends calls
    under its threshold to a human instead of trusting the words.
    """
    pairs = [
        (max(s.end - s.start, 0.0), math.exp(s.avg_logprob))
        for s in t.segments
        if s.avg_logprob is not None
    ]
    if not pairs:
        return None
    total = sum(w for w, _ in pairs)
    if total <= 0:
        return sum(p for _, p in pairs) / len(pairs)
    return sum(w * p for w, p in pairs) / total


# -- the process-wide engine -----------------------------------------------------------------


def _make_faster_whisper(settings: AsrSettings, data_dir: Path) -> SpeechToText:
    model_dir = (
        Path(settings.model) if settings.model else ensure_bundled_model(Path(data_dir) / "models")
    )
    return FasterWhisperEngine(
        model_dir,
        device=settings.device,
        compute_type=settings.compute_type,
        cpu_threads=settings.cpu_threads,
        beam_size=settings.beam_size,
        max_audio_seconds=settings.max_audio_seconds,
    )


ENGINES: dict[str, Callable[[AsrSettings, Path], SpeechToText]] = {
    "faster-whisper": _make_faster_whisper,
}
"""Engine name (``ESITIETO_ASR__ENGINE``) → factory. Add openai-whisper, transformers… here."""

_engine_lock = threading.Lock()
_engine: tuple[tuple[Any, ...], SpeechToText] | None = None


def get_engine(settings: AsrSettings, data_dir: Path) -> SpeechToText:
    """The process-wide engine for these settings (one model per process).

    Asking with different settings replaces the cached engine, so the old model is freed.
    """
    global _engine
    factory = ENGINES.get(settings.engine)
    if factory is None:
        raise ValueError(
            f"unknown speech-to-text engine {settings.engine!r}; "
            f"available: {', '.join(sorted(ENGINES))}"
        )
    key = _cache_key(settings, data_dir)
    with _engine_lock:
        if _engine is not None and _engine[0] == key:
            return _engine[1]
        engine = factory(settings, Path(data_dir))
        _engine = (key, engine)
        return engine


def engine_loaded() -> bool:
    """Whether this process has a model in memory (for ``/healthz``)."""
    cached = _engine
    return cached is not None and cached[1].loaded


def _cache_key(settings: AsrSettings, data_dir: Path) -> tuple[Any, ...]:
    fields = tuple(sorted(settings.model_dump().items()))
    model = str(Path(settings.model).resolve()) if settings.model else None
    bundled_in = None if settings.model else str((Path(data_dir) / "models").resolve())
    return (fields, model, bundled_in)


def _reset_engine_cache() -> None:
    """Forget the cached engine (tests)."""
    global _engine
    with _engine_lock:
        _engine = None
