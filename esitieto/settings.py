"""One settings object for the whole app, read from ``ESITIETO_*`` environment variables.

Nested concerns use ``__`` (``ESITIETO_DATABASE__URL``). Secrets are ``SecretStr`` so they never
end up in a log line or a repr. Secrets that are not configured are generated once and kept in
the data directory, so ``make run`` works with no configuration and a second process (the
call simulator, a worker) on the same data directory shares them.
"""

from __future__ import annotations

import json
import os
import secrets
from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from integrations.fhir.client import FhirSettings
from integrations.jobs import LANES
from integrations.twilio import TwilioSettings
from models.encryption import Keyring
from pretriage.settings import DetectorSettings
from summarizer.speech.settings import AsrSettings
from summarizer.text.settings import SummarizerSettings
from voicebot.settings import VoicebotSettings


class DatabaseSettings(BaseModel):
    url: str | None = None
    """SQLAlchemy URL; default: SQLite file ``esitieto.sqlite3`` in the data directory."""
    echo: bool = False
    pool_size: int = 10


class WorkerSettings(BaseModel):
    engine: Literal["embedded", "procrastinate"] = "embedded"
    """Who delivers the outbox's jobs: ``embedded`` (the worker polls the outbox; SQLite or
    PostgreSQL, no other service) or ``procrastinate`` (PostgreSQL only: LISTEN/NOTIFY, a
    queue per lane; ``esitieto/job_engine.py``). With procrastinate run the jobs with
    ``esitieto worker`` processes (``mode: external``)."""
    mode: Literal["inprocess", "external"] = "inprocess"
    """``inprocess`` runs the job worker inside the web app; ``external`` leaves it to
    ``esitieto worker`` processes."""
    lanes: list[str] = Field(default_factory=lambda: list(LANES))
    """The lanes this process runs, one thread each (``esitieto worker --lanes`` overrides):
    e.g. ``["transcribe"]`` on a host kept for speech-to-text."""
    poll_interval_s: float = 0.5
    lease_s: float = 300.0
    max_attempts: int = 6
    retry_base_s: float = 2.0
    abandoned_call_after_s: float = 4 * 3600.0
    """A call with no final status callback after this long is closed and processed anyway."""
    reconcile_every_s: float = Field(default=300.0, ge=10.0)
    """How often (and at start) calls still in progress are checked with Twilio's Calls API,
    so a lost final status callback delays a case by minutes, not hours."""
    relay_every_s: float = Field(default=10.0, ge=1.0)
    """With procrastinate: how often jobs whose hand-over was lost are delivered again."""
    sweep_every_s: float = Field(default=30.0, ge=1.0)
    """How often stalled and abandoned cases are looked for."""


class WebSettings(BaseModel):
    session_secret: SecretStr | None = None
    session_max_age_s: int = 12 * 3600
    api_token: SecretStr | None = None
    """A bearer token that lets a machine (a county's system, the evaluation harness) call
    ``POST /api/v1/analyze`` without a staff sign-in; None: staff sign-in only."""
    analyze_workers: int = Field(default=2, ge=0)
    """Processes for ``POST /api/v1/analyze`` (``esitieto/analysis_pool.py``); 0 analyses in
    the web process itself, with no deadline (only for tests and tools)."""
    analyze_deadline_s: float = Field(default=10.0, gt=0)
    """An analysis still running after this is stopped (its process replaced) and answered 503."""
    idle_timeout_s: int = Field(default=3600, ge=60)
    """A staff session unused this long ends (the next click asks to sign in again)."""
    secure_cookies: bool = False
    max_body_bytes: int = Field(default=1_000_000, ge=1024)
    """Larger request bodies are refused (413) before anything reads them: Twilio's
    webhooks, the forms and a 20,000-character analysis all fit many times over."""


class SsoSettings(BaseModel):
    """Staff sign-in through the county's OpenID Connect provider (Entra ID, Keycloak…):
    authorization code with PKCE (``esitieto/web/sso.py``). Off until ``issuer`` is set."""

    issuer: str | None = None
    """The provider's issuer URL; its ``/.well-known/openid-configuration`` must name exactly
    this issuer, and every ID token must come from it."""
    client_id: str = "esitieto"
    client_secret: SecretStr | None = None
    scope: str = "openid profile"
    redirect_uri: str | None = None
    """Where the provider sends the browser back (``…/login/sso/callback``, as registered
    there); default: this site's own address as the browser reached it."""
    role_claim: str = "roles"
    """The ID token claim listing the user's roles (a dotted path reads nested claims, e.g.
    Keycloak's ``realm_access.roles``)."""
    roles: dict[str, str] = Field(default_factory=dict)
    """The provider's role names → Esitieto's roles (nurse, station_lead, admin, region),
    e.g. ``{"esitieto-nurse": "nurse"}``; required (a realm-wide ``admin`` must not become
    ours by its name). A user with none of these names is not let in."""
    station_claim: str = "stations"
    """The ID token claim listing the stations the user works for."""
    stations: dict[str, str] = Field(default_factory=dict)
    """The provider's values (e.g. Entra group ids) → station ids; empty: the values are
    station ids. Values that name no station are ignored."""
    username_claim: str = "preferred_username"
    name_claim: str = "name"
    algorithms: list[str] = Field(default_factory=lambda: ["RS256", "PS256", "ES256"])
    """ID token signatures accepted (of those the provider announces); ``none`` and HMAC
    never are."""
    prompt: str | None = "login"
    """Sent to the provider: ``login`` asks who is at the keyboard at every sign-in, even if
    the provider still has a session (a shared hospital PC); empty: the provider decides."""
    password_login: bool = True
    """False: the password form is gone and only single sign-on lets staff in."""
    timeout_s: float = Field(default=10.0, gt=0)


class EncryptionSettings(BaseModel):
    keys: SecretStr | None = None
    """``id:hex64[,id:hex64…]``: AES-256 keys for recordings and health text at rest; the
    first seals, the others only open (rotation: put the new key first, run ``esitieto
    rotate-keys``, then drop the old one). Default: one key generated in the data directory."""


class RetentionSettings(BaseModel):
    """Days from the end of a call; empty keeps that kind for good (``voicebot/retention.py``)."""

    recordings_days: int | None = Field(default=30, ge=1)
    """Audio: long enough to listen again to a case a nurse or a complaint asks about."""
    transcripts_days: int | None = Field(default=90, ge=1)
    """What was heard; by then the nurse has written what matters into the patient record."""
    cases_days: int | None = Field(default=365, ge=1)
    """Then only anonymous figures remain (station, times, urgency, route, feedback scores)."""
    every_s: float = Field(default=24 * 3600.0, ge=60.0)
    """How often the deletion runs (and once at worker start)."""


class DemoSettings(BaseModel):
    enabled: bool = False
    """Seed the demo station and one demo account per role (all with the demo password).
    Off unless asked for: ``make run`` asks (a production start must not create accounts
    with a shared password)."""
    station_id: str = "demo"
    phone_number: str = "+358900000000"
    nurse_username: str = "hoitaja"
    lead_username: str = "osastonhoitaja"
    admin_username: str = "paakayttaja"
    nurse_password: SecretStr | None = None


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="ESITIETO_", env_nested_delimiter="__", extra="ignore"
    )

    data_dir: Path = Path("./var")
    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    twilio: TwilioSettings = Field(default_factory=TwilioSettings)
    asr: AsrSettings = Field(default_factory=AsrSettings)
    summarizer: SummarizerSettings = Field(default_factory=SummarizerSettings)
    detector: DetectorSettings = Field(default_factory=DetectorSettings)
    voicebot: VoicebotSettings = Field(default_factory=VoicebotSettings)
    worker: WorkerSettings = Field(default_factory=WorkerSettings)
    web: WebSettings = Field(default_factory=WebSettings)
    encryption: EncryptionSettings = Field(default_factory=EncryptionSettings)
    retention: RetentionSettings = Field(default_factory=RetentionSettings)
    demo: DemoSettings = Field(default_factory=DemoSettings)
    fhir: FhirSettings = Field(default_factory=FhirSettings)
    sso: SsoSettings = Field(default_factory=SsoSettings)
    log_level: str = "INFO"

    @property
    def database_url(self) -> str:
        if self.database.url:
            return self.database.url
        return f"sqlite:///{(self.data_dir / 'esitieto.sqlite3').resolve()}"

    @property
    def recordings_dir(self) -> Path:
        return self.data_dir / "recordings"

    @property
    def models_dir(self) -> Path:
        return self.data_dir / "models"

    @cached_property
    def _generated(self) -> dict[str, str]:
        return _load_or_create_generated_secrets(self.data_dir)

    @property
    def twilio_auth_token(self) -> SecretStr:
        return self.twilio.auth_token or SecretStr(self._generated["twilio_auth_token"])

    @property
    def session_secret(self) -> SecretStr:
        return self.web.session_secret or SecretStr(self._generated["session_secret"])

    @property
    def identity_key(self) -> bytes:
        secret = self.voicebot.identity_key or SecretStr(self._generated["identity_key"])
        return bytes.fromhex(secret.get_secret_value())

    @property
    def keyring(self) -> Keyring:
        spec = self.encryption.keys or SecretStr("g1:" + self._generated["data_key"])
        return Keyring.parse(spec.get_secret_value())

    @property
    def demo_nurse_password(self) -> SecretStr:
        return self.demo.nurse_password or SecretStr(self._generated["demo_nurse_password"])


_GENERATED_KEYS = (
    "twilio_auth_token",
    "session_secret",
    "demo_nurse_password",
    "identity_key",
    "data_key",
)


def _load_or_create_generated_secrets(data_dir: Path) -> dict[str, str]:
    """Secrets for embedded defaults, created once per data directory (mode 0600)."""
    path = data_dir / "secrets.json"
    existing: dict[str, str] = {}
    if path.exists():
        existing = json.loads(path.read_text(encoding="utf-8"))
        if all(k in existing for k in _GENERATED_KEYS):
            return existing
    values = dict(existing)
    for key in _GENERATED_KEYS:
        if key not in values:
            values[key] = (
                secrets.token_hex(16)
                if key == "twilio_auth_token"
                else secrets.token_hex(32)
                if key in ("identity_key", "data_key")
                else secrets.token_urlsafe(24)
            )
    data_dir.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".secrets.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(values, fh, indent=2)
    if existing:
        tmp.replace(path)
        return values
    try:
        os.link(tmp, path)  # fails if another process created it first: theirs wins
    except FileExistsError:
        values = json.loads(path.read_text(encoding="utf-8"))
    finally:
        tmp.unlink()
    return values


def get_settings() -> Settings:
    return Settings()
