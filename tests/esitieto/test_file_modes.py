"""Health data at rest is the service's own: no other account on the host can read it."""

from __future__ import annotations

import stat
from pathlib import Path

from esitieto.app import prepare
from esitieto.runtime import Runtime
from tests.conftest import make_settings


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_data_directory_database_and_recordings_are_private(tmp_path: Path) -> None:
    data = tmp_path / "var"
    data.mkdir(mode=0o755)  # an existing, too open directory is tightened
    runtime = Runtime(make_settings(data))
    try:
        prepare(runtime)
        runtime.storage.put("CA123/RE456.wav", b"RIFF-test-audio")
        assert _mode(data) == 0o700
        database = data / "esitieto.sqlite3"
        assert _mode(database) == 0o600
        for sidecar in (data / "esitieto.sqlite3-wal", data / "esitieto.sqlite3-shm"):
            if sidecar.exists():
                assert _mode(sidecar) & 0o077 == 0, sidecar.name
        recording = runtime.settings.recordings_dir / "CA123" / "RE456.wav"
        assert _mode(recording) == 0o600 and _mode(recording.parent) == 0o700
        assert _mode(runtime.settings.recordings_dir) == 0o700
    finally:
        runtime.close()
