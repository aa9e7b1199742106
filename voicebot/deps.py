"""What the call needs from the rest of the app, given explicitly by the composition root.

The webhooks and the after-call jobs never reach for a global runtime: ``esitieto/app.py``
builds one :class:`VoicebotDeps` and puts it on ``app.state.voicebot`` (the webhooks get it
with :func:`get_deps`), and ``esitieto/worker.py`` hands the same object to the jobs.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from fastapi import Request
from pydantic import SecretStr
from sqlalchemy.orm import Session

from models import utcnow

if TYPE_CHECKING:
    from integrations.sms import SmsSender
    from integrations.storage import Storage
    from integrations.twilio import CallAtTwilio, FetchedRecording
    from pretriage.analysis import Analyzer
    from summarizer.speech.stt import SpeechToText


class FetchRecording(Protocol):
    def __call__(
        self, recording_url: str, *, timeout_s: float | None = None
    ) -> FetchedRecording: ...


@dataclass(frozen=True)
class VoicebotDeps:
    session: Callable[[], AbstractContextManager[Session]]
    """One unit of work: committed on success, rolled back on any error."""
    auth_token: SecretStr
    """The Twilio auth token: checks ``X-Twilio-Signature``."""
    public_base_url: str | None
    """The URL Twilio calls when the app is behind a proxy (signatures cover the URL)."""
    fetch_recording: FetchRecording
    """Downloads a recording; ``timeout_s`` bounds the whole download (the in-call budget)."""
    storage: Storage
    speech_to_text: Callable[[], SpeechToText]
    """The process-wide engine, loaded on first use."""
    analyze: Analyzer
    """Words → summary + pretriage (with the configured phraser)."""
    identity_key: bytes
    """Seals keyed identity codes (AES-256-GCM)."""
    sms: SmsSender | None
    """None: no SMS sender configured, so no caller is offered a digital path's link."""
    call_at_twilio: Callable[[str], CallAtTwilio | None] | None = None
    """Asks Twilio's Calls API how a call stands (None: no Twilio account configured)."""
    export_fhir: Callable[[dict[str, Any]], object] | None = None
    """Posts a finished case's FHIR Bundle to the county's server (None: no export)."""
    fhir_case_system: str = "urn:esitieto:case"
    """The identifier system of the FHIR resources a case creates."""
    known_stations: dict[str, tuple[str, str, str | None]] = field(default_factory=dict)
    """Station number → (id, language, voice), loaded at start: a caller is still put
    through to the nurses while the database is away (restarting)."""
    in_call_budget_s: float = 8.0
    abandoned_call_after_s: float = 4 * 3600.0
    clock: Callable[[], datetime] = field(default=utcnow)
    """Now, as an aware UTC datetime (tests pin it: opening hours and dates depend on it)."""


def get_deps(request: Request) -> VoicebotDeps:
    deps: VoicebotDeps = request.app.state.voicebot
    return deps
