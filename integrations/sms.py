"""Twilio Messaging at the HTTP boundary: the after-call SMS with a link to a digital service.

Phone numbers and message bodies are health data: they go to Twilio and nowhere else. Errors
and logs carry only HTTP statuses, Twilio error codes, message SIDs and statuses.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from types import TracebackType
from typing import Any
from urllib.parse import quote

import httpx

from integrations.twilio import API_VERSION, api_base_url

log = logging.getLogger(__name__)

MAX_BODY_CHARS = 1600
"""Twilio rejects longer bodies (error 21617); checking first saves a doomed request."""

_E164 = re.compile(r"\+[1-9][0-9]{7,14}")
_SERVICE_SID = re.compile(r"MG[0-9a-fA-F]{32}")
_ALPHANUMERIC_SENDER = re.compile(r"(?=.*[A-Za-z])[A-Za-z0-9 ]{1,11}")

# Our own wording for the codes we expect: Twilio's "message" field quotes the number.
_KNOWN_CODES: dict[int, str] = {
    20003: "authentication failed",
    20429: "too many requests",
    21211: "invalid 'To' number",
    21408: "sending to this region is not enabled",
    21602: "message body is required",
    21606: "'From' number cannot send to this recipient",
    21610: "recipient has unsubscribed",
    21612: "'To' number cannot be reached from this sender",
    21614: "'To' number is not a mobile number",
    21617: "message body is too long",
}


@dataclass(frozen=True)
class SmsResult:
    sid: str
    """``SM…``: the handle for status callbacks and support requests."""
    status: str
    """Twilio's status at creation: ``queued`` (From) or ``accepted`` (Messaging Service)."""
    to: str


class SmsError(Exception):
    """Twilio did not take the message.

    ``retryable`` tells the caller's durable job whether trying again can help: rate limits,
    Twilio outages and network failures can; a refused number or sender cannot. A timeout
    after the request was sent is retryable although Twilio may already have queued the
    message: a rare duplicate link SMS is preferred over a lost one.
    """

    def __init__(
        self,
        message: str,
        *,
        retryable: bool,
        code: int | None = None,
        http_status: int | None = None,
    ) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.code = code
        """Twilio's error code (e.g. 21211) when the response carried one."""
        self.http_status = http_status
        """None when no HTTP response arrived (timeout, connection failure)."""


def _check_to(to: str) -> None:
    if not isinstance(to, str) or not _E164.fullmatch(to):
        raise ValueError("recipient must be an E.164 number: '+' and 8-15 digits")


def _check_body(body: str) -> None:
    if not isinstance(body, str) or not body.strip():
        raise ValueError("message body is empty")
    if len(body) > MAX_BODY_CHARS:
        raise ValueError(f"message body is {len(body)} characters; Twilio allows {MAX_BODY_CHARS}")


def _error_code(response: httpx.Response) -> int | None:
    try:
        payload = response.json()
    except ValueError:
        return None
    code = payload.get("code") if isinstance(payload, dict) else None
    if isinstance(code, bool):
        return None
    if isinstance(code, int):
        return code
    if isinstance(code, str) and code.isascii() and code.isdigit():
        return int(code)
    return None


def _refusal(response: httpx.Response) -> SmsError:
    status = response.status_code
    code = _error_code(response)
    if code is not None:
        detail = f"{code}: {_KNOWN_CODES[code]}" if code in _KNOWN_CODES else f"code {code}"
        detail += "" if status == 400 else f", HTTP {status}"
    else:
        detail = f"HTTP {status}"
    if status == 429:
        text, retryable = "Twilio rate-limited the message", True
    elif status >= 500:
        text, retryable = "Twilio could not take the message", True
    else:
        text, retryable = "Twilio refused the message", False
    return SmsError(f"{text} ({detail})", retryable=retryable, code=code, http_status=status)


def _result(response: httpx.Response, to: str) -> SmsResult:
    """The created Message; a 2xx we cannot read is an error, not retryable: Twilio took it."""
    try:
        payload: Any = response.json()
    except ValueError:
        payload = None
    sid = payload.get("sid") if isinstance(payload, dict) else None
    status = payload.get("status") if isinstance(payload, dict) else None
    if not isinstance(sid, str) or not sid or not isinstance(status, str) or not status:
        raise SmsError(
            f"Twilio answered HTTP {response.status_code} without a readable Message",
            retryable=False,
            http_status=response.status_code,
        )
    answered_to = payload.get("to")
    return SmsResult(sid=sid, status=status, to=answered_to if isinstance(answered_to, str) else to)


class SmsSender:
    """Creates Twilio Message resources over the REST API (one POST per SMS, no retries).

    Retrying belongs to the caller's durable job, which knows whether the call still warrants
    a message; ``SmsError.retryable`` tells it whether to.
    """

    def __init__(
        self,
        account_sid: str,
        auth_token: str,
        *,
        sender: str,
        region: str | None = None,
        edge: str | None = None,
        timeout_s: float = 10.0,
        base_url: str | None = None,
        client: httpx.Client | None = None,
    ) -> None:
        if not account_sid or not auth_token:
            raise ValueError("Twilio account SID and auth token are required")
        sender = sender.strip()
        if _SERVICE_SID.fullmatch(sender):
            # A Messaging Service picks the sender (number pool, alphanumeric ID) itself.
            self._sender_field = ("MessagingServiceSid", sender)
        elif _E164.fullmatch(sender) or (
            # A mistyped service SID must not go out as an alphanumeric sender ID.
            _ALPHANUMERIC_SENDER.fullmatch(sender) and not sender.startswith("MG")
        ):
            self._sender_field = ("From", sender)
        else:
            raise ValueError(
                "sender must be an E.164 number, an alphanumeric sender ID (up to 11 "
                "characters) or a Messaging Service SID (MG…)"
            )
        self._auth = httpx.BasicAuth(account_sid, auth_token)
        self._timeout = timeout_s
        base = (base_url or api_base_url(region, edge)).rstrip("/")
        self.messages_url = (
            f"{base}/{API_VERSION}/Accounts/{quote(account_sid, safe='')}/Messages.json"
        )
        self._owns_client = client is None
        self._client = client if client is not None else httpx.Client()

    def send(self, to: str, body: str, *, status_callback: str | None = None) -> SmsResult:
        """Queue one SMS; raises ``ValueError`` before any request for a bad number or body."""
        _check_to(to)
        _check_body(body)
        form = {"To": to, "Body": body, self._sender_field[0]: self._sender_field[1]}
        if status_callback:
            form["StatusCallback"] = status_callback
        try:
            response = self._client.post(
                self.messages_url,
                data=form,
                auth=self._auth,
                headers={"Accept": "application/json"},
                timeout=self._timeout,
                follow_redirects=False,
            )
        except httpx.TimeoutException as exc:
            log.warning("SMS request to Twilio timed out: %s", type(exc).__name__)
            raise SmsError(
                f"Twilio request timed out: {type(exc).__name__}", retryable=True
            ) from exc
        except httpx.TransportError as exc:
            log.warning("SMS request to Twilio failed: %s", type(exc).__name__)
            raise SmsError(f"Twilio request failed: {type(exc).__name__}", retryable=True) from exc
        if not response.is_success:
            error = _refusal(response)
            log.warning(
                "SMS not accepted: HTTP %s, Twilio code %s, retryable=%s",
                response.status_code,
                error.code,
                error.retryable,
            )
            raise error
        result = _result(response, to)
        log.info("SMS created: sid=%s status=%s", result.sid, result.status)
        return result

    def close(self) -> None:
        """Close the HTTP client if this sender created it; a passed-in client is the caller's."""
        if self._owns_client:
            self._client.close()

    def __enter__(self) -> SmsSender:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
