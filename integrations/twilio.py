"""Twilio at the HTTP boundary: webhook signatures, recording downloads and the Calls API."""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import quote

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
    """Overrides Twilio's REST host (``api.{edge}.{region}.twilio.com``), e.g. for a proxy.
    Recordings may then be downloaded from this host too."""
    allow_local_recordings: bool = False
    """Also download recordings from loopback addresses over plain http: the call
    simulator's recording server. Off in production: a forged or mistaken ``RecordingUrl``
    must not make the service (with the account's credentials) reach its own network."""


API_VERSION = "2010-04-01"


def api_base_url(region: str | None = None, edge: str | None = None) -> str:
    """The REST host for a Twilio region/edge, by the same rule as the Twilio SDK.

    ``api.{edge}.{region}.twilio.com``; an edge without a region means ``us1`` and a region
    without an edge leaves the edge out (``api.ie1.twilio.com``), as the SDK's client does.
    """
    if not region and not edge:
        return "https://api.twilio.com"
    region = region or "us1"
    return "https://" + ".".join(part for part in ("api", edge, region, "twilio.com") if part)


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


TWILIO_HOSTS = ("twilio.com", "twiliocdn.com")
"""Twilio's own domains: recordings are downloaded from them (and redirected within them)
over https only."""


def _is_twilio(url: httpx.URL) -> bool:
    return url.scheme == "https" and any(
        url.host == h or url.host.endswith("." + h) for h in TWILIO_HOSTS
    )


def _is_loopback(url: httpx.URL) -> bool:
    if url.host == "localhost":
        return True
    try:
        return ipaddress.ip_address(url.host).is_loopback
    except ValueError:
        return False


class RecordingFetcher:
    """Downloads a recording as WAV with the account's credentials (HTTP basic auth).

    Only Twilio's own hosts over https are asked (or the configured API host, or loopback
    for the simulator when allowed); anything else is refused before a connection is made.
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
        api_base_url: str | None = None,
        allow_loopback: bool = False,
    ) -> None:
        self._auth = (account_sid, auth_token)
        self._timeout = timeout_s
        self._max_bytes = max_bytes
        self._api = httpx.URL(api_base_url) if api_base_url else None
        self._allow_loopback = allow_loopback

    def allowed(self, url: httpx.URL) -> bool:
        """Whether a recording may be downloaded from ``url`` (before any connection)."""
        if _is_twilio(url):
            return True
        if self._api is not None and (url.scheme, url.host, url.port) == (
            self._api.scheme,
            self._api.host,
            self._api.port,
        ):
            return True
        return self._allow_loopback and url.scheme in ("http", "https") and _is_loopback(url)

    @staticmethod
    def media_url(recording_url: str) -> str:
        # Twilio serves the same recording as .wav or .mp3; WAV keeps the 8 kHz audio lossless.
        return (
            recording_url if recording_url.rsplit("/", 1)[-1].count(".") else recording_url + ".wav"
        )

    def fetch(self, recording_url: str, *, timeout_s: float | None = None) -> FetchedRecording:
        """Download the recording; ``timeout_s`` (default: the configured deadline) bounds
        the whole download, e.g. what is left of an in-call budget."""
        try:
            url = httpx.URL(self.media_url(recording_url))
        except httpx.InvalidURL as exc:
            raise RecordingFetchError("recording URL is not a valid URL") from exc
        if not self.allowed(url):
            raise RecordingFetchError("recording URL is not on Twilio's hosts: refused")
        origin = url.host
        budget = self._timeout if timeout_s is None else min(timeout_s, self._timeout)
        if budget <= 0:
            raise RecordingFetchError("recording download over its deadline")
        deadline = time.monotonic() + budget
        try:
            with httpx.Client(timeout=budget, follow_redirects=False) as client:
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
        if target.host != origin and not _is_twilio(target):
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


# -- the Calls API: what Twilio knows of a call ----------------------------------------------

FINAL_STATUSES = frozenset({"completed", "busy", "failed", "no-answer", "canceled"})


class TwilioApiError(Exception):
    """Twilio's REST API could not answer (network, outage, credentials)."""


@dataclass(frozen=True)
class CallAtTwilio:
    """The fields of Twilio's Call resource that reconciliation needs (no numbers)."""

    sid: str
    status: str
    duration_s: int | None

    @property
    def ended(self) -> bool:
        return self.status in FINAL_STATUSES


class CallsApi:
    """``GET /2010-04-01/Accounts/{AccountSid}/Calls/{CallSid}.json`` with the account's
    credentials: how the worker learns that a call ended when its final status callback was
    lost (the server was down, the network dropped it)."""

    def __init__(
        self, account_sid: str, auth_token: str, *, base_url: str, timeout_s: float = 10.0
    ) -> None:
        self._auth = httpx.BasicAuth(account_sid, auth_token)
        self._calls_url = (
            f"{base_url.rstrip('/')}/{API_VERSION}/Accounts/{quote(account_sid, safe='')}/Calls"
        )
        self._timeout = timeout_s

    def fetch(self, call_sid: str) -> CallAtTwilio | None:
        """The call as Twilio sees it; None when Twilio does not know it (404)."""
        url = f"{self._calls_url}/{quote(call_sid, safe='')}.json"
        try:
            response = httpx.get(
                url,
                auth=self._auth,
                headers={"Accept": "application/json"},
                timeout=self._timeout,
                follow_redirects=False,
            )
        except httpx.HTTPError as exc:
            raise TwilioApiError(f"Calls API request failed: {type(exc).__name__}") from exc
        if response.status_code == 404:
            return None
        if not response.is_success:
            raise TwilioApiError(f"Calls API answered HTTP {response.status_code}")
        try:
            payload = response.json()
            status = str(payload["status"])
        except (ValueError, KeyError, TypeError) as exc:
            raise TwilioApiError("Calls API answered something that is not a Call") from exc
        duration = payload.get("duration")
        return CallAtTwilio(
            sid=str(payload.get("sid") or call_sid),
            status=status,
            duration_s=int(duration)
            if isinstance(duration, str | int) and str(duration).isdigit()
            else None,
        )
