"""``esitieto bench asr``: the three engines on the same weights and the same phone audio.

A fixed corpus of invented callers (``asr_scripts.yaml``) is spoken by espeak-ng and turned
into 8 kHz μ-law WAV, as a phone line delivers it. Each engine then runs in a fresh process
(so its peak memory is its own and no model is shared) and transcribes every clip; the word
error rate is computed against the script with jiwer after Whisper's own text normalisation.
"""

from __future__ import annotations

import hashlib
import multiprocessing as mp
import resource
import shutil
import subprocess
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from summarizer.speech.settings import AsrSettings

SCRIPTS = Path(__file__).with_name("asr_scripts.yaml")
BENCH_INSTALL_HINT = "the ASR benchmark needs jiwer and openai-whisper: pip install -e '.[test]'"


class BenchError(RuntimeError):
    """The benchmark cannot run here (a missing tool or package); the message says which."""


@dataclass(frozen=True)
class Clip:
    id: str
    language: str
    text: str
    path: Path
    duration_s: float


@dataclass(frozen=True)
class Variant:
    """One row of the table: an engine with its decoding settings."""

    label: str
    engine: str
    decoding: str = "tuned"
    beam_size: int = 5
    language_known: bool = True
    """Give the script's language (as the station and the caller's menu choice do)."""
    vad: bool | None = None
    vocabulary_prompt: bool | None = None


@dataclass
class Row:
    variant: Variant
    audio_s: float = 0.0
    total_s: float = 0.0
    load_s: float = 0.0
    peak_mb: float = 0.0
    wer: float = 0.0
    wer_by_language: dict[str, float] = field(default_factory=dict)
    hypotheses: dict[str, str] = field(default_factory=dict)

    @property
    def rtf(self) -> float:
        return self.total_s / self.audio_s if self.audio_s else 0.0


ENGINE_VARIANTS = (
    Variant("faster-whisper (int8)", "faster-whisper"),
    Variant("openai-whisper (fp32)", "openai-whisper"),
    Variant("transformers (fp32)", "transformers"),
)
DEFAULTS_VARIANT = Variant(
    "faster-whisper, library defaults", "faster-whisper", decoding="defaults", language_known=False
)
TUNING_GRID = (
    Variant("tuned, no VAD", "faster-whisper", vad=False),
    Variant("tuned, no prompt", "faster-whisper", vocabulary_prompt=False),
    Variant("tuned, beam 1", "faster-whisper", beam_size=1),
    Variant("tuned, language detected among fi/sv/en", "faster-whisper", language_known=False),
)


def build_corpus(cache_dir: Path, scripts: Path = SCRIPTS) -> list[Clip]:
    """Synthesise the corpus once; a clip's file name is the hash of its voice and words."""
    for tool in ("espeak-ng", "sox"):
        if shutil.which(tool) is None:
            raise BenchError(f"{tool} is not installed (make test installs it)")
    data = yaml.safe_load(scripts.read_text(encoding="utf-8"))
    cache_dir.mkdir(parents=True, exist_ok=True)
    clips = []
    for item in data["scripts"]:
        digest = hashlib.sha256(f"{item['voice']}|{item['text']}|R".encode()).hexdigest()[:12]
        out = cache_dir / f"{item['id']}-{digest}.wav"
        if not out.exists():
            wide = out.with_suffix(".22k.wav")
            subprocess.run(
                ["espeak-ng", "-v", item["voice"], "-s", "150", "-w", str(wide), item["text"]],
                check=True,
                capture_output=True,
            )
            tmp = out.with_suffix(".tmp.wav")
            subprocess.run(
                ["sox", "-R", str(wide), "-r", "8000", "-c", "1", "-e", "u-law", str(tmp)],
                check=True,
                capture_output=True,
            )
            wide.unlink()
            tmp.replace(out)
        duration = float(
            subprocess.run(
                ["soxi", "-D", str(out)], check=True, capture_output=True, text=True
            ).stdout
        )
        clips.append(Clip(item["id"], item["lang"], item["text"], out, duration))
    return clips


def _child(
    variant: Variant, asr: dict[str, Any], data_dir: str, clips: list[Clip], conn: Any
) -> None:
    """Runs in a fresh process: load the engine, transcribe every clip, report."""
    from dataclasses import replace

    from summarizer.speech.stt import get_engine

    try:
        settings = AsrSettings.model_validate(asr)
        engine = get_engine(settings, Path(data_dir))
        if variant.vad is not None:
            engine.options = replace(engine.options, vad=variant.vad)
        if variant.vocabulary_prompt is not None:
            engine.options = replace(engine.options, vocabulary_prompt=variant.vocabulary_prompt)
        started = time.perf_counter()
        engine.load()
        load_s = time.perf_counter() - started
        texts, total = {}, 0.0
        for clip in clips:
            t = engine.transcribe(
                clip.path, language=clip.language if variant.language_known else None
            )
            texts[clip.id] = t.text
            total += t.processing_s
        peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        conn.send({"texts": texts, "total_s": total, "load_s": load_s, "peak_mb": peak_kb / 1024})
    except Exception as exc:  # reported to the parent, which prints it
        conn.send({"error": f"{type(exc).__name__}: {exc}"})
    finally:
        conn.close()


def run_variant(variant: Variant, clips: list[Clip], data_dir: Path, base: AsrSettings) -> Row:
    asr = base.model_copy(
        update={
            "engine": variant.engine,
            "decoding": variant.decoding,
            "beam_size": variant.beam_size,
            "model": None,
        }
    ).model_dump()
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_child, args=(variant, asr, str(data_dir), clips, child))
    proc.start()
    child.close()
    try:
        result = parent.recv()
    except EOFError:
        result = {"error": "the benchmark process died"}
    proc.join()
    if "error" in result:
        raise BenchError(f"{variant.label}: {result['error']}")
    row = Row(variant, audio_s=sum(c.duration_s for c in clips))
    row.total_s, row.load_s, row.peak_mb = result["total_s"], result["load_s"], result["peak_mb"]
    row.hypotheses = result["texts"]
    row.wer, row.wer_by_language = word_error_rates(clips, row.hypotheses)
    return row


def word_error_rates(clips: list[Clip], hyps: dict[str, str]) -> tuple[float, dict[str, float]]:
    try:
        import jiwer
        from whisper.normalizers import BasicTextNormalizer
    except ImportError as exc:
        raise BenchError(BENCH_INSTALL_HINT) from exc
    norm = BasicTextNormalizer()

    def wer(subset: list[Clip]) -> float:
        refs = [norm(c.text) for c in subset]
        outs = [norm(hyps.get(c.id, "")) for c in subset]
        return float(jiwer.wer(refs, outs))

    by_language = {
        lang: round(wer([c for c in clips if c.language == lang]), 3)
        for lang in sorted({c.language for c in clips})
    }
    return round(wer(clips), 3), by_language


def bench_asr(
    data_dir: Path, *, grid: bool = False, engines: tuple[str, ...] | None = None
) -> list[Row]:
    clips = build_corpus(data_dir / "bench-asr")
    base = AsrSettings()
    variants = [v for v in ENGINE_VARIANTS if engines is None or v.engine in engines]
    variants.append(DEFAULTS_VARIANT)
    if grid:
        variants.extend(TUNING_GRID)
    return [run_variant(v, clips, data_dir, base) for v in variants]


def table(rows: list[Row]) -> str:
    """The Markdown table printed after a run (and pasted into the README)."""
    langs = sorted({k for r in rows for k in r.wer_by_language})
    head = ["engine / settings", "RTF", "total s", "load s", "peak MB", "WER"] + [
        f"WER {lang}" for lang in langs
    ]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [
            r.variant.label,
            f"{r.rtf:.3f}",
            f"{r.total_s:.1f}",
            f"{r.load_s:.1f}",
            f"{r.peak_mb:.0f}",
            f"{r.wer:.3f}",
        ] + [f"{r.wer_by_language.get(lang, 0):.3f}" for lang in langs]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def summary(rows: list[Row]) -> dict[str, Any]:
    """The figures the issue asks for, computed from the rows (None when a row is missing)."""
    by = {r.variant.label: r for r in rows}
    fw, ow = by.get(ENGINE_VARIANTS[0].label), by.get(ENGINE_VARIANTS[1].label)
    defaults = by.get(DEFAULTS_VARIANT.label)
    return {
        "speedup_faster_vs_openai": round(ow.total_s / fw.total_s, 2) if fw and ow else None,
        "wer_points_faster_minus_openai": (
            round(100 * (fw.wer - ow.wer), 1) if fw and ow else None
        ),
        "wer_tuned": fw.wer if fw else None,
        "wer_defaults": defaults.wer if defaults else None,
        "rows": [
            {**asdict(r.variant), "rtf": round(r.rtf, 3), "total_s": round(r.total_s, 2),
             "load_s": round(r.load_s, 2), "peak_mb": round(r.peak_mb), "wer": r.wer,
             "wer_by_language": r.wer_by_language}
            for r in rows
        ],
    }  # fmt: skip
