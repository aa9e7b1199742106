"""Shared fixtures: settings on a temporary data dir, databases (SQLite and PostgreSQL),
the app, signed Twilio requests and synthetic caller audio."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from argon2 import PasswordHasher
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy import create_engine, select, text, update
from sqlalchemy.exc import OperationalError

from esitieto.app import create_app, make_worker, prepare
from esitieto.runtime import Runtime
from esitieto.settings import (
    DatabaseSettings,
    DemoSettings,
    Settings,
    WebSettings,
    WorkerSettings,
)
from esitieto.web.auth import use_password_hasher
from integrations.fhir.client import FhirSettings
from integrations.twilio import TwilioSettings, sign
from models import Call, Job, JobState, utcnow
from summarizer.speech.bundled_model import ensure_bundled_model
from tests.integrations.fhir_server import FhirServer, running


@pytest.fixture(scope="session", autouse=True)
def cheap_password_hashing() -> None:
    """argon2 at its cheapest parameters for the tests (``test_staff.py`` checks that the app
    itself hashes with the strong defaults)."""
    use_password_hasher(PasswordHasher(time_cost=1, memory_cost=8, parallelism=1))


PG_ADMIN_URL = os.environ.get(
    "ESITIETO_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


def _pg_reachable(url: str) -> bool:
    try:
        engine = create_engine(url, connect_args={"connect_timeout": 3})
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        engine.dispose()
        return True
    except Exception:
        return False


def _start_postgres() -> None:
    """Start the machine's PostgreSQL cluster if it is installed but down."""
    etc = Path("/etc/postgresql")
    if not etc.is_dir() or not shutil.which("pg_ctlcluster"):
        return
    for version in sorted(p.name for p in etc.iterdir()):
        subprocess.run(
            ["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "start"],
            check=False,
            capture_output=True,
            timeout=60,
        )


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A fresh PostgreSQL database for this test session (started if the server is down)."""
    if not _pg_reachable(PG_ADMIN_URL):
        _start_postgres()
        for _ in range(20):
            if _pg_reachable(PG_ADMIN_URL):
                break
            time.sleep(0.5)
        else:
            pytest.skip(f"PostgreSQL is not reachable at {PG_ADMIN_URL} and could not be started")
    name = f"esitieto_test_{uuid.uuid4().hex[:10]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    yield url
    for attempt in range(5):  # a server restarted meanwhile (by another run) is waited for
        try:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            break
        except OperationalError:
            admin.dispose()
            time.sleep(1 + attempt)
    admin.dispose()


def _reset_pg(url: str) -> None:
    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text("DROP SCHEMA public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    engine.dispose()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A database file migrated to the newest schema and seeded with the demo station and
    accounts once per test session: each test starts from a copy (migrating and hashing the
    demo passwords take a second and a half, copying the file a millisecond)."""
    data_dir = tmp_path_factory.mktemp("template")
    rt = Runtime(make_settings(data_dir))
    prepare(rt)
    rt.close()
    return data_dir / "esitieto.sqlite3"


def fresh_sqlite(template: Path, path: Path) -> str:
    """A copy of the migrated template at ``path``, as an SQLAlchemy URL."""
    path.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(template, path)
    return f"sqlite:///{path}"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path, sqlite_template: Path) -> str:
    """Each database test runs on SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        return fresh_sqlite(sqlite_template, tmp_path / "test.sqlite3")
    url: str = request.getfixturevalue("postgres_url")
    _reset_pg(url)
    return url


API_TOKEN = "test-api-token-0123456789"
API = {"Authorization": f"Bearer {API_TOKEN}"}
"""Headers of a machine calling ``/api/v1/analyze`` with the configured token."""


def make_settings(data_dir: Path, database_url: str | None = None, **worker: object) -> Settings:
    return Settings(
        data_dir=data_dir,
        database=DatabaseSettings(url=database_url),
        worker=WorkerSettings.model_validate(
            {"mode": "external", "poll_interval_s": 0.05, "retry_base_s": 0.05, **worker}
        ),
        twilio=TwilioSettings(
            auth_token=SecretStr("test-auth-token-0123456789abcdef"), allow_local_recordings=True
        ),
        # analyses in the test process (the pool has its own tests: test_analysis_pool.py)
        web=WebSettings(api_token=SecretStr(API_TOKEN), analyze_workers=0),
        demo=DemoSettings(enabled=True, nurse_password=SecretStr("demo-password")),
    )


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return make_settings(tmp_path / "var", database_url)


@pytest.fixture
def sqlite_settings(tmp_path: Path, sqlite_template: Path) -> Settings:
    """For tests that are not about the database."""
    data_dir = tmp_path / "var"
    fresh_sqlite(sqlite_template, data_dir / "esitieto.sqlite3")
    return make_settings(data_dir)


@pytest.fixture
def runtime(settings: Settings) -> Iterator[Runtime]:
    rt = Runtime(settings)
    prepare(rt)
    yield rt
    rt.close()


@pytest.fixture
def client(runtime: Runtime) -> Iterator[TestClient]:
    with TestClient(create_app(runtime=runtime)) as c:
        yield c


class Twilio:
    """Signs webhook requests the way Twilio does, for the test client."""

    def __init__(self, client: TestClient, auth_token: str) -> None:
        self.client = client
        self.auth_token = auth_token

    def post(self, path: str, params: dict[str, str], *, signature: str | None = None):
        url = f"http://testserver{path}"
        sig = signature if signature is not None else sign(self.auth_token, url, params)
        return self.client.post(path, data=params, headers={"X-Twilio-Signature": sig})


@pytest.fixture
def twilio(client: TestClient, runtime: Runtime) -> Twilio:
    return Twilio(client, runtime.settings.twilio_auth_token.get_secret_value())


def call_params(call_sid: str | None = None, **extra: str) -> dict[str, str]:
    return {
        "CallSid": call_sid or "CA" + uuid.uuid4().hex,
        "AccountSid": "AC00000000000000000000000000000000",
        "From": "+358401234567",
        "To": "+358900000000",
        "Direction": "inbound",
        "CallStatus": "in-progress",
        **extra,
    }


def need(*commands: str) -> None:
    for cmd in commands:
        if shutil.which(cmd) is None:
            pytest.skip(f"{cmd} is not installed (make test installs it)")


def synth_phone_audio(text_: str, out: Path, *, voice: str = "fi", rate: int = 140) -> Path:
    """Speak ``text_`` with espeak-ng and turn it into 8 kHz μ-law WAV, as on a phone line."""
    need("espeak-ng", "sox")
    wide = out.with_suffix(".22k.wav")
    subprocess.run(["espeak-ng", "-v", voice, "-s", str(rate), "-w", str(wide), text_], check=True)
    subprocess.run(
        ["sox", "-R", str(wide), "-r", "8000", "-c", "1", "-e", "u-law", str(out)], check=True
    )
    wide.unlink()
    return out


@pytest.fixture(scope="session")
def finnish_caller_wav(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An invented Finnish caller, synthesised: fever and cough for three days."""
    out = tmp_path_factory.mktemp("calls") / "kuume.wav"
    return synth_phone_audio(
        "Minulla on ollut kuumetta ja yskää kolme päivää. Kurkku on kipeä.", out
    )


@pytest.fixture(scope="session")
def bundled_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bundled model assembled into a temp data dir: ``<data>/models/whisper-base-ct2``."""
    return ensure_bundled_model(tmp_path_factory.mktemp("data") / "models")


@pytest.fixture(scope="session")
def converted_models(
    bundled_model_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Path]:
    """The bundled weights in openai-whisper and Hugging Face format (converted once)."""
    from summarizer.speech.convert import ensure_converted

    cache = tmp_path_factory.mktemp("converted")
    return {
        "openai": ensure_converted(bundled_model_dir, cache, "openai"),
        "hf": ensure_converted(bundled_model_dir, cache, "hf"),
    }


@pytest.fixture(scope="session")
def silent_wav(tmp_path_factory: pytest.TempPathFactory) -> Path:
    need("sox")
    out = tmp_path_factory.mktemp("calls") / "silent.wav"
    subprocess.run(
        ["sox", "-R", "-n", "-r", "8000", "-c", "1", "-e", "u-law", str(out), "trim", "0", "3"],
        check=True,
    )
    return out


def drain(runtime: Runtime, max_runs: int = 100) -> None:
    """Run the jobs until none is left, skipping retry backoffs."""
    worker = make_worker(runtime)
    for _ in range(max_runs):
        with runtime.db.session() as s:
            s.execute(update(Job).where(Job.state == JobState.QUEUED).values(run_after=utcnow()))
        if not worker.run_one():
            return
    raise AssertionError("jobs did not settle")


# -- the county's FHIR server (tests/integrations/fhir_server.py) ------------------------------

SYSTEM = "urn:example:county:esitieto"


@pytest.fixture
def fhir_server() -> Iterator[tuple[FhirServer, str]]:
    server = FhirServer()
    with running(server) as url:
        yield server, url


@pytest.fixture
def exporting(settings: Settings, fhir_server: tuple[FhirServer, str]) -> Iterator[Runtime]:
    _, url = fhir_server
    fhir = FhirSettings(
        base_url=f"{url}/fhir",
        token_url=f"{url}/token",
        client_id="esitieto",
        client_secret=SecretStr("s3cret"),
        identifier_system=SYSTEM,
        timeout_s=5,
    )
    rt = Runtime(settings.model_copy(update={"fhir": fhir}))
    prepare(rt)
    yield rt
    rt.close()


def finished_call(runtime: Runtime) -> str:
    with TestClient(create_app(runtime=runtime)) as client:
        twilio = Twilio(client, runtime.settings.twilio_auth_token.get_secret_value())
        params = call_params()
        assert twilio.post("/twilio/voice", params).status_code == 200
        end = {**params, "CallStatus": "completed", "CallDuration": "30"}
        assert twilio.post("/twilio/status", end).status_code == 200
    with runtime.db.session() as s:
        call_id = s.scalar(select(Call.id).where(Call.call_sid == params["CallSid"]))
    assert call_id is not None
    return call_id
