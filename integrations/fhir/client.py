"""Posting a case's Bundle to the county's FHIR server, signed in with OAuth2 client
credentials (RFC 6749 §4.4). Idempotent: every entry is a conditional create, so a retry
after a lost answer creates nothing twice."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

import httpx
from pydantic import BaseModel, SecretStr

FHIR_JSON = "application/fhir+json"


class FhirSettings(BaseModel):
    base_url: str | None = None
    """The FHIR server's base (``https://fhir.example.fi/r4``); None: no export."""
    token_url: str | None = None
    """OAuth2 token endpoint; None: the server needs no sign-in (a test server)."""
    client_id: str | None = None
    client_secret: SecretStr | None = None
    scope: str | None = None
    identifier_system: str = "urn:esitieto:case"
    """The identifier system of what a case creates (the county's own URI or OID)."""
    timeout_s: float = 20.0


class FhirError(Exception):
    """The export failed; ``retryable`` when trying again later may help."""

    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable


@dataclass(frozen=True)
class Delivered:
    created: int
    """Entries the server created now (0 when the case was already there)."""
    existing: int


class FhirClient:
    def __init__(self, settings: FhirSettings, *, transport: httpx.BaseTransport | None = None):
        if not settings.base_url:
            raise ValueError("the FHIR export needs ESITIETO_FHIR__BASE_URL")
        self.settings = settings
        self._transport = transport
        self._client: httpx.Client | None = None
        self._token: tuple[str, float] | None = None
        self._lock = threading.RLock()

    @property
    def _http(self) -> httpx.Client:
        """The connection pool, opened again after :meth:`close` (an app's shutdown)."""
        with self._lock:
            if self._client is None or self._client.is_closed:
                self._client = httpx.Client(
                    timeout=self.settings.timeout_s, transport=self._transport
                )
            return self._client

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                self._client.close()

    def post_bundle(self, bundle: dict[str, Any]) -> Delivered:
        """Post one transaction Bundle; a 401 fetches a new token once."""
        for attempt in (1, 2):
            headers = {"Content-Type": FHIR_JSON, "Accept": FHIR_JSON}
            token = self._access_token(renew=attempt == 2)
            if token:
                headers["Authorization"] = f"Bearer {token}"
            try:
                response = self._http.post(
                    self.settings.base_url.rstrip("/"),  # type: ignore[union-attr]
                    json=bundle,
                    headers=headers,
                )
            except httpx.HTTPError as exc:
                raise FhirError(
                    f"FHIR server unreachable: {type(exc).__name__}", retryable=True
                ) from exc
            if response.status_code == 401 and attempt == 1 and self.settings.token_url:
                continue
            return _delivered(response)
        raise FhirError("FHIR server refused the token", retryable=True)  # pragma: no cover

    def _access_token(self, *, renew: bool) -> str | None:
        s = self.settings
        if not s.token_url:
            return None
        with self._lock:
            if self._token and not renew and self._token[1] > time.monotonic() + 30:
                return self._token[0]
            data = {"grant_type": "client_credentials"}
            if s.scope:
                data["scope"] = s.scope
            secret = s.client_secret.get_secret_value() if s.client_secret else ""
            try:
                response = self._http.post(s.token_url, data=data, auth=(s.client_id or "", secret))
            except httpx.HTTPError as exc:
                raise FhirError(
                    f"token endpoint unreachable: {type(exc).__name__}", retryable=True
                ) from exc
            if response.status_code != 200:
                raise FhirError(
                    f"token endpoint answered {response.status_code}",
                    retryable=response.status_code >= 500,
                )
            try:
                body = response.json()
                token = str(body["access_token"])
                expires = float(body.get("expires_in", 300))
            except (ValueError, KeyError, TypeError) as exc:
                raise FhirError("token endpoint answered without a token", retryable=False) from exc
            self._token = (token, time.monotonic() + expires)
            return token


def _delivered(response: httpx.Response) -> Delivered:
    if response.status_code >= 500 or response.status_code == 429:
        raise FhirError(f"FHIR server answered {response.status_code}", retryable=True)
    if response.status_code >= 400:
        raise FhirError(
            f"FHIR server refused the bundle ({response.status_code}): {_diagnostics(response)}",
            retryable=False,
        )
    try:
        entries = response.json().get("entry") or []
    except ValueError as exc:
        raise FhirError(
            "FHIR server answered with something that is not JSON", retryable=True
        ) from exc
    statuses = [str((e.get("response") or {}).get("status", "")) for e in entries]
    created = sum(s.startswith("201") for s in statuses)
    return Delivered(created=created, existing=len(statuses) - created)


def _diagnostics(response: httpx.Response) -> str:
    """What kind of problem the OperationOutcome reports (its issue codes and where), never its
    free-text diagnostics: a server may quote the resource's values, and this text goes on the
    case and in the log."""
    try:
        issues = response.json().get("issue") or []
        parts = [
            f"{i.get('code', '?')}"
            + (f" at {','.join(i['expression'])}" if i.get("expression") else "")
            for i in issues[:3]
            if isinstance(i, dict)
        ]
    except (ValueError, AttributeError, TypeError):
        return "no OperationOutcome"
    return "; ".join(parts)[:200] or "no issue given"
