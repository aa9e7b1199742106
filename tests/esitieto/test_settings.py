"""Settings: the ESITIETO_ prefix, nesting, secrets kept secret and shared via the data dir."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select

from esitieto.app import prepare
from esitieto.runtime import Runtime
from esitieto.settings import Settings
from models import Station, User


def test_environment_and_nesting(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("ESITIETO_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("ESITIETO_DATABASE__URL", "postgresql+psycopg://u@h/db")
    monkeypatch.setenv("ESITIETO_TWILIO__AUTH_TOKEN", "s3cret-token")
    monkeypatch.setenv("ESITIETO_ASR__BEAM_SIZE", "3")
    s = Settings()
    assert s.data_dir == tmp_path
    assert s.database_url == "postgresql+psycopg://u@h/db"
    assert s.asr.beam_size == 3
    assert s.twilio_auth_token.get_secret_value() == "s3cret-token"
    assert "s3cret-token" not in repr(s)


def test_defaults_embed_everything_in_the_data_dir(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("ESITIETO_DATA_DIR", str(tmp_path / "var"))
    s = Settings()
    assert s.database_url == f"sqlite:///{(tmp_path / 'var' / 'esitieto.sqlite3').resolve()}"
    assert s.worker.mode == "inprocess"


def test_generated_secrets_are_stable_and_private(tmp_path: Path) -> None:
    a = Settings(data_dir=tmp_path)
    b = Settings(data_dir=tmp_path)
    token = a.twilio_auth_token.get_secret_value()
    assert len(token) == 32
    assert token == b.twilio_auth_token.get_secret_value()
    assert a.session_secret.get_secret_value() == b.session_secret.get_secret_value()
    assert (tmp_path / "secrets.json").stat().st_mode & 0o077 == 0


def test_the_demo_is_off_unless_asked_for(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A production start creates no station and no accounts with a shared password; `make
    run` asks for the demo (and the simulator's loopback recordings) explicitly."""
    for name in ("ESITIETO_DEMO__ENABLED", "ESITIETO_TWILIO__ALLOW_LOCAL_RECORDINGS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("ESITIETO_DATA_DIR", str(tmp_path))
    settings = Settings()
    assert not settings.demo.enabled and not settings.twilio.allow_local_recordings
    runtime = Runtime(settings)
    try:
        assert prepare(runtime) is None
        with runtime.db.session() as s:
            assert s.scalar(select(func.count()).select_from(User)) == 0
            assert s.scalar(select(func.count()).select_from(Station)) == 0
    finally:
        runtime.close()
    makefile = (Path(__file__).parents[2] / "Makefile").read_text()
    run_recipe = makefile.split("\nrun:", 1)[1].split("\n\n", 1)[0]
    assert "ESITIETO_DEMO__ENABLED=$${ESITIETO_DEMO__ENABLED:-true}" in run_recipe
