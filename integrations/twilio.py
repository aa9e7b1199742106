"""Twilio at the HTTP boundary: webhook signatures and recording downloads."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import httpx
from pydantic import BaseModel, SecretStr
from twilio.request_validator import RequestValidator


class TwilioSettings(BaseModel):
    account_sid: str = "AC00000000000000000000000000000000"
    auth_token: SecretStr | None = None
    """Validates ``X-Twilio-Signature`` and authenticates recording downloads."""
    public_base_url: str | None = None
    """The URL Twilio calls (e.g. ``https://esitieto.example.fi``) when behind a proxy.

    Signatures are computed over the exact URL Twilio requested; behind a TLS-terminating
    proxy the app sees another one, so set this there."""
    recording_fetch_timeout_s: float = 30.0
    region: str | None = None
    edge: str | None = None
    api_base_url: str | None = None
    """Overrides Twilio's REST host (``api.{edge}.{region}.twilio.com``), e.g. for a proxy."""


def signature_is_valid(
    auth_token: str, url: str, params: Mapping[str, str], signature: str | None
) -> bool:
    """True when ``X-Twilio-Signature`` matches, using the Twilio SDK's own validator."""
    if not signature:
        return False
    return bool(RequestValidator(auth_token).validate(url, dict(params), signature))


def sign(auth_token: str, url: str, params: Mapping[str, str]) -> str:
    """The signature Twilio would send for this request (used by the call simulator)."""
    return str(RequestValidator(auth_token).compute_signature(url, dict(params)))


class RecordingNotReady(Exception):
    """Twilio has not finished the recording yet (404): try again later."""


class RecordingFetchError(Exception):
    """The recording could not be downloaded."""


@dataclass(frozen=True)
class FetchedRecording:
    data: bytes
    content_type: str


class RecordingFetcher:
    """Downloads a recording as WAV with the account's credentials (HTTP basic auth)."""

    def __init__(self, account_sid: str, auth_token: str, *, timeout_s: float = 30.0) -> None:
        self._auth = (account_sid, auth_token)
        self._timeout = timeout_s

    @staticmethod
    def media_url(recording_url: str) -> str:
        # Twilio serves the same recording as .wav or .mp3; WAV keeps the 8 kHz audio lossless.
        return (
            recording_url if recording_url.rsplit("/", 1)[-1].count(".") else recording_url + ".wav"
        )

    def fetch(self, recording_url: str) -> FetchedRecording:
        url = self.media_url(recording_url)
        try:
            response = httpx.get(url, auth=self._auth, timeout=self._timeout, follow_redirects=True)
        except httpx.HTTPError as exc:
            raise RecordingFetchError(f"recording download failed: {type(exc).__name__}") from exc
        if response.status_code == 404:
            raise RecordingNotReady("recording not available yet (404)")
        if response.status_code >= 400:
            raise RecordingFetchError(f"recording download failed: HTTP {response.status_code}")
        if not response.content:
            raise RecordingFetchError("recording download returned no data")
        content_type = response.headers.get("content-type", "audio/wav").split(";")[0].strip()
        return FetchedRecording(data=response.content, content_type=content_type)
