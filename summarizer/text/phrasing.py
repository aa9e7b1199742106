"""Optional language-model phrasing of the worklist reason and the nurse note.

The deterministic summary stays the source of truth: a model (a local ``transformers`` model
directory, or an OpenAI-compatible endpoint such as a county's own deployment) may only
rephrase the deterministic note. Its output is checked by :func:`validate_phrasing` against
the summary, the deterministic note and the transcript, and anything that adds, drops or
changes a fact falls back to the deterministic text. Nothing here logs health text: only the
generator name, the fallback reason and timings.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import re
import threading
import time
import tomllib
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import httpx

from summarizer.text.note import NOTE_LANGUAGES, reason_line, template
from summarizer.text.schemas import CallContext, Summary
from summarizer.text.settings import SummarizerSettings

log = logging.getLogger(__name__)

PROMPT_FILE = Path(__file__).resolve().parent / "prompts" / "phrasing.toml"
BACKENDS = ("none", "transformers", "openai")
MAX_REASON_CHARS = 160
MIN_NOTE_LIMIT = 600
LLM_INSTALL_HINT = "install with: pip install 'esitieto[llm]'"

_NUMBER = re.compile(r"\d+(?:[.,]\d+)?")
_PLACEHOLDER = re.compile(r"\{(facts|note|transcript)\}")
_CODE = re.compile(r"^[a-z0-9_]{1,40}$")


@dataclass(frozen=True)
class Phrasing:
    reason: str
    """One line for the worklist."""
    note: str
    """The full nurse note."""
    generator: str
    """``"deterministic"``, or ``f"{backend}:{model name}"`` when the model's text was used."""
    fallback_reason: str | None = None
    """Why the model's output was not used (a short machine code, never health text)."""
    duration_s: float = 0.0


class PhrasingError(Exception):
    """The backend failed (timeout, HTTP error, bad response). ``reason`` is a machine code."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


def deterministic_phrasing(summary: Summary, *, language: str, note: str) -> Phrasing:
    """The result without a model (or when the model's text cannot be trusted)."""
    return Phrasing(
        reason=summary.reason or reason_line(summary, language),
        note=note,
        generator="deterministic",
    )


# -- prompt ------------------------------------------------------------------------------------


@lru_cache(maxsize=1)
def _catalogue() -> dict[str, Any]:
    with PROMPT_FILE.open("rb") as f:
        return tomllib.load(f)


def _facts(summary: Summary) -> dict[str, Any]:
    """The structured facts the model may use: nothing else is allowed into its text."""
    return {
        "for_whom": summary.for_whom,
        "age": summary.age,
        "age_months": summary.age_months,
        "sex": summary.sex,
        "pregnant": summary.pregnant,
        "request": summary.request,
        "reason": summary.reason,
        "symptoms": [
            {
                "icpc2": s.icpc2,
                "label": s.label,
                "modifiers": s.modifiers,
                "caller_words": s.evidence.text,
            }
            for s in summary.symptoms
        ],
        "denied_symptoms": [
            {"icpc2": s.icpc2, "label": s.label, "caller_words": s.evidence.text}
            for s in summary.negated_symptoms
        ],
        "duration_days": summary.duration_days,
        "temperature_c": summary.temperature_c,
        "medications": summary.medications,
        "allergies": summary.allergies,
        "conditions": summary.conditions,
        "red_flags": summary.red_flags,
    }


def build_messages(
    summary: Summary, transcript: str, *, language: str, note: str
) -> list[dict[str, str]]:
    """Chat messages for the model: instructions in the note language, then the material."""
    lang = language if language in NOTE_LANGUAGES else "fi"
    prompts = _catalogue()[lang]
    values = {
        "facts": json.dumps(_facts(summary), ensure_ascii=False, indent=1),
        "note": note,
        "transcript": transcript,
    }
    # One pass, so placeholders inside the caller's words are left alone.
    user = _PLACEHOLDER.sub(lambda m: values[m.group(1)], str(prompts["user"]))
    return [
        {"role": "system", "content": str(prompts["system"])},
        {"role": "user", "content": user},
    ]


# -- parsing the model's answer ------------------------------------------------------------------


def parse_output(text: str) -> tuple[str, str]:
    """``(reason, note)`` from the first JSON object in ``text`` that has both as strings
    (code fences, chatter and a wrapping object tolerated)."""
    decoder = json.JSONDecoder()
    seen_object = False
    for m in re.finditer(r"\{", text):
        try:
            obj, _ = decoder.raw_decode(text, m.start())
        except json.JSONDecodeError:
            continue
        if not isinstance(obj, dict):
            continue
        seen_object = True
        reason, note = obj.get("reason"), obj.get("note")
        if isinstance(reason, str) and isinstance(note, str):
            return reason.strip(), _clean_note(note)
    raise PhrasingError("missing_fields" if seen_object else "invalid_json")


def _clean_note(note: str) -> str:
    return "\n".join(
        line.strip() for line in note.replace("\r\n", "\n").split("\n") if line.strip()
    )


# -- validation --------------------------------------------------------------------------------


FACT_KINDS = ("medication", "condition", "allergy")


@dataclass
class _Reading:
    """What the extractor reads back from a note: the yardstick for grounding."""

    affirmed: set[str] = field(default_factory=set)
    denied: set[str] = field(default_factory=set)
    facts: dict[str, set[str]] = field(default_factory=lambda: {k: set() for k in FACT_KINDS})
    red_flags: set[str] = field(default_factory=set)
    temperatures: set[float] = field(default_factory=set)
    durations: set[float] = field(default_factory=set)
    pregnant: bool = False
    for_whom: set[str] = field(default_factory=set)
    ages: set[int] = field(default_factory=set)


def _listed(summary: Summary) -> dict[str, list[str]]:
    return {
        "medication": summary.medications,
        "condition": summary.conditions,
        "allergy": summary.allergies,
    }


def _denied_segments(text: str, language: str) -> tuple[str, list[str]]:
    """Split off the note's own "denies: a, b" lists.

    The extractor reads "kieltää: hengenahdistus" as an affirmed symptom (":" ends the clause
    before the word, and "kieltää"/"förnekar" are not negation words in speech), so the note's
    notation is parsed here: everything after the template's "denies" word (any note language,
    colon optional) up to ";", "." or the line end counts as denied. The candidate and the
    deterministic note go through the same split, so the rule favours neither; a model that
    writes a denial in its own words ("ei hengenahdistusta") is read by the extractor itself.
    """
    words = {str(template(lang)["words"]["denies"]) for lang in {language, "fi", "sv", "en"}}
    pattern = re.compile(
        r"\b(?:" + "|".join(re.escape(w) for w in sorted(words)) + r")\b\s*:?\s*([^;.\n]*)",
        re.IGNORECASE,
    )
    segments = [m.group(1) for m in pattern.finditer(text)]
    return pattern.sub(" ", text), segments


def _read(text: str, languages: set[str], note_language: str) -> _Reading:
    from summarizer.text.extract import summarize  # extract imports note; keep this module light

    rest, segments = _denied_segments(text, note_language)
    out = _Reading()
    for lang in sorted(languages):
        ctx = CallContext(language=lang)
        s = summarize(rest, ctx, note_language=note_language)
        out.affirmed.update(x.icpc2 for x in s.symptoms)
        out.denied.update(x.icpc2 for x in s.negated_symptoms)
        for kind, names in _listed(s).items():
            out.facts[kind].update(n.casefold() for n in names)
        out.red_flags.update(r.casefold() for r in s.red_flags)
        if s.temperature_c is not None:
            out.temperatures.add(s.temperature_c)
        if s.duration_days is not None:
            out.durations.add(s.duration_days)
        out.pregnant = out.pregnant or bool(s.pregnant)
        out.for_whom.add(s.for_whom)
        if s.age is not None:
            out.ages.add(s.age)
        for seg in segments:
            d = summarize(seg, ctx, note_language=note_language)
            out.denied.update(x.icpc2 for x in (*d.symptoms, *d.negated_symptoms))
    return out


def _judgement_words(text: str) -> set[str]:
    """Words that start like a diagnosis, a guess or advice (``judgement_stems`` in the
    catalogue, all languages): the deterministic note never judges, so neither may the model."""
    stems = tuple(
        str(stem).casefold()
        for lang in NOTE_LANGUAGES
        for stem in _catalogue()[lang].get("judgement_stems", [])
    )
    return {w for w in re.findall(r"\w+", text.casefold()) if w.startswith(stems)}


def _numbers(text: str) -> set[float]:
    return {float(n.replace(",", ".")) for n in _NUMBER.findall(text)}


def _heading(line: str) -> str:
    return line.split(":", 1)[0].strip() if ":" in line else ""


def validate_phrasing(
    summary: Summary,
    transcript: str,
    *,
    language: str,
    note: str,
    reason: str,
    candidate_note: str,
) -> str | None:
    """``None`` when the candidate only rephrases the deterministic note, else the fallback reason.

    Rules (health care: the model may only rephrase):

    - shape: the reason is one non-empty line of at most 160 characters; the note is at most
      max(2 x the deterministic note, 600) characters; it has the deterministic note's lines,
      each after the first ("who") starting with the same heading in the same order, and the
      last (pretriage) line is identical.
    - numbers: every number in the candidate is in the deterministic note, reason or transcript.
    - grounding by re-extraction: the extractor reads the candidate and the deterministic text
      the same way (the note's "denies:" lists parsed as denials, see ``_denied_segments``).
      An affirmed symptom code must be in the summary's symptoms or affirmed in the
      deterministic text; a code the summary only denies must not be affirmed
      (``negation_flipped``); a denial must be in the summary's denials or the deterministic
      text's; medicines, conditions, allergies, red flags and a pregnancy read from the
      candidate must be in the summary or the deterministic text.
    - completeness: every affirmed symptom, denial, medicine, condition, allergy and red flag
      the deterministic text carries is still found, and the temperature and duration survive.
    """
    det_lines = [line.strip() for line in note.splitlines() if line.strip()]
    if not det_lines:
        return "no_deterministic_note"
    det_reason = summary.reason or reason_line(summary, language)

    if not reason.strip():
        return "empty_reason"
    if "\n" in reason.strip() or "\r" in reason:
        return "reason_not_one_line"
    if len(reason) > MAX_REASON_CHARS:
        return "too_long"
    cand = _clean_note(candidate_note)
    if not cand:
        return "empty_note"
    if len(cand) > max(2 * len(note), MIN_NOTE_LIMIT):
        return "too_long"

    cand_lines = cand.split("\n")
    headings = [_heading(line) for line in det_lines[1:]]
    for h in headings:
        if h and not any(line.startswith(f"{h}:") for line in cand_lines):
            return "missing_heading"
    if len(cand_lines) != len(det_lines):
        return "extra_line"
    for line, h in zip(cand_lines[1:], headings, strict=True):
        if not line.startswith(f"{h}:"):
            return "heading_order"
    if cand_lines[-1] != det_lines[-1]:
        return "changed_pretriage"

    cand_text = f"{reason.strip()}.\n{cand}"
    det_text = f"{det_reason}.\n{note}"
    allowed_numbers = _numbers(det_text) | _numbers(transcript)
    cand_numbers = _numbers(cand_text)
    if not cand_numbers <= allowed_numbers:
        return "number_not_in_transcript"

    languages = {language if language in NOTE_LANGUAGES else "fi"}
    if summary.language in NOTE_LANGUAGES:
        languages.add(summary.language)
    got = _read(cand_text, languages, language)
    base = _read(det_text, languages, language)

    own = {s.icpc2 for s in summary.symptoms}
    denied_only = {s.icpc2 for s in summary.negated_symptoms} - own
    extra = got.affirmed - own - base.affirmed
    if extra:
        return "negation_flipped" if extra & denied_only else "ungrounded_code"
    new_denials = got.denied - {s.icpc2 for s in summary.negated_symptoms} - base.denied
    if new_denials:
        return "negation_flipped" if new_denials & own else "ungrounded_negation"
    listed = _listed(summary)
    for kind in FACT_KINDS:
        known = {x.casefold() for x in listed[kind]} | base.facts[kind]
        if got.facts[kind] - known:
            return f"ungrounded_{kind}"
    if got.red_flags - {r.casefold() for r in summary.red_flags} - base.red_flags:
        return "ungrounded_red_flag"
    if got.pregnant and not summary.pregnant and not base.pregnant:
        return "ungrounded_pregnancy"
    if got.for_whom != base.for_whom:
        return "changed_for_whom"
    if got.ages - base.ages - ({summary.age} if summary.age is not None else set()):
        return "ungrounded_age"
    if _judgement_words(cand_text) - _judgement_words(det_text):
        return "assessment_or_advice"

    low = cand_text.casefold()
    for s in summary.symptoms:
        if s.icpc2 in got.affirmed:
            continue
        if s.icpc2 in base.affirmed or not (
            s.label.casefold() in low or s.evidence.text.casefold() in low
        ):
            return "lost_symptom"
    if base.denied - got.denied:
        return "lost_negation"
    for kind in FACT_KINDS:
        if any(
            x.casefold() not in got.facts[kind] and x.casefold() not in low for x in listed[kind]
        ):
            return f"lost_{kind}"
    for flag in summary.red_flags:
        if flag.casefold() not in low and flag.casefold() not in got.red_flags:
            return "lost_red_flag"
    if summary.temperature_c is not None and not (
        summary.temperature_c in cand_numbers or summary.temperature_c in got.temperatures
    ):
        return "lost_temperature"
    if summary.duration_days is not None:
        days = summary.duration_days
        under = str(template(language)["words"]["under_a_day"]).casefold()
        kept = (
            days in cand_numbers or days in got.durations
            if days >= 1
            else under in low or bool(got.durations & base.durations)
        )
        if not kept:
            return "lost_duration"
    return None


# -- backends ----------------------------------------------------------------------------------


class Phraser(ABC):
    """A model that rephrases the deterministic note; :meth:`phrase` never raises."""

    name: str
    max_new_tokens: int = 400

    def phrase(self, summary: Summary, transcript: str, *, language: str, note: str) -> Phrasing:
        """The model's reason and note when they pass :func:`validate_phrasing`, else the
        deterministic ones with the fallback reason."""
        started = time.perf_counter()
        fallback: str
        try:
            messages = build_messages(summary, transcript, language=language, note=note)
            raw = self._phrase_impl(messages, max_new_tokens=self.max_new_tokens)
            reason, candidate = parse_output(raw)
            problem = validate_phrasing(
                summary,
                transcript,
                language=language,
                note=note,
                reason=reason,
                candidate_note=candidate,
            )
            if problem is None:
                elapsed = time.perf_counter() - started
                log.info("phrasing generator=%s accepted duration_s=%.3f", self.name, elapsed)
                return Phrasing(reason, candidate, self.name, None, elapsed)
            fallback = problem
        except PhrasingError as e:
            fallback = e.reason if _CODE.match(e.reason) else "backend_error"
        except Exception as e:
            # Only the type: an exception message may quote the prompt (health text).
            log.warning("phrasing generator=%s failed: %s", self.name, type(e).__name__)
            fallback = "backend_error"
        elapsed = time.perf_counter() - started
        log.info("phrasing generator=%s fallback=%s duration_s=%.3f", self.name, fallback, elapsed)
        base = deterministic_phrasing(summary, language=language, note=note)
        return Phrasing(base.reason, base.note, base.generator, fallback, elapsed)

    @abstractmethod
    def _phrase_impl(self, messages: list[dict[str, str]], *, max_new_tokens: int) -> str:
        """The model's raw text for ``messages``; raise :class:`PhrasingError` on failure."""

    def close(self) -> None:
        """Release what the backend holds (connections, model memory)."""
        return None


class TransformersPhraser(Phraser):
    """A causal language model from a local directory (no hub access), greedy decoding."""

    def __init__(
        self, model_dir: Path, *, max_new_tokens: int = 400, max_time_s: float | None = None
    ) -> None:
        model_dir = Path(model_dir)
        if importlib.util.find_spec("transformers") is None:  # fail at start-up, not per call
            raise RuntimeError(
                f"the transformers phrasing backend needs transformers: {LLM_INSTALL_HINT}"
            )
        if not model_dir.is_dir():
            raise ValueError(f"transformers model directory not found: {model_dir}")
        self.model_dir = model_dir
        self.max_new_tokens = max_new_tokens
        self.max_time_s = max_time_s
        self.name = f"transformers:{model_dir.name}"
        self.generations = 0
        self._lock = threading.Lock()
        self._tokenizer: Any = None
        self._model: Any = None

    def _load(self) -> tuple[Any, Any]:
        """Tokenizer and model, loaded once (the caller holds the lock)."""
        if self._model is None:
            try:
                import torch  # noqa: F401  (transformers needs it for generation)
                from transformers import AutoModelForCausalLM, AutoTokenizer
            except ImportError as e:
                raise RuntimeError(
                    f"the transformers phrasing backend needs transformers and torch: "
                    f"{LLM_INSTALL_HINT}"
                ) from e
            tokenizer = AutoTokenizer.from_pretrained(self.model_dir, local_files_only=True)
            model = AutoModelForCausalLM.from_pretrained(self.model_dir, local_files_only=True)
            model.eval()
            self._tokenizer, self._model = tokenizer, model
        return self._tokenizer, self._model

    def _prompt(self, tokenizer: Any, messages: list[dict[str, str]]) -> str:
        if getattr(tokenizer, "chat_template", None):
            return str(
                tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
            )
        parts = [f"{m['role']}:\n{m['content']}" for m in messages]
        return "\n\n".join([*parts, "assistant:\n"])

    def _phrase_impl(self, messages: list[dict[str, str]], *, max_new_tokens: int) -> str:
        import torch

        with self._lock:
            tokenizer, model = self._load()
            inputs = tokenizer(self._prompt(tokenizer, messages), return_tensors="pt")
            n_prompt = int(inputs["input_ids"].shape[1])
            limit = getattr(model.config, "max_position_embeddings", None) or getattr(
                model.config, "n_positions", None
            )
            if limit is not None and n_prompt + max_new_tokens > int(limit):
                raise PhrasingError("prompt_too_long")
            pad = tokenizer.pad_token_id
            if pad is None:
                pad = tokenizer.eos_token_id
            kwargs: dict[str, Any] = {
                "max_new_tokens": max_new_tokens,
                "do_sample": False,
                "pad_token_id": pad,
            }
            if self.max_time_s is not None:
                kwargs["max_time"] = self.max_time_s
            with torch.inference_mode():
                output = model.generate(**inputs, **kwargs)
            self.generations += 1
            return str(tokenizer.decode(output[0][n_prompt:], skip_special_tokens=True))

    def close(self) -> None:
        with self._lock:
            self._tokenizer = self._model = None


class OpenAICompatiblePhraser(Phraser):
    """A chat-completions endpoint (OpenAI's API shape, e.g. a county's own deployment)."""

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        api_key: str | None,
        timeout_s: float = 20.0,
        max_new_tokens: int = 400,
        client: httpx.Client | None = None,
    ) -> None:
        if not base_url or not model:
            raise ValueError("the openai phrasing backend needs a base URL and a model name")
        self.url = f"{base_url.rstrip('/')}/chat/completions"
        self.model = model
        self.timeout_s = timeout_s
        self.max_new_tokens = max_new_tokens
        self.name = f"openai:{model}"
        self._api_key = api_key
        self._own_client = client is None
        self._client = client or httpx.Client(timeout=timeout_s)

    def _phrase_impl(self, messages: list[dict[str, str]], *, max_new_tokens: int) -> str:
        body = {
            "model": self.model,
            "messages": messages,
            "temperature": 0,
            "max_tokens": max_new_tokens,
            "response_format": {"type": "json_object"},
        }
        headers = {"Authorization": f"Bearer {self._api_key}"} if self._api_key else {}
        try:
            response = self._client.post(
                self.url, json=body, headers=headers, timeout=self.timeout_s
            )
        except httpx.TimeoutException as e:
            raise PhrasingError("timeout") from e
        except httpx.HTTPError as e:
            raise PhrasingError("http_error", type(e).__name__) from e
        if not response.is_success:
            raise PhrasingError(f"http_{response.status_code}")
        try:
            data = response.json()
            choice = data["choices"][0]
            content = choice["message"]["content"]
        except (ValueError, KeyError, IndexError, TypeError) as e:
            raise PhrasingError("bad_response") from e
        if isinstance(content, list):  # content parts
            content = "".join(str(p.get("text", "")) for p in content if isinstance(p, Mapping))
        if not isinstance(content, str):
            raise PhrasingError("bad_response")
        if choice.get("finish_reason") == "length":
            raise PhrasingError("truncated")
        return content

    def close(self) -> None:
        if self._own_client:
            self._client.close()


def build_phraser(
    backend: str,
    *,
    model_dir: Path | None = None,
    base_url: str | None = None,
    model: str | None = None,
    api_key: str | None = None,
    timeout_s: float = 20.0,
    max_new_tokens: int = 400,
) -> Phraser | None:
    """The configured phraser; ``None`` for ``"none"`` (the deterministic note only)."""
    if backend == "none":
        return None
    if backend == "transformers":
        if model_dir is None:
            raise ValueError("the transformers phrasing backend needs model_dir (a local folder)")
        return TransformersPhraser(
            Path(model_dir), max_new_tokens=max_new_tokens, max_time_s=timeout_s
        )
    if backend == "openai":
        missing = [n for n, v in (("base_url", base_url), ("model", model)) if not v]
        if missing:
            raise ValueError(f"the openai phrasing backend needs {' and '.join(missing)}")
        assert base_url is not None and model is not None
        return OpenAICompatiblePhraser(
            base_url,
            model,
            api_key=api_key,
            timeout_s=timeout_s,
            max_new_tokens=max_new_tokens,
        )
    raise ValueError(f"unknown phrasing backend {backend!r}: choose one of {', '.join(BACKENDS)}")


def phraser_from_settings(cfg: SummarizerSettings) -> Phraser | None:
    """The phraser the ``ESITIETO_SUMMARIZER__*`` settings ask for, or None (deterministic)."""
    return build_phraser(
        cfg.llm_backend,
        model_dir=cfg.llm_model_dir,
        base_url=cfg.llm_base_url,
        model=cfg.llm_model,
        api_key=cfg.llm_api_key.get_secret_value() if cfg.llm_api_key else None,
        timeout_s=cfg.llm_timeout_s,
        max_new_tokens=cfg.llm_max_new_tokens,
    )
