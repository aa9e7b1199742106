"""The reference engines, on the same weights as the default: openai-whisper and transformers.

faster-whisper (``stt.py``) is what the product runs. These two are here to measure it against
(``esitieto bench asr``) and to run Hugging Face-format models, e.g. a Finnish fine-tune, that
have no CTranslate2 conversion. Their libraries are optional (``pip install
'esitieto[engines]'``) and imported only when an engine is made.

Both get speech-only audio from :class:`~summarizer.speech.stt.SpeechToText` (the same VAD, language
choice, vocabulary prompt and guards as faster-whisper) and decode on CPU in float32: the
weights are the bundled model's float16 values, exactly.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

import numpy as np

from summarizer.speech.audio import SAMPLE_RATE, AudioClip
from summarizer.speech.schemas import Transcript, TranscriptSegment
from summarizer.speech.stt import (
    AVG_LOGPROB_THRESHOLD as LOGPROB_THRESHOLD,
)
from summarizer.speech.stt import (
    DEFAULT_MAX_AUDIO_SECONDS,
    NO_SPEECH_PROB_THRESHOLD,
    TUNED,
    DecodeOptions,
    LazyModelEngine,
)

log = logging.getLogger(__name__)

ENGINES_INSTALL_HINT = "install the reference engines with: pip install 'esitieto[engines]'"
WINDOW_S = 30
"""Whisper's input window (language detection looks at the first one)."""
NO_SPEECH_THRESHOLD = NO_SPEECH_PROB_THRESHOLD


def _import(module: str) -> Any:
    try:
        return __import__(module)
    except ImportError as exc:
        raise ImportError(f"{module} is not installed; {ENGINES_INSTALL_HINT}") from exc


class OpenAIWhisperEngine(LazyModelEngine):
    """The reference implementation (``openai-whisper``) on an openai-format checkpoint."""

    name = "openai-whisper"

    def __init__(
        self,
        checkpoint: Path | str,
        *,
        device: str = "cpu",
        cpu_threads: int = 0,
        max_audio_seconds: float = DEFAULT_MAX_AUDIO_SECONDS,
        options: DecodeOptions | None = None,
    ) -> None:
        self.checkpoint = Path(checkpoint)
        if not self.checkpoint.is_file():
            raise FileNotFoundError(f"no openai-whisper checkpoint at {self.checkpoint}")
        super().__init__()
        self.model_name = self.checkpoint.stem
        self.device = device
        self.cpu_threads = cpu_threads
        self.max_audio_seconds = max_audio_seconds
        self.options = options or TUNED

    def _load_model(self) -> Any:
        _import("whisper")
        torch = _import("torch")
        from summarizer.speech.convert import load_openai_model

        if self.cpu_threads:
            torch.set_num_threads(self.cpu_threads)
        # not whisper.load_model: it drops the checkpoint's alignment heads
        return load_openai_model(self.checkpoint, device=self.device)

    def _language_probabilities(self, clip: AudioClip) -> dict[str, float]:
        whisper = _import("whisper")
        model = self._get_model()
        audio = whisper.pad_or_trim(clip.samples)
        mel = whisper.log_mel_spectrogram(audio, n_mels=model.dims.n_mels).to(model.device)
        _, probs = model.detect_language(mel)
        return {str(k): float(v) for k, v in probs.items()}

    def _transcribe_impl(
        self, clip: AudioClip, *, language: str | None, prompt: str | None
    ) -> Transcript:
        whisper = _import("whisper")
        model = self._get_model()
        opts = self.options
        beam = {"beam_size": opts.beam_size, "best_of": 5} if opts.beam_size > 1 else {}
        result = whisper.transcribe(
            model,
            clip.samples,
            language=language,
            task="transcribe",
            initial_prompt=prompt,
            temperature=opts.temperatures,
            compression_ratio_threshold=opts.compression_ratio_threshold,
            condition_on_previous_text=opts.condition_on_previous_text,
            fp16=False,
            verbose=None,
            **beam,
        )
        segments = [
            TranscriptSegment(
                start=float(s["start"]),
                end=float(s["end"]),
                text=str(s["text"]).strip(),
                avg_logprob=float(s["avg_logprob"]),
                no_speech_prob=float(s["no_speech_prob"]),
            )
            for s in result["segments"]
        ]
        return Transcript(
            text=" ".join(s.text for s in segments),
            language=str(result.get("language") or language or ""),
            segments=segments,
        )


class TransformersWhisperEngine(LazyModelEngine):
    """Whisper in Hugging Face ``transformers`` format (a converted bundled model, or any
    fine-tune saved with ``save_pretrained``), from a local directory only."""

    name = "transformers"

    def __init__(
        self,
        model_dir: Path | str,
        *,
        device: str = "cpu",
        cpu_threads: int = 0,
        max_audio_seconds: float = DEFAULT_MAX_AUDIO_SECONDS,
        options: DecodeOptions | None = None,
    ) -> None:
        self.model_dir = Path(model_dir)
        weights = [
            *self.model_dir.glob("*.safetensors"),
            *self.model_dir.glob("pytorch_model*.bin"),
        ]
        if not (self.model_dir / "config.json").is_file() or not weights:
            raise FileNotFoundError(
                f"no Hugging Face Whisper model in {self.model_dir} "
                "(needs config.json and *.safetensors or pytorch_model.bin)"
            )
        super().__init__()
        self.model_name = self.model_dir.name
        self.device = device
        self.cpu_threads = cpu_threads
        self.max_audio_seconds = max_audio_seconds
        self.options = options or TUNED

    def _load_model(self) -> tuple[Any, Any]:
        """(processor, model), from the local directory only."""
        transformers = _import("transformers")
        torch = _import("torch")
        if self.cpu_threads:
            torch.set_num_threads(self.cpu_threads)
        processor = transformers.WhisperProcessor.from_pretrained(
            str(self.model_dir), local_files_only=True
        )
        model = transformers.WhisperForConditionalGeneration.from_pretrained(
            str(self.model_dir), local_files_only=True, dtype=torch.float32
        ).to(self.device)
        model.eval()
        return processor, model

    def _features(self, samples: np.ndarray) -> tuple[Any, Any]:
        """Log-mel features and their mask. Unpadded audio: transformers then pads in the mel
        domain as openai-whisper and faster-whisper do (padding the audio to 30 s instead
        changes the features, and the words)."""
        processor, model = self._get_model()
        inputs = processor.feature_extractor(
            samples,
            sampling_rate=SAMPLE_RATE,
            return_tensors="pt",
            truncation=False,
            padding="longest",
            return_attention_mask=True,
        )
        return inputs.input_features.to(self.device, model.dtype), inputs.attention_mask.to(
            self.device
        )

    def _language_probabilities(self, clip: AudioClip) -> dict[str, float]:
        torch = _import("torch")
        processor, model = self._get_model()
        lang_to_id: dict[str, int] = dict(getattr(model.generation_config, "lang_to_id", {}))
        if not lang_to_id:
            return {}
        features = processor.feature_extractor(
            clip.samples[: WINDOW_S * SAMPLE_RATE], sampling_rate=SAMPLE_RATE, return_tensors="pt"
        ).input_features.to(self.device, model.dtype)
        start = [[model.generation_config.decoder_start_token_id]]
        with torch.inference_mode():
            logits = model(
                input_features=features,
                decoder_input_ids=torch.tensor(start, device=self.device),
            ).logits[0, -1]
        codes = list(lang_to_id)
        ids = torch.tensor([lang_to_id[c] for c in codes], device=self.device)
        probs = torch.softmax(logits[ids].float(), dim=-1).tolist()
        return {code.strip("<|>"): float(p) for code, p in zip(codes, probs, strict=True)}

    def _transcribe_impl(
        self, clip: AudioClip, *, language: str | None, prompt: str | None
    ) -> Transcript:
        """Whisper's own sequential decoding with timestamps (as openai-whisper and
        faster-whisper do), temperature fallback and the no-speech skip included."""
        torch = _import("torch")
        processor, model = self._get_model()
        opts = self.options
        features, mask = self._features(clip.samples)
        kwargs: dict[str, Any] = {
            "task": "transcribe",
            "num_beams": opts.beam_size,
            "return_timestamps": True,
            "return_segments": True,
            "temperature": (
                opts.temperatures if len(opts.temperatures) > 1 else opts.temperatures[0]
            ),
            "condition_on_prev_tokens": opts.condition_on_previous_text,
            "output_scores": True,  # for avg_logprob, as the other engines report it
            "return_dict_in_generate": True,
        }
        if len(opts.temperatures) > 1:
            kwargs.update(
                compression_ratio_threshold=opts.compression_ratio_threshold,
                logprob_threshold=LOGPROB_THRESHOLD,
                no_speech_threshold=NO_SPEECH_THRESHOLD,
            )
        if language:
            kwargs["language"] = language
        if prompt:
            kwargs["prompt_ids"] = processor.get_prompt_ids(prompt, return_tensors="pt").to(
                self.device
            )
        with torch.inference_mode():
            out = model.generate(features, attention_mask=mask, **kwargs)
        segments = []
        for seg in out["segments"][0] if isinstance(out, dict) else []:
            text = processor.tokenizer.decode(seg["tokens"], skip_special_tokens=True).strip()
            if text:
                segments.append(
                    TranscriptSegment(
                        start=float(seg["start"]),
                        end=float(seg["end"]),
                        text=text,
                        avg_logprob=_avg_logprob(seg.get("result")),
                    )
                )
        return Transcript(
            text=" ".join(s.text for s in segments), language=language or "", segments=segments
        )


def _avg_logprob(result: Any) -> float | None:
    """Mean log-probability of the tokens the decoder chose in a window (Whisper's measure)."""
    if not isinstance(result, dict) or not result.get("scores"):
        return None
    torch = _import("torch")
    scores = result["scores"]
    chosen = result["sequences"][-len(scores) :]
    logprobs = [
        float(torch.log_softmax(step.float(), dim=-1)[int(token)])
        for step, token in zip(scores, chosen, strict=False)
    ]
    finite = [lp for lp in logprobs if math.isfinite(lp)]
    return sum(finite) / len(finite) if finite else None
