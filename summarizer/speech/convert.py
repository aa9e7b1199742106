"""Convert the bundled CTranslate2 Whisper model for openai-whisper and Hugging Face transformers.

The project ships one Whisper model, in CTranslate2 format (what ``faster-whisper`` runs). To
compare engines, or run one where CTranslate2 is not available, on *the same weights* instead
of separately downloaded checkpoints, this module turns that model into:

* an openai-whisper checkpoint (``whisper.load_model(path)``), via :func:`ct2_to_openai`;
* a Hugging Face model directory (``WhisperForConditionalGeneration.from_pretrained``), via
  :func:`openai_to_hf`, built from the openai checkpoint and the CT2 tokenizer/config.

Nothing is downloaded: every tokenizer file and generation setting comes from the CT2 directory.
:func:`ensure_converted` caches the results and redoes them only when the source changes.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import gzip
import json
import logging
import os
import shutil
import struct
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Literal

import numpy as np

log = logging.getLogger(__name__)

SUPPORTED_BINARY_VERSIONS = frozenset({6})
"""``model.bin`` layouts this reader knows (6 is what CTranslate2 3.x and 4.x write)."""
WHISPER_SPEC = "WhisperSpec"
CONVERTER_VERSION = 1
"""Bumped when the conversion output changes, so cached conversions are redone."""

# The DataType enum order of CTranslate2 (``_dtype_to_type_id`` in ctranslate2/specs).
_CT2_DTYPES: tuple[str, ...] = ("float32", "int8", "int16", "int32", "float16", "bfloat16")
_MAX_RANK = 8
_MARKER_SUFFIX = ".source.json"
_SOURCE_FILES = ("model.bin", "config.json", "tokenizer.json")

# openai-whisper -> transformers parameter names, as in transformers' own (no longer shipped)
# convert_openai_to_hf.py. Applied in order as substring replacements.
_OPENAI_TO_HF: tuple[tuple[str, str], ...] = (
    ("blocks", "layers"),
    ("mlp.0", "fc1"),
    ("mlp.2", "fc2"),
    ("mlp_ln", "final_layer_norm"),
    (".attn.query", ".self_attn.q_proj"),
    (".attn.key", ".self_attn.k_proj"),
    (".attn.value", ".self_attn.v_proj"),
    (".attn_ln", ".self_attn_layer_norm"),
    (".attn.out", ".self_attn.out_proj"),
    (".cross_attn.query", ".encoder_attn.q_proj"),
    (".cross_attn.key", ".encoder_attn.k_proj"),
    (".cross_attn.value", ".encoder_attn.v_proj"),
    (".cross_attn_ln", ".encoder_attn_layer_norm"),
    (".cross_attn.out", ".encoder_attn.out_proj"),
    ("decoder.ln.", "decoder.layer_norm."),
    ("encoder.ln_post.", "encoder.layer_norm."),
    ("token_embedding", "embed_tokens"),
    ("encoder.positional_embedding", "encoder.embed_positions.weight"),
    ("decoder.positional_embedding", "decoder.embed_positions.weight"),
)


class ConversionError(ValueError):
    """The source model cannot be read or converted (corrupt file, unexpected layout)."""


# -- reading model.bin -----------------------------------------------------------------------


@dataclass(frozen=True)
class Ct2Model:
    """The content of a CTranslate2 ``model.bin``.

    ``variables`` holds every stored variable by name. Quantized weights are already
    dequantized to float32 (their ``*_scale`` companions are dropped) and bfloat16 is widened
    to float32, so callers only ever see float32/float16 weights and integer/bool attributes.
    """

    version: int
    spec: str
    revision: int
    variables: dict[str, np.ndarray]
    aliases: dict[str, str]

    def get(self, name: str) -> np.ndarray:
        """The variable ``name``, following an alias (CT2 stores a tied weight only once)."""
        seen: set[str] = set()
        while name in self.aliases and name not in self.variables:
            if name in seen:
                raise ConversionError(f"alias loop at {name!r} in the CTranslate2 model")
            seen.add(name)
            name = self.aliases[name]
        try:
            return self.variables[name]
        except KeyError:
            raise ConversionError(f"the CTranslate2 model has no variable {name!r}") from None

    def __contains__(self, name: object) -> bool:
        return name in self.variables or name in self.aliases

    def scalar(self, name: str) -> int:
        """An integer attribute stored as a 0-d variable (e.g. ``encoder/num_heads``)."""
        value = self.get(name)
        if value.size != 1:
            raise ConversionError(f"{name!r} should be a scalar, has shape {value.shape}")
        return int(value.reshape(()).item())


class _Reader:
    """Bounds-checked little-endian reads, so truncation is reported, not mis-parsed."""

    def __init__(self, fh: BinaryIO, path: Path) -> None:
        self.fh = fh
        self.path = path

    def read(self, n: int, what: str) -> bytes:
        data = self.fh.read(n)
        if len(data) != n:
            raise ConversionError(
                f"{self.path} is truncated: reading {what} at byte {self.fh.tell() - len(data)} "
                f"needed {n} bytes, found {len(data)}"
            )
        return data

    def u8(self, what: str) -> int:
        return int(self.read(1, what)[0])

    def u16(self, what: str) -> int:
        return int(struct.unpack("<H", self.read(2, what))[0])

    def u32(self, what: str) -> int:
        return int(struct.unpack("<I", self.read(4, what))[0])

    def string(self, what: str) -> str:
        """uint16 length (including the NUL), UTF-8 bytes, NUL: CT2's ``_write_string``."""
        n = self.u16(f"{what} length")
        if n == 0:
            raise ConversionError(f"{self.path}: {what} has length 0 (corrupt file)")
        raw = self.read(n, what)
        if raw[-1] != 0:
            raise ConversionError(f"{self.path}: {what} is not NUL-terminated (corrupt file)")
        try:
            return raw[:-1].decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ConversionError(f"{self.path}: {what} is not UTF-8 (corrupt file)") from exc


def read_ct2(model_bin: Path) -> Ct2Model:
    """Parse a CTranslate2 ``model.bin`` as ``ctranslate2.specs.ModelSpec._serialize`` writes it.

    The layout (all little-endian): uint32 binary version, spec name, uint32 spec revision,
    uint32 variable count, then per variable its name, uint8 rank, uint32 dims, uint8 dtype id,
    uint32 byte count and the raw data; then uint32 alias count and (alias, target) name pairs.
    There is no magic number, so the version and every length are checked instead.
    """
    path = Path(model_bin)
    size = path.stat().st_size
    with path.open("rb") as fh:
        r = _Reader(fh, path)
        version = r.u32("binary version")
        if version not in SUPPORTED_BINARY_VERSIONS:
            raise ConversionError(
                f"{path} is not a CTranslate2 model this reader supports (binary version "
                f"{version}, expected one of {sorted(SUPPORTED_BINARY_VERSIONS)}); a wrong file "
                "or a newer CTranslate2 format"
            )
        spec = r.string("spec name")
        if not spec.isidentifier():
            raise ConversionError(f"{path}: implausible spec name {spec[:40]!r} (corrupt file)")
        revision = r.u32("spec revision")
        count = r.u32("variable count")
        raw: dict[str, np.ndarray] = {}
        for index in range(count):
            name = r.string(f"variable {index} name")
            raw[name] = _read_variable(r, name, size)
        aliases: dict[str, str] = {}
        for index in range(r.u32("alias count")):
            alias = r.string(f"alias {index}")
            aliases[alias] = r.string(f"alias {index} target")
        trailing = len(fh.read(1))
    if trailing:
        raise ConversionError(f"{path} has unexpected data after the aliases (corrupt file)")
    return Ct2Model(version, spec, revision, _dequantize(raw), aliases)


def _read_variable(r: _Reader, name: str, file_size: int) -> np.ndarray:
    rank = r.u8(f"rank of {name}")
    if rank > _MAX_RANK:
        raise ConversionError(f"{r.path}: {name} has rank {rank} (corrupt file)")
    dims = tuple(r.u32(f"dims of {name}") for _ in range(rank))
    type_id = r.u8(f"dtype of {name}")
    if type_id >= len(_CT2_DTYPES):
        raise ConversionError(f"{r.path}: {name} has unknown dtype id {type_id}")
    dtype = _CT2_DTYPES[type_id]
    nbytes = r.u32(f"byte count of {name}")
    itemsize = 2 if dtype == "bfloat16" else np.dtype(dtype).itemsize
    expected = int(np.prod(dims, dtype=np.int64)) * itemsize
    if nbytes != expected:
        raise ConversionError(
            f"{r.path}: {name} {dtype}{list(dims)} declares {nbytes} bytes, expected {expected}"
        )
    left = file_size - r.fh.tell()
    if nbytes > left:  # checked first, so a corrupt count cannot make us allocate gigabytes
        raise ConversionError(
            f"{r.path} is truncated: reading data of {name} at byte {r.fh.tell()} "
            f"needed {nbytes} bytes, found {max(left, 0)}"
        )
    data = r.read(nbytes, f"data of {name}")
    if dtype == "bfloat16":  # numpy has no bfloat16: widen (bf16 is the top half of a float32)
        bits = np.frombuffer(data, dtype="<u2").astype(np.uint32) << 16
        return bits.view(np.float32).reshape(dims)
    return np.frombuffer(data, dtype=np.dtype(dtype).newbyteorder("<")).reshape(dims)


def _dequantize(raw: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Undo CT2 int8/int16 quantization: ``stored = round(weight * scale)``.

    int8 scales are per output row (a conv weight is flattened to rows first); int16 uses one
    scalar scale. AWQ-style packed weights (``*_zero``) are not supported.
    """
    out = dict(raw)
    for name in [n for n in raw if n.endswith("_scale")]:
        base = name.removesuffix("_scale")
        if base not in raw:
            continue
        if f"{base}_zero" in raw:
            raise ConversionError(f"{base}: AWQ-packed weights are not supported")
        weight, scale = raw[base], raw[name].astype(np.float32)
        if weight.dtype not in (np.int8, np.int16):
            continue
        w = weight.astype(np.float32)
        if scale.size == 1:
            w = w / scale.reshape(())
        else:
            rows = w.reshape(w.shape[0], -1)
            if scale.shape != (rows.shape[0],):
                raise ConversionError(f"{name} has shape {scale.shape} for {base} {w.shape}")
            w = (rows / scale[:, None]).reshape(w.shape)
        out[base] = w
        del out[name]
    return out


# -- CTranslate2 -> openai-whisper -------------------------------------------------------------


def _count_layers(model: Ct2Model, prefix: str) -> int:
    n = 0
    while f"{prefix}/layer_{n}/ffn/linear_0/weight" in model:
        n += 1
    return n


def _openai_dims(model: Ct2Model) -> dict[str, int]:
    """``whisper.model.ModelDimensions`` from tensor shapes and the stored head counts."""
    conv1 = model.get("encoder/conv1/weight")
    enc_pos = model.get("encoder/position_encodings/encodings")
    dec_pos = model.get("decoder/position_encodings/encodings")
    embed = model.get("decoder/embeddings/weight")
    return {
        "n_mels": int(conv1.shape[1]),
        "n_audio_ctx": int(enc_pos.shape[0]),
        "n_audio_state": int(conv1.shape[0]),
        "n_audio_head": model.scalar("encoder/num_heads"),
        "n_audio_layer": _count_layers(model, "encoder"),
        "n_vocab": int(embed.shape[0]),
        "n_text_ctx": int(dec_pos.shape[0]),
        "n_text_state": int(embed.shape[1]),
        "n_text_head": model.scalar("decoder/num_heads"),
        "n_text_layer": _count_layers(model, "decoder"),
    }


def _split_rows(weight: np.ndarray, parts: int, name: str) -> list[np.ndarray]:
    if weight.shape[0] % parts:
        raise ConversionError(f"{name} has {weight.shape[0]} rows, not divisible by {parts}")
    return list(np.split(weight, parts, axis=0))


def _openai_state_dict(model: Ct2Model) -> dict[str, np.ndarray]:
    """Rename (and split fused attention projections of) CT2 variables to openai-whisper keys."""
    sd: dict[str, np.ndarray] = {}

    def linear(dst: str, src: str, *, bias: bool = True) -> None:
        sd[f"{dst}.weight"] = model.get(f"{src}/weight")
        if bias:
            sd[f"{dst}.bias"] = model.get(f"{src}/bias")

    def norm(dst: str, src: str) -> None:
        sd[f"{dst}.weight"] = model.get(f"{src}/gamma")
        sd[f"{dst}.bias"] = model.get(f"{src}/beta")

    def fused(dst: str, src: str, names: tuple[str, ...]) -> None:
        """CT2 stacks q/k/v (or k/v) rows into one linear; Whisper's key has no bias."""
        weights = _split_rows(model.get(f"{src}/weight"), len(names), src)
        biases = _split_rows(model.get(f"{src}/bias"), len(names), src)
        for part, w, b in zip(names, weights, biases, strict=True):
            sd[f"{dst}.{part}.weight"] = w
            if part == "key":
                if np.any(b != 0):  # the CT2 converter fills the missing key bias with zeros
                    raise ConversionError(f"{src}: non-zero key bias cannot map to Whisper")
            else:
                sd[f"{dst}.{part}.bias"] = b

    def block(dst: str, src: str, *, cross: bool) -> None:
        norm(f"{dst}.attn_ln", f"{src}/self_attention/layer_norm")
        fused(f"{dst}.attn", f"{src}/self_attention/linear_0", ("query", "key", "value"))
        linear(f"{dst}.attn.out", f"{src}/self_attention/linear_1")
        if cross:
            norm(f"{dst}.cross_attn_ln", f"{src}/attention/layer_norm")
            linear(f"{dst}.cross_attn.query", f"{src}/attention/linear_0")
            fused(f"{dst}.cross_attn", f"{src}/attention/linear_1", ("key", "value"))
            linear(f"{dst}.cross_attn.out", f"{src}/attention/linear_2")
        norm(f"{dst}.mlp_ln", f"{src}/ffn/layer_norm")
        linear(f"{dst}.mlp.0", f"{src}/ffn/linear_0")
        linear(f"{dst}.mlp.2", f"{src}/ffn/linear_1")

    dims = _openai_dims(model)
    linear("encoder.conv1", "encoder/conv1")
    linear("encoder.conv2", "encoder/conv2")
    # Whisper's encoder positions are fixed sinusoids; CT2 stores them (in its weight dtype),
    # and using the stored copy keeps all engines on identical numbers.
    if "encoder/position_encodings/encodings" in model:
        sd["encoder.positional_embedding"] = model.get("encoder/position_encodings/encodings")
    else:
        from whisper.model import sinusoids

        pos = sinusoids(dims["n_audio_ctx"], dims["n_audio_state"]).numpy()
        sd["encoder.positional_embedding"] = pos
    for i in range(dims["n_audio_layer"]):
        block(f"encoder.blocks.{i}", f"encoder/layer_{i}", cross=False)
    norm("encoder.ln_post", "encoder/layer_norm")

    sd["decoder.token_embedding.weight"] = model.get("decoder/embeddings/weight")
    sd["decoder.positional_embedding"] = model.get("decoder/position_encodings/encodings")
    for i in range(dims["n_text_layer"]):
        block(f"decoder.blocks.{i}", f"decoder/layer_{i}", cross=True)
    norm("decoder.ln", "decoder/layer_norm")

    # Whisper ties the output projection to the token embedding; refuse a model that does not.
    if "decoder/projection/weight" in model:
        proj = model.get("decoder/projection/weight")
        if proj is not sd["decoder.token_embedding.weight"] and not np.array_equal(
            proj, sd["decoder.token_embedding.weight"]
        ):
            raise ConversionError("the output projection is not tied to the token embedding")
    if "decoder/projection/bias" in model and np.any(model.get("decoder/projection/bias")):
        raise ConversionError("the output projection has a bias, which Whisper does not")
    return sd


def alignment_heads_dump(heads: list[list[int]], n_layer: int, n_head: int) -> bytes:
    """openai-whisper's encoding of alignment heads: base85(gzip(bool mask [layer, head]))."""
    mask = np.zeros((n_layer, n_head), dtype=bool)
    for layer, head in heads:
        mask[layer, head] = True
    return base64.b85encode(gzip.compress(mask.tobytes(), mtime=0))


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise ConversionError(f"cannot read {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise ConversionError(f"{path} is not a JSON object")
    return data


def ct2_to_openai(ct2_dir: Path, out_file: Path) -> Path:
    """Write an openai-whisper checkpoint of the CT2 model in ``ct2_dir``; returns ``out_file``.

    Weights keep their stored dtype (float16 for the bundled model); openai-whisper casts them
    into its float32 modules on load. ``whisper.load_model`` ignores the extra
    ``alignment_heads`` key: use :func:`load_openai_model` to apply it.
    """
    import torch

    ct2_dir, out_file = Path(ct2_dir), Path(out_file)
    model = read_ct2(ct2_dir / "model.bin")
    if model.spec != WHISPER_SPEC:
        raise ConversionError(f"{ct2_dir} holds a {model.spec}, not a {WHISPER_SPEC}")
    dims = _openai_dims(model)
    state = {k: torch.from_numpy(np.array(v)) for k, v in _openai_state_dict(model).items()}
    checkpoint: dict[str, Any] = {"dims": dims, "model_state_dict": state}
    heads = _read_json(ct2_dir / "config.json").get("alignment_heads")
    if heads:
        checkpoint["alignment_heads"] = alignment_heads_dump(
            heads, dims["n_text_layer"], dims["n_text_head"]
        )
    out_file.parent.mkdir(parents=True, exist_ok=True)
    with _temp_path(out_file) as tmp:
        torch.save(checkpoint, tmp)
        _fsync(tmp)
        os.replace(tmp, out_file)
    log.info("converted %s to openai-whisper checkpoint %s", ct2_dir, out_file)
    return out_file


def load_openai_model(checkpoint: Path, device: str = "cpu") -> Any:
    """``whisper.load_model`` plus the alignment heads stored by :func:`ct2_to_openai`."""
    import torch
    from whisper.model import ModelDimensions, Whisper

    data = torch.load(checkpoint, map_location="cpu", weights_only=True)
    model = Whisper(ModelDimensions(**data["dims"]))
    model.load_state_dict(data["model_state_dict"])  # strict, as in whisper.load_model
    if data.get("alignment_heads"):
        model.set_alignment_heads(data["alignment_heads"])
    return model.to(device)


# -- openai-whisper -> Hugging Face ----------------------------------------------------------


def _hf_key(openai_key: str) -> str:
    key = openai_key
    for old, new in _OPENAI_TO_HF:
        key = key.replace(old, new)
    return f"model.{key}"


def _special_ids(tokenizer: Any, names: list[str]) -> dict[str, int]:
    ids = {}
    for name in names:
        token_id = tokenizer.convert_tokens_to_ids(name)
        if token_id is None or (token_id == tokenizer.unk_token_id and name != "<|endoftext|>"):
            raise ConversionError(f"the tokenizer has no special token {name}")
        ids[name] = int(token_id)
    return ids


def openai_to_hf(openai_pt: Path, out_dir: Path, *, ct2_dir: Path) -> Path:
    """Write a transformers Whisper directory (weights, config, tokenizer, feature extractor).

    Only the state-dict renaming of transformers' openai conversion is reused (reimplemented:
    transformers 5 no longer ships the script, which also fetched tokenizer files and a
    generation config from the network). The tokenizer, language/task ids and suppressed
    tokens come from the CT2 directory, so nothing is downloaded.
    """
    import torch
    from transformers import (  # type: ignore[attr-defined]  # WhisperTokenizerFast: lazy export
        GenerationConfig,
        WhisperConfig,
        WhisperFeatureExtractor,
        WhisperForConditionalGeneration,
        WhisperProcessor,
        WhisperTokenizerFast,
    )

    openai_pt, out_dir, ct2_dir = Path(openai_pt), Path(out_dir), Path(ct2_dir)
    try:
        checkpoint = torch.load(openai_pt, map_location="cpu", weights_only=True)
        dims: dict[str, int] = checkpoint["dims"]
        state: dict[str, torch.Tensor] = checkpoint["model_state_dict"]
    except (OSError, RuntimeError, KeyError, TypeError) as exc:
        raise ConversionError(f"{openai_pt} is not an openai-whisper checkpoint: {exc}") from exc
    if dims["n_audio_state"] != dims["n_text_state"]:
        raise ConversionError("transformers' Whisper needs equal encoder and decoder widths")
    ct2_config = _read_json(ct2_dir / "config.json")

    tokenizer_file = ct2_dir / "tokenizer.json"
    if not tokenizer_file.is_file():
        raise ConversionError(f"{ct2_dir} has no tokenizer.json")
    eot = "<|endoftext|>"
    tokenizer = WhisperTokenizerFast(
        tokenizer_file=str(tokenizer_file),
        unk_token=eot,
        bos_token=eot,
        eos_token=eot,
        pad_token=eot,
        model_max_length=dims["n_text_ctx"],
    )
    if len(tokenizer) != dims["n_vocab"]:
        raise ConversionError(
            f"tokenizer has {len(tokenizer)} tokens but the model {dims['n_vocab']}"
        )
    specials = ["<|startoftranscript|>", "<|transcribe|>", "<|translate|>", "<|startofprev|>"]
    ids = _special_ids(tokenizer, [eot, *specials, "<|notimestamps|>"])
    lang_ids = [int(i) for i in ct2_config.get("lang_ids", [])]
    lang_to_id = {tokenizer.convert_ids_to_tokens(i): i for i in lang_ids}
    suppress = [int(i) for i in ct2_config.get("suppress_ids", [])]
    begin_suppress = [int(i) for i in ct2_config.get("suppress_ids_begin", [])]
    common: dict[str, Any] = {
        "decoder_start_token_id": ids["<|startoftranscript|>"],
        "bos_token_id": ids[eot],
        "eos_token_id": ids[eot],
        "pad_token_id": ids[eot],
        "suppress_tokens": suppress,
        "begin_suppress_tokens": begin_suppress,
    }
    config = WhisperConfig(
        vocab_size=dims["n_vocab"],
        num_mel_bins=dims["n_mels"],
        d_model=dims["n_audio_state"],
        encoder_layers=dims["n_audio_layer"],
        encoder_attention_heads=dims["n_audio_head"],
        decoder_layers=dims["n_text_layer"],
        decoder_attention_heads=dims["n_text_head"],
        encoder_ffn_dim=int(state["encoder.blocks.0.mlp.0.weight"].shape[0]),
        decoder_ffn_dim=int(state["decoder.blocks.0.mlp.0.weight"].shape[0]),
        max_source_positions=dims["n_audio_ctx"],
        max_target_positions=dims["n_text_ctx"],
        tie_word_embeddings=True,
        dtype="float32",
        **common,
    )
    config.architectures = ["WhisperForConditionalGeneration"]
    whisper_extras: dict[str, Any] = {}
    if ct2_config.get("alignment_heads"):  # for return_token_timestamps
        whisper_extras["alignment_heads"] = [
            [int(x) for x in h] for h in ct2_config["alignment_heads"]
        ]
    generation = GenerationConfig(
        **common,
        max_length=dims["n_text_ctx"],
        is_multilingual=len(lang_ids) > 1,
        lang_to_id=lang_to_id,
        task_to_id={"transcribe": ids["<|transcribe|>"], "translate": ids["<|translate|>"]},
        no_timestamps_token_id=ids["<|notimestamps|>"],
        prev_sot_token_id=ids["<|startofprev|>"],
        max_initial_timestamp_index=50,  # openai-whisper's default: 1 s
        return_timestamps=False,
        **whisper_extras,
    )

    with torch.device("meta"):
        hf_model = WhisperForConditionalGeneration(config)
    hf_state = {_hf_key(k): v.float() for k, v in state.items()}
    hf_state["proj_out.weight"] = hf_state["model.decoder.embed_tokens.weight"]
    hf_model.load_state_dict(hf_state, strict=True, assign=True)
    hf_model.tie_weights()
    hf_model.generation_config = generation

    processor = WhisperProcessor(
        feature_extractor=WhisperFeatureExtractor(feature_size=dims["n_mels"]),
        tokenizer=tokenizer,
    )
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out_dir.parent, prefix=f".{out_dir.name}.", suffix=".tmp"))
    tmp.chmod(0o755)  # mkdtemp makes it 0700
    try:
        hf_model.save_pretrained(tmp, safe_serialization=True)
        processor.save_pretrained(tmp)
        _replace_dir(tmp, out_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    log.info("converted %s to Hugging Face model %s", openai_pt, out_dir)
    return out_dir


# -- cached conversion -----------------------------------------------------------------------


def _source_state(ct2_dir: Path) -> dict[str, Any]:
    files = {}
    for name in _SOURCE_FILES:
        path = ct2_dir / name
        if path.exists():
            st = path.stat()
            files[name] = {"size": st.st_size, "mtime_ns": st.st_mtime_ns}
    return {"converter": CONVERTER_VERSION, "source": str(ct2_dir.resolve()), "files": files}


def _output_state(out: Path) -> dict[str, Any]:
    """Size and mtime of the output file, or of every file in an output directory."""
    if out.is_dir():
        return {p.name: _output_state(p) for p in sorted(out.iterdir()) if p.is_file()}
    st = out.stat()
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns}


def _marker_path(out: Path) -> Path:
    return out.with_name(out.name + _MARKER_SUFFIX)


def _is_current(out: Path, source: dict[str, Any]) -> bool:
    try:
        marker = json.loads(_marker_path(out).read_text(encoding="utf-8"))
        return bool(marker["source"] == source and marker["output"] == _output_state(out))
    except (OSError, ValueError, KeyError, TypeError):
        return False


def ensure_converted(ct2_dir: Path, cache_dir: Path, fmt: Literal["openai", "hf"]) -> Path:
    """The CT2 model converted to ``fmt`` under ``cache_dir``, converting only when needed.

    Outputs are ``<ct2 dir name>-openai.pt`` and ``<ct2 dir name>-hf/``, each with a sidecar
    ``*.source.json`` recording the size/mtime of the source files (and of the output, so a
    damaged output is redone). A lock file serialises concurrent processes; outputs are
    written to temp paths and renamed into place, so no reader sees a half-written model.
    """
    if fmt not in ("openai", "hf"):
        raise ValueError(f"unknown format {fmt!r}; expected 'openai' or 'hf'")
    ct2_dir, cache_dir = Path(ct2_dir), Path(cache_dir)
    if not (ct2_dir / "model.bin").is_file():
        raise FileNotFoundError(f"no CTranslate2 model in {ct2_dir} (model.bin is missing)")
    out = cache_dir / (f"{ct2_dir.name}-openai.pt" if fmt == "openai" else f"{ct2_dir.name}-hf")
    source = _source_state(ct2_dir)
    if _is_current(out, source):
        return out
    cache_dir.mkdir(parents=True, exist_ok=True)
    with _lock(cache_dir / f".{out.name}.lock"):
        if _is_current(out, source):  # another process finished it while we waited
            return out
        _remove_stale_temp_files(out)
        if fmt == "openai":
            ct2_to_openai(ct2_dir, out)
        else:
            openai_pt = ensure_converted(ct2_dir, cache_dir, "openai")
            openai_to_hf(openai_pt, out, ct2_dir=ct2_dir)
        marker = {"source": source, "output": _output_state(out)}
        with _temp_path(_marker_path(out)) as tmp:
            tmp.write_text(json.dumps(marker, indent=2), encoding="utf-8")
            os.replace(tmp, _marker_path(out))
    return out


# -- file helpers ----------------------------------------------------------------------------


@contextlib.contextmanager
def _temp_path(dest: Path) -> Iterator[Path]:
    """A unique temp file next to ``dest``; removed unless it was renamed away."""
    fd, raw = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".tmp")
    os.fchmod(fd, 0o644)  # mkstemp makes it 0600; a model is not a secret
    os.close(fd)
    tmp = Path(raw)
    try:
        yield tmp
    finally:
        tmp.unlink(missing_ok=True)


def _remove_stale_temp_files(out: Path) -> None:
    """Temp files of ``out`` left by a crashed conversion (called under the lock: all stale)."""
    for path in out.parent.glob(f".{out.name}.*.tmp"):
        log.info("removing %s left by an interrupted conversion", path)
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)


def _fsync(path: Path) -> None:
    with path.open("rb") as fh:
        os.fsync(fh.fileno())


def _replace_dir(src: Path, dest: Path) -> None:
    """Move directory ``src`` to ``dest``; an old ``dest`` is renamed aside, then deleted."""
    old: Path | None = None
    if dest.exists():
        old = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{dest.name}.old.", suffix=".tmp"))
        os.replace(dest, old / dest.name)
    os.replace(src, dest)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


@contextlib.contextmanager
def _lock(path: Path) -> Iterator[None]:
    """An exclusive advisory lock (flock) held for the duration of a conversion."""
    with path.open("a") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


__all__ = [
    "CONVERTER_VERSION",
    "WHISPER_SPEC",
    "ConversionError",
    "Ct2Model",
    "alignment_heads_dump",
    "ct2_to_openai",
    "ensure_converted",
    "load_openai_model",
    "openai_to_hf",
    "read_ct2",
]
