"""Schemathesis hooks for fuzzing a running ``esitieto serve`` (``scripts/schemathesis.sh``).

Every ``/twilio/*`` request is signed as Twilio signs it, so the fuzzer reaches the webhooks'
code and not only their 403; every other route gets the API's bearer token and a station
lead's session (``/api/v1/stats`` is for signed-in staff only). The signature is computed
over the request exactly as it goes on the wire (its URL, and its form as the app parses it),
after schemathesis has serialised it, so odd bodies are signed too.

Read from the environment, as the server reads them: ``ESITIETO_TWILIO__AUTH_TOKEN``,
``ESITIETO_WEB__API_TOKEN``, ``ESITIETO_DEMO__NURSE_PASSWORD`` (every demo account's
password) and ``ESITIETO_DEMO__PHONE_NUMBER`` (the demo station's number, if not the default).

``python -m tests.esitieto.schemathesis_hooks URL`` prints the app's ``/openapi.json``
(staff only), fetched with a station lead's sign-in.
"""

from __future__ import annotations

import asyncio
import os
import re
import sys
import threading
import zlib
from typing import Any
from urllib.parse import urlsplit

import requests
import schemathesis
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.types import Message

from integrations.twilio import sign
from voicebot.dialogue import State
from voicebot.service import CALL_SID, FINAL_CALL_STATUSES

SESSION_COOKIE = "esitieto_session"
DEMO_NUMBER = "+358900000000"
DEMO_LEAD = "osastonhoitaja"


def _env(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        raise RuntimeError(f"{name} must be set for the schemathesis hooks")
    return value


async def _form_as_the_app_reads_it(headers: list[tuple[bytes, bytes]], body: bytes) -> FormData:
    scope = {"type": "http", "method": "POST", "path": "/", "query_string": b"", "headers": headers}
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return await Request(scope, receive).form()


def signed_params(request: requests.PreparedRequest) -> dict[str, str]:
    """The form fields the webhook checks the signature over, parsed by Starlette as the app
    parses them (``voicebot.endpoints.verified_form``); none when the app cannot read any."""
    body: Any = request.body
    raw = body.encode() if isinstance(body, str) else body if isinstance(body, bytes) else b""
    headers = [
        (k.lower().encode("latin-1"), v if isinstance(v, bytes) else v.encode("latin-1"))
        for k, v in request.headers.items()
    ]
    try:
        form = asyncio.run(_form_as_the_app_reads_it(headers, raw))
    except Exception:
        return {}  # the app answers 400 before it looks at the signature
    return {k: v for k, v in form.items() if isinstance(v, str)}


class TwilioSignature(requests.auth.AuthBase):
    """``X-Twilio-Signature`` over the request as sent (requests applies auth last)."""

    def __init__(self, auth_token: str) -> None:
        self.auth_token = auth_token

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        url = str(request.url)
        request.headers["X-Twilio-Signature"] = sign(self.auth_token, url, signed_params(request))
        return request


class StaffCredentials(requests.auth.AuthBase):
    """The API token and a signed-in station lead's session cookie."""

    def __init__(self, api_token: str, password: str) -> None:
        self.api_token = api_token
        self.password = password
        self._cookie: str | None = None
        self._lock = threading.Lock()

    def cookie(self, base_url: str) -> str:
        with self._lock:
            if self._cookie is None:
                self._cookie = sign_in(base_url, DEMO_LEAD, self.password)
            return self._cookie

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        parts = urlsplit(str(request.url))
        cookie = self.cookie(f"{parts.scheme}://{parts.netloc}")
        request.headers["Authorization"] = f"Bearer {self.api_token}"
        request.headers["Cookie"] = f"{SESSION_COOKIE}={cookie}"
        return request


def sign_in(base_url: str, username: str, password: str) -> str:
    """A staff session cookie, got through the sign-in page as a browser gets it."""
    with requests.Session() as session:
        page = session.get(f"{base_url}/login", timeout=30)
        match = re.search(r'name="csrf" value="([^"]+)"', page.text)
        if match is None:
            raise RuntimeError("the sign-in page has no CSRF token")
        answer = session.post(
            f"{base_url}/login",
            data={"username": username, "password": password, "csrf": match.group(1)},
            allow_redirects=False,
            timeout=30,
        )
        cookie = answer.cookies.get(SESSION_COOKIE)
        if answer.status_code != 303 or cookie is None:
            raise RuntimeError(f"signing in as {username} failed: HTTP {answer.status_code}")
        return str(cookie)


def _crc(value: object) -> int:
    return zlib.crc32(repr(value).encode())


STATES = frozenset(state.value for state in State)
ASKED = re.compile(r'action="/twilio/gather\?state=([a-z_]+)"')


class Calls:
    """A few calls that the webhook requests keep coming back to, each asked the question it
    is at, so that the fuzzer's keys and recordings reach the dialogue beyond its first
    question (random call ids would each be a new call, and a random question a late one).

    A generated request with a well-formed ``CallSid`` is moved to one of ``size`` calls
    and, three times in four, to the demo station (chosen by a checksum of the generated
    request, so that a seed gives the same run); a ``/gather`` at a valid question is moved
    to the question that call's last answer asked. A call that has ended makes way for a new
    one in its place."""

    def __init__(self, size: int, station_number: str) -> None:
        self.size = size
        self.station_number = station_number
        self.generation = [0] * size
        self.asked: dict[str, str] = {}
        self._lock = threading.Lock()

    def _sid(self, slot: int) -> str:
        return f"CA{slot:08x}{self.generation[slot]:024x}"

    def steer(self, case: schemathesis.Case) -> None:
        body, query = case.body, case.query
        if not isinstance(body, dict):
            return
        choice = _crc(body)
        generated = body.get("CallSid")
        if isinstance(generated, str) and CALL_SID.fullmatch(generated):
            with self._lock:
                sid = body["CallSid"] = self._sid(_crc(generated) % self.size)
                asked = self.asked.get(sid)
            gather = case.path == "/twilio/gather" and isinstance(query, dict)
            if gather and asked and query.get("state") in STATES:
                query["state"] = asked
        if "To" in body and choice % 4 != 0:
            body["To"] = self.station_number

    def heard(self, case: schemathesis.Case, twiml: str) -> None:
        body = case.body
        sid = body.get("CallSid") if isinstance(body, dict) else None
        if not isinstance(sid, str) or not CALL_SID.fullmatch(sid):
            return
        status = body.get("CallStatus") if isinstance(body, dict) else None
        ended = "<Hangup" in twiml or (
            case.path == "/twilio/status" and status in FINAL_CALL_STATUSES
        )
        with self._lock:
            slot = int(sid[2:10], 16) % self.size
            if ended and sid == self._sid(slot):
                self.generation[slot] += 1
            if ended:
                self.asked.pop(sid, None)
            elif match := ASKED.search(twiml):
                self.asked[sid] = match.group(1)


_twilio: TwilioSignature | None = None
_staff: StaffCredentials | None = None
_calls = Calls(8, os.environ.get("ESITIETO_DEMO__PHONE_NUMBER", DEMO_NUMBER))


def _credentials() -> tuple[TwilioSignature, StaffCredentials]:
    global _twilio, _staff
    if _twilio is None or _staff is None:
        _twilio = TwilioSignature(_env("ESITIETO_TWILIO__AUTH_TOKEN"))
        _staff = StaffCredentials(
            _env("ESITIETO_WEB__API_TOKEN"), _env("ESITIETO_DEMO__NURSE_PASSWORD")
        )
    return _twilio, _staff


@schemathesis.hook
def before_call(context: schemathesis.HookContext, case: schemathesis.Case, kwargs: dict) -> None:
    twilio, staff = _credentials()
    if case.path.startswith("/twilio/"):
        _calls.steer(case)
        kwargs["auth"] = twilio
    else:
        kwargs["auth"] = staff


@schemathesis.hook
def after_call(context: schemathesis.HookContext, case: schemathesis.Case, response: Any) -> None:
    if case.path.startswith("/twilio/") and response.status_code == 200:
        _calls.heard(case, response.content.decode("utf-8", "replace"))


if __name__ == "__main__":
    base = sys.argv[1].rstrip("/")
    cookie = sign_in(base, DEMO_LEAD, _env("ESITIETO_DEMO__NURSE_PASSWORD"))
    schema = requests.get(f"{base}/openapi.json", cookies={SESSION_COOKIE: cookie}, timeout=30)
    schema.raise_for_status()
    sys.stdout.write(schema.text)
