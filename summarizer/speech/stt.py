"""Speech-to-text providers behind one small interface (after livekit/agents ``stt/stt.py``).

:class:`SpeechToText.transcribe` does what every engine needs (decode and validate the audio,
time the call, fill in the bookkeeping fields, keep engine failures apart from bad audio) and
leaves the recognition itself to ``_transcribe_impl``. :func:`get_engine` hands out one engine
per process, because a loaded Whisper model costs hundreds of MB and a second or two to load.

Error contract, which the pipeline relies on:

* bad audio (empty, corrupt, too long) raises :class:`~summarizer.speech.audio.AudioError`: retrying
  will not help, the recording is marked failed with the message;
* silence is *not* an error: the caller said nothing, which is worth recording as such, so an
  empty :class:`Transcript` (``text == ""``, no segments) is returned without running a model;
* anything that goes wrong inside the engine raises :class:`TranscriptionError` (may be
  transient: out of memory, a damaged model), which the job queue retries.

Transcript text is health data: it is never logged here.
"""

from __future__ import annotations

import abc
import contextlib
import logging
import math
import os
import re
import threading
import time
import tomllib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from summarizer.speech.audio import SAMPLE_RATE, AudioClip, AudioError, SilentAudioError, load_audio
from summarizer.speech.bundled_model import ensure_bundled_model
from summarizer.speech.schemas import Transcript, TranscriptSegment

if TYPE_CHECKING:
    from summarizer.speech.settings import AsrSettings

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


@dataclass(frozen=True)
class DecodeOptions:
    """How an engine decodes: the same options mean the same thing for every engine.

    :data:`TUNED` is what the product uses (chosen by ``esitieto bench asr``);
    :data:`WHISPER_DEFAULTS` is what the libraries do out of the box, kept for comparison.
    """

    beam_size: int = 5
    vad: bool = True
    """Trim silence with Silero VAD first (never dropping speech: see ``transcribe``)."""
    condition_on_previous_text: bool = False
    """Off: a wrong segment cannot start a repetition loop in the next one."""
    vocabulary_prompt: bool = True
    """Bias recognition towards the words callers use (``prompts/asr.toml``)."""
    languages: tuple[str, ...] = ("fi", "sv", "en")
    """When the language is not known, detect it among these only (empty: any)."""
    temperatures: tuple[float, ...] = (0.0,)
    """One temperature: decoding never samples, so the same audio gives the same words on
    every run on a machine (with Whisper's fallback to 0.2…1.0 a noisy chest-pain call was
    "emergency" on one run and "urgent" on the next). Measured on the ``bench asr`` corpus:
    WER 0.68 without the fallback against 0.71 with it, and 0.88 against 0.93 under line
    noise; repetition loops, which the fallback is for, are collapsed afterwards."""
    compression_ratio_threshold: float | None = 2.4


TUNED = DecodeOptions()
WHISPER_DEFAULTS = DecodeOptions(
    vad=False,
    condition_on_previous_text=True,
    vocabulary_prompt=False,
    languages=(),
    temperatures=(0.0, 0.2, 0.4, 0.6, 0.8, 1.0),
)


class SpeechToText(abc.ABC):
    name: str = ""
    model_name: str = ""
    max_audio_seconds: float = DEFAULT_MAX_AUDIO_SECONDS
    options: DecodeOptions = TUNED
    concurrency: int = 1
    """In-call transcriptions that may run at once: one for a model on this machine (it uses
    every core already), one per server for a pool of servers."""

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

        ``language`` is an ISO 639-1 code (``"fi"``; ``"fi-FI"`` is accepted), None to detect
        (among :attr:`DecodeOptions.languages`). ``prompt`` is vocabulary to bias recognition;
        None: the catalogue's medical vocabulary for the language, if the options say so.
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
            result = self._decode(clip, normalise_language(language), prompt)
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

    def _decode(self, clip: AudioClip, language: str | None, prompt: str | None) -> Transcript:
        """VAD, language, prompt, the engine, then the guards against invented text."""
        speech, timeline = clip, None
        if self.options.vad:
            trimmed = speech_only(clip)
            if trimmed is None:
                # The clip has energy (silence never gets here) but VAD found no speech: a
                # quiet or unusual voice can fool it, so transcribe it all rather than drop
                # what the caller said. The hallucination filter still applies.
                log.info("VAD found no speech in %.1f s of audio; using all", clip.duration_s)
            else:
                speech, timeline = trimmed
        probability: float | None = None
        if language is None and self.options.languages:
            language, probability = self._pick_language(speech)
        if prompt is None and self.options.vocabulary_prompt:
            prompt = vocabulary_prompt(language)
        result = self._unprompted_if_echo(speech, language, prompt)
        if timeline is not None:
            result = result.model_copy(update={"segments": timeline.restore(result.segments)})
        kept = clean_segments(result.segments)
        if not kept and timeline is not None:
            log.info("nothing heard in the speech VAD found; transcribing all the audio")
            result = self._unprompted_if_echo(clip, language, prompt)
            kept = clean_segments(result.segments)
        return result.model_copy(
            update={
                "segments": kept,
                "text": " ".join(s.text for s in kept),
                "language_probability": (
                    probability if probability is not None else result.language_probability
                ),
            }
        )

    def _unprompted_if_echo(
        self, clip: AudioClip, language: str | None, prompt: str | None
    ) -> Transcript:
        result = self._transcribe_impl(clip, language=language, prompt=prompt)
        if prompt and echoes_prompt(result.text, prompt):
            # Over noise or unclear speech Whisper may just continue its prompt: those words
            # would be invented symptoms. Keep only what the audio gives without the prompt.
            log.info(
                "%s: the transcript repeats the vocabulary prompt; decoding without it", self.name
            )
            result = self._transcribe_impl(clip, language=language, prompt=None)
        return result

    def _pick_language(self, clip: AudioClip) -> tuple[str | None, float | None]:
        """The most likely of the allowed languages (a caller on a Finnish health station's
        line speaks Finnish, Swedish or English, whatever else the robot voice sounds like)."""
        probs = self._language_probabilities(clip)
        allowed = {k: v for k, v in probs.items() if k in self.options.languages}
        if not allowed:
            return None, None
        best = max(allowed, key=lambda k: allowed[k])
        return best, allowed[best] / (sum(allowed.values()) or 1.0)

    def _language_probabilities(self, clip: AudioClip) -> dict[str, float]:
        """Language code → probability from the first 30 s; {} lets the engine detect."""
        return {}

    @abc.abstractmethod
    def _transcribe_impl(
        self, clip: AudioClip, *, language: str | None, prompt: str | None
    ) -> Transcript: ...


class LazyModelEngine(SpeechToText):
    """An engine whose model is loaded once, on first use, by whichever thread needs it first."""

    _model: Any = None

    def __init__(self) -> None:
        self._model = None
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
                started = time.perf_counter()
                self._model = self._load_model()
                log.info(
                    "%s: loaded %s in %.2f s",
                    self.name,
                    self.model_name,
                    time.perf_counter() - started,
                )
        return self._model

    @abc.abstractmethod
    def _load_model(self) -> Any: ...


class FasterWhisperEngine(LazyModelEngine):
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
        options: DecodeOptions | None = None,
    ) -> None:
        self.model_dir = Path(model_dir)
        if not (self.model_dir / "model.bin").is_file():
            raise FileNotFoundError(
                f"no CTranslate2 Whisper model in {self.model_dir} (model.bin is missing)"
            )
        super().__init__()
        self.model_name = self.model_dir.name
        self.device = device
        self.compute_type = compute_type
        self.cpu_threads = cpu_threads
        self.options = replace(options or TUNED, beam_size=beam_size)
        self.beam_size = beam_size
        self.max_audio_seconds = max_audio_seconds

    def _load_model(self) -> Any:
        try:
            from faster_whisper import WhisperModel
        except ImportError as exc:
            raise ImportError(FASTER_WHISPER_INSTALL_HINT) from exc
        return WhisperModel(
            str(self.model_dir),
            device=self.device,
            compute_type=self.compute_type,
            cpu_threads=self.cpu_threads,
            local_files_only=True,
        )

    def _language_probabilities(self, clip: AudioClip) -> dict[str, float]:
        model = self._get_model()
        _, _, all_probs = model.detect_language(audio=clip.samples)
        return {str(code): float(p) for code, p in all_probs}

    def _transcribe_impl(
        self, clip: AudioClip, *, language: str | None, prompt: str | None
    ) -> Transcript:
        model = self._get_model()
        if language is not None and language not in model.supported_languages:
            log.warning("language %r is not supported by Whisper; detecting it", language)
            language = None
        opts = self.options
        segments, info = model.transcribe(
            clip.samples,
            language=language,
            beam_size=opts.beam_size,
            initial_prompt=prompt,
            vad_filter=False,  # done once for every engine in SpeechToText._decode
            condition_on_previous_text=opts.condition_on_previous_text,
            temperature=list(opts.temperatures),
            compression_ratio_threshold=opts.compression_ratio_threshold,
        )
        decoded = [  # the generator does the actual decoding
            TranscriptSegment(
                start=float(s.start),
                end=float(s.end),
                text=s.text.strip(),
                avg_logprob=float(s.avg_logprob),
                no_speech_prob=float(s.no_speech_prob),
            )
            for s in segments
        ]
        return Transcript(
            text=" ".join(s.text for s in decoded),
            language=info.language,
            language_probability=float(info.language_probability),
            segments=decoded,
        )


# -- shared steps ------------------------------------------------------------------------------


@dataclass(frozen=True)
class SpeechTimeline:
    """Where the kept speech was in the original audio, to put segment times back."""

    chunks: tuple[tuple[int, int], ...]
    """(start, end) sample indices of each speech chunk in the original audio."""

    def original_time(self, t: float) -> float:
        """A time in the concatenated speech → the same moment in the original audio."""
        offset = 0.0
        for start, end in self.chunks:
            length = (end - start) / SAMPLE_RATE
            if t <= offset + length:
                return start / SAMPLE_RATE + (t - offset)
            offset += length
        last_end = self.chunks[-1][1]
        return last_end / SAMPLE_RATE + (t - offset)

    def restore(self, segments: list[TranscriptSegment]) -> list[TranscriptSegment]:
        return [
            s.model_copy(
                update={"start": self.original_time(s.start), "end": self.original_time(s.end)}
            )
            for s in segments
        ]


SPEECH_PAD_MS = 400
"""Kept around each speech chunk: VAD cuts close, and a clipped first syllable is a lost word."""


def speech_only(clip: AudioClip) -> tuple[AudioClip, SpeechTimeline] | None:
    """The clip with silence cut out (Silero VAD, as faster-whisper ships it), or None when
    VAD finds no speech at all."""
    from faster_whisper.vad import VadOptions, get_speech_timestamps

    chunks = get_speech_timestamps(
        clip.samples, VadOptions(speech_pad_ms=SPEECH_PAD_MS, min_silence_duration_ms=1000)
    )
    if not chunks:
        return None
    spans = tuple((int(c["start"]), int(c["end"])) for c in chunks)
    samples = np.concatenate([clip.samples[a:b] for a, b in spans]).astype(np.float32)
    trimmed = AudioClip(
        samples=samples,
        duration_s=samples.size / SAMPLE_RATE,
        source_sample_rate=clip.source_sample_rate,
    )
    return trimmed, SpeechTimeline(spans)


def clean_segments(segments: list[TranscriptSegment]) -> list[TranscriptSegment]:
    """Drop Whisper's inventions over silence and collapse its repetition loops."""
    kept = []
    for s in segments:
        if is_hallucination(s.no_speech_prob, s.avg_logprob):
            continue
        text = collapse_repetitions(s.text.strip())
        if text:
            kept.append(s.model_copy(update={"text": text}))
    return kept


_REPEAT = re.compile(r"(\b.{2,60}?)(?:[\s,.]*\1){2,}", re.IGNORECASE | re.DOTALL)
"""A phrase of 2-60 characters said three or more times in a row."""


def collapse_repetitions(text: str) -> str:
    """ "kiitos kiitos kiitos kiitos..." → "kiitos": a looping decoder, not the caller."""
    previous = None
    while previous != text:
        previous = text
        text = _REPEAT.sub(r"\1", text)
    return re.sub(r"\s{2,}", " ", text).strip()


_WORD = re.compile(r"\w+", re.UNICODE)
ECHO_SHARE = 0.5
"""A transcript whose content words are at least this share prompt words is checked again
without the prompt: over noise Whisper "hears" its prompt, and a prompt full of symptoms would
turn line noise into chest pain."""
CONTENT_WORD_MIN = 4


def echoes_prompt(text: str, prompt: str) -> bool:
    """Whether ``text`` is mostly words of ``prompt`` (it may be the prompt, not the caller)."""
    prompted = {w.lower() for w in _WORD.findall(prompt)}
    said = [w.lower() for w in _WORD.findall(text) if len(w) >= CONTENT_WORD_MIN]
    if not said:
        return False
    return sum(w in prompted for w in said) / len(said) >= ECHO_SHARE


@lru_cache(maxsize=1)
def _vocabulary() -> dict[str, Any]:
    with (Path(__file__).parent / "prompts" / "asr.toml").open("rb") as f:
        return tomllib.load(f)


def vocabulary_prompt(language: str | None) -> str | None:
    """The words callers use, in the language's own spelling (``prompts/asr.toml``)."""
    entry = _vocabulary().get(language or "")
    return str(entry["prompt"]).strip() if entry else None


IN_CALL_NICENESS = 10


def _lower_priority() -> None:
    """In-call transcription yields the CPU to the webhooks of every other call in flight
    (Linux schedules threads separately; threads the engine starts from here inherit it)."""
    # not Linux, or not permitted: run at normal priority
    with contextlib.suppress(AttributeError, OSError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), IN_CALL_NICENESS)


_in_call_pools: dict[int, ThreadPoolExecutor] = {}
_in_call_pools_lock = threading.Lock()


def _in_call_pool(concurrency: int) -> ThreadPoolExecutor:
    """In-call transcriptions run ``engine.concurrency`` at a time: with a local model one, so
    a second caller waits rather than halving the first's speed; with a pool of servers one per
    server."""
    with _in_call_pools_lock:
        pool = _in_call_pools.get(concurrency)
        if pool is None:
            pool = _in_call_pools[concurrency] = ThreadPoolExecutor(
                max_workers=concurrency,
                thread_name_prefix="in-call-stt",
                initializer=_lower_priority,
            )
        return pool


def transcribe_within(
    engine: SpeechToText,
    audio: Path | bytes,
    *,
    budget_s: float,
    language: str | None = None,
) -> Transcript | None:
    """The transcript if it is ready within ``budget_s``, else None, for use while the caller
    waits on the line (e.g. to confirm the first answer). None never loses anything: the
    after-call pipeline transcribes every recording anyway. Errors are raised as usual."""
    future = _in_call_pool(max(1, engine.concurrency)).submit(
        engine.transcribe, audio, language=language
    )
    try:
        return future.result(timeout=budget_s)
    except FutureTimeout:
        future.cancel()  # still queued behind another caller's: never start it
        log.info("%s: in-call transcription over its %.1f s budget", engine.name, budget_s)
        return None


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


def decode_options(settings: AsrSettings) -> DecodeOptions:
    base = TUNED if settings.decoding == "tuned" else WHISPER_DEFAULTS
    return replace(base, beam_size=settings.beam_size)


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
        options=decode_options(settings),
    )


def _converted_bundled(data_dir: Path, fmt: Literal["openai", "hf"]) -> Path:
    """The bundled model in another engine's format (converted once, then cached)."""
    from summarizer.speech.convert import ensure_converted

    models = Path(data_dir) / "models"
    return ensure_converted(ensure_bundled_model(models), models, fmt)


def _reference_engine(
    class_name: str, fmt: Literal["openai", "hf"]
) -> Callable[[AsrSettings, Path], SpeechToText]:
    """A factory for openai-whisper or transformers: the configured model, else the bundled
    weights converted to the engine's format."""

    def make(settings: AsrSettings, data_dir: Path) -> SpeechToText:
        from summarizer.speech import engines as stt_engines

        engine_class = getattr(stt_engines, class_name)
        model = Path(settings.model) if settings.model else _converted_bundled(data_dir, fmt)
        engine: SpeechToText = engine_class(
            model,
            device=settings.device,
            cpu_threads=settings.cpu_threads,
            max_audio_seconds=settings.max_audio_seconds,
            options=decode_options(settings),
        )
        return engine

    return make


def _make_remote(settings: AsrSettings, data_dir: Path) -> SpeechToText:
    """A pool of OpenAI-compatible servers, falling back to faster-whisper on this machine."""
    from summarizer.speech.remote import FallbackSpeechToText, RemoteSpeechToText

    key = settings.remote_api_key
    remote = RemoteSpeechToText(
        settings.remote_urls,
        model=settings.remote_model,
        api_key=key.get_secret_value() if key else None,
        timeout_s=settings.remote_timeout_s,
        max_audio_seconds=settings.max_audio_seconds,
        options=replace(decode_options(settings), languages=()),
    )
    if not settings.remote_fallback:
        return remote
    local: list[SpeechToText] = []

    def fallback() -> SpeechToText:
        if not local:  # built (and its model loaded) only when a server first fails
            local.append(_make_faster_whisper(settings, data_dir))
        return local[0]

    return FallbackSpeechToText(remote, fallback)


ENGINES: dict[str, Callable[[AsrSettings, Path], SpeechToText]] = {
    "faster-whisper": _make_faster_whisper,
    "remote": _make_remote,
    "openai-whisper": _reference_engine("OpenAIWhisperEngine", "openai"),
    "transformers": _reference_engine("TransformersWhisperEngine", "hf"),
}
"""Engine name (``ESITIETO_ASR__ENGINE``) → factory; every one runs the bundled weights by
default and any model of its format given in ``ESITIETO_ASR__MODEL``."""

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
