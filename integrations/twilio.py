"""Twilio at the HTTP boundary: webhook signatures and recording downloads."""

from __future__ import annotations

import time
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
    """The whole download's deadline, not each read's."""
    recording_max_bytes: int = 25_000_000
    """A recording is at most a few minutes of 8 kHz audio (about 1 MB a minute as WAV)."""
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


REDIRECT_HOSTS = ("twilio.com", "twiliocdn.com")
"""Where a recording download may be redirected (Twilio's own hosts, over https)."""


class RecordingFetcher:
    """Downloads a recording as WAV with the account's credentials (HTTP basic auth).

    What comes back must be audio, arrive within one overall deadline and stay under a size
    cap; a redirect is followed only on the same host or to Twilio's own hosts over https,
    and the credentials go only to the host that was asked."""

    def __init__(
        self,
        account_sid: str,
        auth_token: str,
        *,
        timeout_s: float = 30.0,
        max_bytes: int = 25_000_000,
    ) -> None:
        self._auth = (account_sid, auth_token)
        self._timeout = timeout_s
        self._max_bytes = max_bytes

    @staticmethod
    def media_url(recording_url: str) -> str:
        # Twilio serves the same recording as .wav or .mp3; WAV keeps the 8 kHz audio lossless.
        return (
            recording_url if recording_url.rsplit("/", 1)[-1].count(".") else recording_url + ".wav"
        )

    def fetch(self, recording_url: str) -> FetchedRecording:
        url = httpx.URL(self.media_url(recording_url))
        origin = url.host
        deadline = time.monotonic() + self._timeout
        try:
            with httpx.Client(timeout=self._timeout, follow_redirects=False) as client:
                for _ in range(4):  # the request and up to three redirects
                    auth = self._auth if url.host == origin else None
                    with client.stream("GET", url, auth=auth) as response:
                        if response.is_redirect:
                            url = self._redirect(url, response, origin)
                            continue
                        return self._read(response, deadline)
        except httpx.HTTPError as exc:
            raise RecordingFetchError(f"recording download failed: {type(exc).__name__}") from exc
        raise RecordingFetchError("recording download redirected too often")

    @staticmethod
    def _redirect(url: httpx.URL, response: httpx.Response, origin: str) -> httpx.URL:
        target = url.join(response.headers.get("location", ""))
        twilio = target.scheme == "https" and any(
            target.host == h or target.host.endswith("." + h) for h in REDIRECT_HOSTS
        )
        if target.host != origin and not twilio:
            raise RecordingFetchError("recording download redirected to another host: refused")
        return target

    def _read(self, response: httpx.Response, deadline: float) -> FetchedRecording:
        if response.status_code == 404:
            raise RecordingNotReady("recording not available yet (404)")
        if response.status_code >= 400:
            raise RecordingFetchError(f"recording download failed: HTTP {response.status_code}")
        content_type = response.headers.get("content-type", "audio/wav").split(";")[0].strip()
        if not content_type.lower().startswith("audio/"):
            raise RecordingFetchError(f"recording download is not audio ({content_type[:40]})")
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self._max_bytes:
            raise RecordingFetchError(f"recording over {self._max_bytes} bytes: refused")
        data = bytearray()
        for chunk in response.iter_bytes():
            data += chunk
            if len(data) > self._max_bytes:
                raise RecordingFetchError(f"recording over {self._max_bytes} bytes: refused")
            if time.monotonic() > deadline:
                raise RecordingFetchError("recording download over its deadline")
        if not data:
            raise RecordingFetchError("recording download returned no data")
        return FetchedRecording(data=bytes(data), content_type=content_type)
