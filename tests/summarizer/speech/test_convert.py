"""The CT2 -> openai-whisper -> Hugging Face conversion, checked on the real bundled model.

Three engines run the same weights on the same audio: their encoder outputs must agree to
float16-rounding level and their greedy transcripts must match.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import struct
import subprocess
import sys
import time
import unicodedata
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from summarizer.speech.audio import load_audio
from summarizer.speech.convert import (
    ConversionError,
    Ct2Model,
    ct2_to_openai,
    ensure_converted,
    load_openai_model,
    openai_to_hf,
    read_ct2,
)
from tests.conftest import synth_phone_audio
from tests.text_distance import edit_distance

# The reference stacks are imported when the first test runs, not when the module is
# collected: a run that leaves out the slow tests never pays for importing torch.
torch: Any = None
whisper: Any = None
ctranslate2: Any = None
transformers: Any = None

SPEECH = "Minulla on ollut kuumetta ja yskää kolme päivää. Kurkku on kipeä."
"""An invented caller: fever and cough for three days, sore throat."""
SOT, FI, TRANSCRIBE, NO_TIMESTAMPS = 50258, 50277, 50359, 50363
PROMPT = [SOT, FI, TRANSCRIBE, NO_TIMESTAMPS]
ENCODER_TOLERANCE = 1e-2


pytestmark = pytest.mark.slow  # converts and loads models in three formats (torch)

# -- fixtures --------------------------------------------------------------------------------


@pytest.fixture(scope="module", autouse=True)
def reference_stacks() -> None:
    global torch, whisper, ctranslate2, transformers
    torch = pytest.importorskip("torch")
    whisper = pytest.importorskip("whisper")
    ctranslate2 = pytest.importorskip("ctranslate2")
    transformers = pytest.importorskip("transformers")


@pytest.fixture(scope="module")
def converted(converted_models: dict[str, Path]) -> dict[str, Path]:
    return converted_models


@pytest.fixture(scope="module")
def speech(tmp_path_factory: pytest.TempPathFactory) -> np.ndarray:
    wav = synth_phone_audio(SPEECH, tmp_path_factory.mktemp("speech") / "kuume.wav")
    return load_audio(wav, max_seconds=60).samples


@pytest.fixture(scope="module")
def mel(speech: np.ndarray) -> Any:
    """One 30 s window of log-mel features, [1, 80, 3000], fed unchanged to every engine."""
    window = whisper.pad_or_trim(torch.from_numpy(speech))
    return whisper.log_mel_spectrogram(window, n_mels=80)[None]


@pytest.fixture(scope="module")
def openai_model(converted: dict[str, Path]) -> Any:
    return load_openai_model(converted["openai"], device="cpu")


@pytest.fixture(scope="module")
def ct2_model(bundled_model_dir: Path) -> Any:
    return ctranslate2.models.Whisper(str(bundled_model_dir), device="cpu", compute_type="float32")


@pytest.fixture(scope="module")
def hf(converted: dict[str, Path]) -> tuple[Any, Any]:
    model = transformers.WhisperForConditionalGeneration.from_pretrained(
        converted["hf"], local_files_only=True
    ).eval()
    processor = transformers.WhisperProcessor.from_pretrained(
        converted["hf"], local_files_only=True
    )
    return model, processor


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Any attempt to reach the network (a hub download) fails loudly instead."""

    def refuse(_sock: socket.socket, address: object) -> None:
        raise AssertionError(f"network access attempted: {address!r}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    yield


# -- the reader ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def bundled(bundled_model_dir: Path) -> Ct2Model:
    return read_ct2(bundled_model_dir / "model.bin")


def test_reads_the_bundled_model(bundled: Ct2Model) -> None:
    assert (bundled.version, bundled.spec, bundled.revision) == (6, "WhisperSpec", 3)
    assert len(bundled.variables) == 214
    for side in ("encoder", "decoder"):
        assert bundled.scalar(f"{side}/num_heads") == 8
        for i in range(6):
            assert f"{side}/layer_{i}/ffn/linear_0/weight" in bundled
        assert f"{side}/layer_6/ffn/linear_0/weight" not in bundled
    assert bundled.aliases == {"decoder/projection/weight": "decoder/embeddings/weight"}
    assert bundled.get("decoder/projection/weight") is bundled.get("decoder/embeddings/weight")
    assert bundled.get("decoder/embeddings/weight").shape == (51865, 512)
    assert bundled.get("encoder/layer_0/self_attention/linear_0/weight").shape == (1536, 512)
    weights = {str(v.dtype) for k, v in bundled.variables.items() if k.endswith("weight")}
    assert weights == {"float16"}
    with pytest.raises(ConversionError, match="no variable 'encoder/nope'"):
        bundled.get("encoder/nope")


def test_truncated_model_is_reported(bundled_model_dir: Path, tmp_path: Path) -> None:
    src = bundled_model_dir / "model.bin"
    for size in (0, 3, 20, 1_000_000, src.stat().st_size - 1):
        cut = tmp_path / f"cut-{size}.bin"
        with src.open("rb") as fh:
            cut.write_bytes(fh.read(size))
        with pytest.raises(ConversionError, match=r"is truncated: reading .* needed \d+ bytes"):
            read_ct2(cut)


def test_wrong_file_is_reported(tmp_path: Path) -> None:
    zip_like = tmp_path / "model.bin"
    zip_like.write_bytes(b"PK\x03\x04" + bytes(200))
    with pytest.raises(ConversionError, match=r"binary version \d+, expected one of \[6\]"):
        read_ct2(zip_like)

    garbage_name = tmp_path / "garbage.bin"
    garbage_name.write_bytes(struct.pack("<IH", 6, 5) + b"a b!\x00" + bytes(16))
    with pytest.raises(ConversionError, match="implausible spec name"):
        read_ct2(garbage_name)

    trailing = tmp_path / "trailing.bin"
    trailing.write_bytes(_tiny_model_bytes() + b"x")
    with pytest.raises(ConversionError, match="unexpected data after the aliases"):
        read_ct2(trailing)


def _tiny_model_bytes() -> bytes:
    name = b"TinySpec"
    return struct.pack("<IH", 6, len(name) + 1) + name + b"\x00" + struct.pack("<III", 1, 0, 0)


def _write_tiny_spec(path: Path, quantization: str) -> dict[str, np.ndarray]:
    """A small model written by CTranslate2's own serializer, quantized as asked."""
    from ctranslate2.specs import common_spec, model_spec

    class TinySpec(model_spec.ModelSpec):
        def __init__(self) -> None:
            super().__init__()
            self.linear = common_spec.LinearSpec()
            self.conv = common_spec.Conv1DSpec()
            self.twin = common_spec.LinearSpec()
            self.num_heads = np.dtype("int16").type(4)

        @property
        def name(self) -> str:
            return "TinySpec"

        @property
        def revision(self) -> int:
            return 7

    rng = np.random.default_rng(7)
    original = {
        "linear/weight": rng.normal(size=(6, 5)).astype(np.float32),
        "linear/bias": rng.normal(size=6).astype(np.float32),
        "conv/weight": rng.normal(size=(4, 3, 3)).astype(np.float32),
        "conv/bias": rng.normal(size=4).astype(np.float32),
    }
    spec = TinySpec()  # copies: CTranslate2 quantizes arrays in place
    spec.linear.weight = original["linear/weight"].copy()
    spec.linear.bias = original["linear/bias"].copy()
    spec.conv.weight = original["conv/weight"].copy()
    spec.conv.bias = original["conv/bias"].copy()
    spec.twin.weight = original["linear/weight"].copy()  # duplicated: becomes an alias
    spec.validate()
    spec.optimize(quantization=quantization)
    spec._serialize(str(path))
    return original


@pytest.mark.parametrize(
    ("quantization", "stored", "tolerance"),
    [
        ("float32", "float32", 0.0),
        ("float16", "float16", 2e-3),
        ("bfloat16", "float32", 2e-2),  # widened on read
        ("int8", "float32", 3e-2),  # dequantized on read
        ("int8_float16", "float32", 3e-2),
        ("int16", "float32", 5e-3),
    ],
)
def test_reads_every_dtype_ctranslate2_writes(
    tmp_path: Path, quantization: str, stored: str, tolerance: float
) -> None:
    original = _write_tiny_spec(tmp_path / "model.bin", quantization)
    model = read_ct2(tmp_path / "model.bin")
    assert (model.spec, model.revision) == ("TinySpec", 7)
    assert model.aliases == {"twin/weight": "linear/weight"}
    assert model.scalar("num_heads") == 4
    assert not [n for n in model.variables if n.endswith("_scale")]
    for name, value in original.items():
        got = model.get(name)
        assert got.shape == value.shape
        if name.endswith("weight"):
            assert str(got.dtype) == stored
        np.testing.assert_allclose(got.astype(np.float32), value, atol=tolerance * 4, rtol=0)
        rel = np.abs(got - value).max() / np.abs(value).max()
        assert rel <= tolerance


# -- the converted models --------------------------------------------------------------------


def test_openai_checkpoint_loads_strictly(converted: dict[str, Path], bundled: Ct2Model) -> None:
    checkpoint = torch.load(converted["openai"], map_location="cpu", weights_only=True)
    assert checkpoint["dims"] == {
        "n_mels": 80,
        "n_audio_ctx": 1500,
        "n_audio_state": 512,
        "n_audio_head": 8,
        "n_audio_layer": 6,
        "n_vocab": 51865,
        "n_text_ctx": 448,
        "n_text_state": 512,
        "n_text_head": 8,
        "n_text_layer": 6,
    }
    model = whisper.load_model(str(converted["openai"]), device="cpu")  # strict key matching
    assert model.is_multilingual and model.num_languages == 99
    # The fused q/k/v rows were split in order and the (zero) key bias dropped.
    fused = bundled.get("decoder/layer_2/self_attention/linear_0/weight")
    attn = model.decoder.blocks[2].attn
    np.testing.assert_array_equal(attn.value.weight.detach().numpy(), fused[1024:])
    assert attn.key.bias is None

    with_heads = load_openai_model(converted["openai"])
    heads = with_heads.alignment_heads.to_dense().nonzero().tolist()
    assert heads == [[3, 1], [4, 2], [4, 3], [4, 7], [5, 1], [5, 2], [5, 4], [5, 6]]


def test_hf_directory_is_complete(converted: dict[str, Path], hf: tuple[Any, Any]) -> None:
    model, processor = hf
    files = {p.name for p in converted["hf"].iterdir()}
    assert {"model.safetensors", "config.json", "generation_config.json", "tokenizer.json"} <= files
    gen = model.generation_config
    assert gen.decoder_start_token_id == SOT
    assert gen.lang_to_id["<|fi|>"] == FI and len(gen.lang_to_id) == 99
    assert gen.task_to_id == {"transcribe": TRANSCRIBE, "translate": 50358}
    assert gen.no_timestamps_token_id == NO_TIMESTAMPS
    assert gen.begin_suppress_tokens == [220, 50257]
    assert gen.alignment_heads[0] == [3, 1]
    assert model.proj_out.weight.data_ptr() == model.model.decoder.embed_tokens.weight.data_ptr()
    assert processor.feature_extractor.feature_size == 80
    tok = processor.tokenizer
    ids = tok("Kurkku on kipeä.", add_special_tokens=False).input_ids
    assert tok.decode(ids) == "Kurkku on kipeä."
    assert transformers.WhisperTokenizerFast.from_pretrained(converted["hf"]).get_vocab() == (
        tok.get_vocab()
    )


def test_hf_conversion_and_loading_stay_offline(
    converted: dict[str, Path], bundled_model_dir: Path, tmp_path: Path, no_network: None
) -> None:
    out = openai_to_hf(converted["openai"], tmp_path / "hf", ct2_dir=bundled_model_dir)
    transformers.WhisperForConditionalGeneration.from_pretrained(out, local_files_only=True)
    transformers.WhisperProcessor.from_pretrained(out)
    assert not list(tmp_path.glob(".*.tmp"))


# -- numerical equivalence -------------------------------------------------------------------


def test_encoders_agree(mel: Any, ct2_model: Any, openai_model: Any, hf: tuple[Any, Any]) -> None:
    features = ctranslate2.StorageView.from_array(np.ascontiguousarray(mel.numpy()))
    ct2_out = np.array(ct2_model.encode(features))
    with torch.no_grad():
        openai_out = openai_model.encoder(mel).numpy()
        hf_out = hf[0].model.encoder(mel).last_hidden_state.numpy()
    assert ct2_out.shape == openai_out.shape == hf_out.shape == (1, 1500, 512)
    diffs = {
        "ct2-openai": float(np.abs(ct2_out - openai_out).max()),
        "ct2-hf": float(np.abs(ct2_out - hf_out).max()),
        "openai-hf": float(np.abs(openai_out - hf_out).max()),
    }
    print(f"\nencoder max abs diff (activations up to {np.abs(ct2_out).max():.1f}): {diffs}")
    assert max(diffs.values()) < ENCODER_TOLERANCE


def test_greedy_tokens_identical_on_the_same_features(
    mel: Any, ct2_model: Any, openai_model: Any, hf: tuple[Any, Any]
) -> None:
    """Same features, same prompt, greedy: the three decoders pick the same tokens."""
    features = ctranslate2.StorageView.from_array(np.ascontiguousarray(mel.numpy()))
    ct2_tokens = ct2_model.generate(
        features, [PROMPT], beam_size=1, suppress_blank=True, suppress_tokens=[-1]
    )[0].sequences_ids[0]
    options = whisper.DecodingOptions(
        language="fi", without_timestamps=True, fp16=False, beam_size=None, temperature=0.0
    )
    openai_tokens = whisper.decode(openai_model, mel[0], options).tokens
    with torch.no_grad():
        hf_ids = hf[0].generate(mel, language="fi", task="transcribe", num_beams=1)
    hf_tokens = [t for t in hf_ids[0].tolist() if t < 50257]
    text = hf[1].tokenizer.decode(hf_tokens)
    print(f"\nsame-features greedy: {text!r}")
    assert openai_tokens == hf_tokens
    assert ct2_tokens == openai_tokens


def test_greedy_transcripts_match_across_engines(
    speech: np.ndarray, bundled_model_dir: Path, openai_model: Any, hf: tuple[Any, Any]
) -> None:
    """Each engine's own pipeline, from audio samples to text."""
    from faster_whisper import WhisperModel

    fw = WhisperModel(str(bundled_model_dir), device="cpu", compute_type="float32")
    segments, _ = fw.transcribe(
        speech,
        language="fi",
        beam_size=1,
        temperature=0.0,
        without_timestamps=True,
        vad_filter=False,
        condition_on_previous_text=False,
    )
    texts = {"faster-whisper": "".join(s.text for s in segments).strip()}
    result = whisper.transcribe(
        openai_model,
        speech,
        language="fi",
        temperature=0.0,
        beam_size=None,
        fp16=False,
        without_timestamps=True,
        condition_on_previous_text=False,
    )
    texts["openai-whisper"] = str(result["text"]).strip()
    model, processor = hf
    # Unpadded features + attention mask: transformers then pads in the mel domain, as
    # openai-whisper and faster-whisper do (padding the audio to 30 s changes the features).
    inputs = processor(
        speech,
        sampling_rate=16_000,
        return_tensors="pt",
        truncation=False,
        padding="longest",
        return_attention_mask=True,
    )
    with torch.no_grad():
        ids = model.generate(
            inputs.input_features,
            attention_mask=inputs.attention_mask,
            language="fi",
            task="transcribe",
            num_beams=1,
        )
    texts["transformers"] = processor.batch_decode(ids, skip_special_tokens=True)[0].strip()
    print("\ngreedy transcripts:\n" + "\n".join(f"  {k:15} {v!r}" for k, v in texts.items()))
    reference = texts["faster-whisper"]
    assert reference.lower().startswith("minulla on")  # sox dithers: the rest varies by run
    for engine, text in texts.items():
        assert _normalized_distance(text, reference) <= 0.1, engine


def _normalize(text: str) -> str:
    text = unicodedata.normalize("NFC", text).lower()
    return " ".join(re.sub(r"[^\w\s]", " ", text).split())


def _normalized_distance(a: str, b: str) -> float:
    """Levenshtein distance of the normalized strings over the longer length."""
    return edit_distance(_normalize(a), _normalize(b))


def test_distance_helper() -> None:
    assert _normalized_distance("Kurkku on kipeä.", "kurkku on KIPEÄ") == 0.0
    assert _normalized_distance("abcd", "abce") == 0.25


# -- caching ---------------------------------------------------------------------------------


def test_ensure_converted_reuses_the_cache(
    bundled_model_dir: Path, converted: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = converted["openai"].parent
    before = {
        "openai": converted["openai"].stat().st_mtime_ns,
        "hf": (converted["hf"] / "model.safetensors").stat().st_mtime_ns,
    }

    def fail(*_a: object, **_k: object) -> None:
        raise AssertionError("converted again")

    monkeypatch.setattr("summarizer.speech.convert.ct2_to_openai", fail)
    monkeypatch.setattr("summarizer.speech.convert.openai_to_hf", fail)
    assert ensure_converted(bundled_model_dir, cache, "openai") == converted["openai"]
    assert ensure_converted(bundled_model_dir, cache, "hf") == converted["hf"]
    assert converted["openai"].stat().st_mtime_ns == before["openai"]
    assert (converted["hf"] / "model.safetensors").stat().st_mtime_ns == before["hf"]
    assert converted["openai"].name == "whisper-base-ct2-openai.pt"
    assert converted["hf"].name == "whisper-base-ct2-hf"
    assert not list(cache.glob(".*.tmp"))
    with pytest.raises(ValueError, match="unknown format"):
        ensure_converted(bundled_model_dir, cache, "onnx")  # type: ignore[arg-type]


def _set_first_value(model_bin: Path, variable: str, value: float) -> None:
    """Overwrite the first float16 of ``variable`` in place (same size: only content changes)."""
    data = model_bin.read_bytes()
    name = variable.encode() + b"\x00"
    at = data.index(struct.pack("<H", len(name)) + name) + 2 + len(name)
    rank = data[at]
    offset = at + 1 + 4 * rank + 1 + 4
    with model_bin.open("r+b") as fh:
        fh.seek(offset)
        fh.write(np.float16(value).tobytes())


def test_ensure_converted_redoes_a_changed_source(bundled_model_dir: Path, tmp_path: Path) -> None:
    src = tmp_path / "whisper-base-ct2"
    shutil.copytree(bundled_model_dir, src)
    cache = tmp_path / "cache"
    cache.mkdir()
    stale = cache / ".whisper-base-ct2-openai.pt.12345.abcdef.tmp"
    stale.write_bytes(b"left by a crashed conversion")
    out = ensure_converted(src, cache, "openai")
    assert not stale.exists()
    first = out.stat().st_mtime_ns

    _set_first_value(src / "model.bin", "decoder/layer_norm/gamma", 2.5)
    assert ensure_converted(src, cache, "openai") == out
    assert out.stat().st_mtime_ns != first
    state = torch.load(out, map_location="cpu", weights_only=True)["model_state_dict"]
    assert float(state["decoder.ln.weight"][0]) == 2.5

    # A damaged output is noticed through the marker too.
    with out.open("r+b") as fh:
        fh.truncate(1000)
    ensure_converted(src, cache, "openai")
    assert (
        float(torch.load(out, weights_only=True)["model_state_dict"]["decoder.ln.weight"][0]) == 2.5
    )

    # A corrupt source fails clearly and leaves the last good conversion alone.
    good = out.read_bytes()
    with (src / "model.bin").open("r+b") as fh:
        fh.truncate(5000)
    with pytest.raises(ConversionError, match="truncated"):
        ensure_converted(src, cache, "openai")
    assert out.read_bytes() == good
    assert not list(cache.glob(".*.tmp"))


def test_concurrent_conversion_in_two_processes(bundled_model_dir: Path, tmp_path: Path) -> None:
    code = (
        "import logging, sys; from pathlib import Path; "
        "from summarizer.speech.convert import ensure_converted; "
        "logging.basicConfig(level=logging.INFO); "
        "print(ensure_converted(Path(sys.argv[1]), Path(sys.argv[2]), 'openai'))"
    )
    root = Path(__file__).resolve().parents[3]
    env = {**os.environ, "PYTHONPATH": str(root)}
    cache = tmp_path / "cache"
    started = time.perf_counter()
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code, str(bundled_model_dir), str(cache)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            text=True,
        )
        for _ in range(2)
    ]
    results = [p.communicate(timeout=120) for p in procs]
    for p, (out, err) in zip(procs, results, strict=True):
        assert p.returncode == 0, err
        assert out.strip() == str(cache / "whisper-base-ct2-openai.pt")
    # The lock made the second process wait and reuse the first one's result.
    assert sum("converted" in err for _, err in results) == 1
    print(f"\ntwo racing conversions took {time.perf_counter() - started:.1f} s")
    whisper.load_model(str(cache / "whisper-base-ct2-openai.pt"), device="cpu")
    assert not list(cache.glob(".*.tmp"))


def test_ct2_to_openai_rejects_other_specs(tmp_path: Path) -> None:
    _write_tiny_spec(tmp_path / "model.bin", "float32")
    with pytest.raises(ConversionError, match="holds a TinySpec, not a WhisperSpec"):
        ct2_to_openai(tmp_path, tmp_path / "out.pt")
    assert not (tmp_path / "out.pt").exists()
