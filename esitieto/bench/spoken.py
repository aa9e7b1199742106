"""Spoken-vignette evaluation: the analyzer on what the bundled model hears on a phone line.

Each vignette is spoken by espeak-ng in its language, turned into 8 kHz μ-law telephone audio
with sox, transcribed by the configured engine (the bundled Whisper base by default), and the
transcript analysed as after a real call (both detectors, as configured). The output is
written as ``analyze --jsonl`` lines so that ``score.py`` of the evaluation harness scores it
exactly like the text run.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path

from esitieto.settings import Settings
from pretriage.analysis import analyze_text
from summarizer.text.schemas import CallContext

VOICES = {"fi": "fi", "sv": "sv", "en": "en-gb"}


class EvaluationError(RuntimeError):
    """A tool the evaluation needs is missing or failed."""


def speak_to_phone_audio(text: str, language: str, out: Path, rate: int = 150) -> Path:
    """espeak-ng → 8 kHz mono μ-law WAV, as a Twilio recording of a phone line sounds."""
    for tool in ("espeak-ng", "sox"):
        if shutil.which(tool) is None:
            raise EvaluationError(f"{tool} is not installed (scripts/install-system-deps.sh)")
    wide = out.with_suffix(".wide.wav")
    voice = VOICES.get(language, "fi")
    subprocess.run(
        ["espeak-ng", "-v", voice, "-s", str(rate), "-w", str(wide), text],
        check=True,
        capture_output=True,
    )
    subprocess.run(
        ["sox", "-R", str(wide), "-r", "8000", "-c", "1", "-e", "u-law", str(out)],
        check=True,
        capture_output=True,
    )
    wide.unlink()
    return out


def spoken_eval(cases_path: Path, out_dir: Path, settings: Settings) -> dict[str, float]:
    """Write ``transcripts.jsonl`` and ``analysis.jsonl`` to ``out_dir``; return timing figures."""
    from pretriage.detector import detector_from_settings
    from summarizer.speech.stt import average_confidence, get_engine

    out_dir.mkdir(parents=True, exist_ok=True)
    engine = get_engine(settings.asr, settings.data_dir)
    detector = detector_from_settings(settings.detector)  # as the product reads the words
    cases = [json.loads(x) for x in cases_path.read_text("utf-8").splitlines() if x.strip()]
    audio_s = asr_s = 0.0
    with (
        (out_dir / "transcripts.jsonl").open("w", encoding="utf-8") as tf,
        (out_dir / "analysis.jsonl").open("w", encoding="utf-8") as af,
    ):
        for case in cases:
            lang = case.get("lang") or case.get("context", {}).get("language") or "fi"
            wav = speak_to_phone_audio(case["text"], lang, out_dir / f"{case['id']}.wav")
            started = time.perf_counter()
            transcript = engine.transcribe(wav, language=lang)
            asr_s += time.perf_counter() - started
            audio_s += transcript.audio_duration_s
            context = CallContext.model_validate({**case.get("context", {}), "language": lang})
            result = analyze_text(
                case["id"],
                transcript.text,
                context,
                asr_confidence=average_confidence(transcript),
                detector=detector,
            )
            tf.write(
                json.dumps(
                    {"id": case["id"], "script": case["text"], "heard": transcript.text},
                    ensure_ascii=False,
                )
                + "\n"
            )
            af.write(result.model_dump_json() + "\n")
    return {
        "cases": len(cases),
        "audio_seconds": round(audio_s, 1),
        "asr_seconds": round(asr_s, 1),
        "real_time_factor": round(asr_s / audio_s, 3) if audio_s else 0.0,
    }
