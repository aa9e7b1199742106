"""Voicebot settings (``ESITIETO_VOICEBOT__*``), a section of the app's settings."""

from __future__ import annotations

from pydantic import BaseModel, SecretStr


class VoicebotSettings(BaseModel):
    in_call_budget_s: float = 8.0
    """How long the caller waits ("one moment") for their answer to be transcribed and
    pretriaged during the call; later, a nurse takes the call."""
    identity_key: SecretStr | None = None
    """32 bytes, hex: seals keyed identity codes (AES-256-GCM); generated when not set."""
    sms_sender: str | None = None
    """An E.164 number or a Messaging Service SID (``MG...``) the SMS links come from."""
