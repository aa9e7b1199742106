"""SmsSender against a local fake of Twilio's Messages API answering with the shapes of
Twilio's real responses, so the request we send and the parsing we do are both exercised."""

from __future__ import annotations

import base64
import json
import logging
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest
from twilio.rest import Client as TwilioClient

from integrations.sms import MAX_BODY_CHARS, SmsError, SmsResult, SmsSender
from integrations.twilio import api_base_url

ACCOUNT_SID = "AC" + "0123456789abcdef" * 2
AUTH_TOKEN = "test-auth-token-0123456789abcdef"
FROM_NUMBER = "+358451234567"
SERVICE_SID = "MG" + "fedcba9876543210" * 2
TO_NUMBER = "+358401234567"
BODY = "Hei! Terveysaseman digipalvelu: https://digi.example.fi/a/xK29 (vastaa puheluunne)"
MESSAGE_SID = "SM" + "a1b2c3d4e5f60718" * 2
MESSAGES_PATH = f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json"


def message_json(
    *, to: str, body: str, from_: str | None, service_sid: str | None, status: str
) -> dict[str, Any]:
    """A created Message as Twilio returns it (201), field for field."""
    uri = f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages/{MESSAGE_SID}"
    return {
        "account_sid": ACCOUNT_SID,
        "api_version": "2010-04-01",
        "body": body,
        "date_created": "Thu, 24 Oct 2024 09:15:02 +0000",
        "date_sent": None,
        "date_updated": "Thu, 24 Oct 2024 09:15:02 +0000",
        "direction": "outbound-api",
        "error_code": None,
        "error_message": None,
        "from": from_,
        "messaging_service_sid": service_sid,
        # Twilio sends counts as strings; via a Messaging Service the sender is not chosen yet.
        "num_media": "0",
        "num_segments": "0" if service_sid else "1",
        "price": None,
        "price_unit": "USD",
        "sid": MESSAGE_SID,
        "status": status,
        "subresource_uris": {"media": f"{uri}/Media.json", "feedback": f"{uri}/Feedback.json"},
        "to": to,
        "uri": f"{uri}.json",
    }


def twilio_error(code: int, message: str, status: int) -> dict[str, Any]:
    """Twilio's REST error body."""
    return {
        "code": code,
        "message": message,
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status,
    }


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    form: dict[str, list[str]]


@dataclass
class FakeTwilio:
    """Records every request; answers with ``reply`` (status, body bytes, content type)."""

    url: str
    requests: list[Recorded] = field(default_factory=list)
    reply: tuple[int, bytes, str] | None = None

    def answer_json(self, status: int, payload: dict[str, Any]) -> None:
        self.reply = (status, json.dumps(payload).encode(), "application/json; charset=utf-8")


@pytest.fixture
def fake_twilio() -> Iterator[FakeTwilio]:
    fake = FakeTwilio(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            raw = self.rfile.read(length).decode()
            fake.requests.append(
                Recorded(
                    method="POST",
                    path=self.path,
                    headers={k.lower(): v for k, v in self.headers.items()},
                    form=parse_qs(raw, keep_blank_values=True),
                )
            )
            if fake.reply is not None:
                status, body, content_type = fake.reply
            else:  # echo a created Message, like Twilio does
                form = {k: v[0] for k, v in parse_qs(raw).items()}
                service = form.get("MessagingServiceSid")
                status, body, content_type = (
                    201,
                    json.dumps(
                        message_json(
                            to=form["To"],
                            body=form["Body"],
                            from_=form.get("From"),
                            service_sid=service,
                            status="accepted" if service else "queued",
                        )
                    ).encode(),
                    "application/json; charset=utf-8",
                )
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Twilio-Request-Id", "RQ" + "0" * 32)
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # keep the number-bearing request lines out of the test output

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    fake.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def make_sender(base_url: str, *, sender: str = FROM_NUMBER, **kwargs: Any) -> SmsSender:
    return SmsSender(ACCOUNT_SID, AUTH_TOKEN, sender=sender, base_url=base_url, **kwargs)


def only_form(fake: FakeTwilio) -> dict[str, str]:
    assert len(fake.requests) == 1
    return {k: v[0] for k, v in fake.requests[0].form.items()}


# --- success ---------------------------------------------------------------------------------


def test_send_from_number(fake_twilio: FakeTwilio) -> None:
    with make_sender(fake_twilio.url) as sender:
        result = sender.send(TO_NUMBER, BODY)
    assert result == SmsResult(sid=MESSAGE_SID, status="queued", to=TO_NUMBER)
    request = fake_twilio.requests[0]
    assert request.method == "POST"
    assert request.path == MESSAGES_PATH
    assert request.headers["content-type"] == "application/x-www-form-urlencoded"
    assert only_form(fake_twilio) == {"To": TO_NUMBER, "Body": BODY, "From": FROM_NUMBER}


def test_send_via_messaging_service(fake_twilio: FakeTwilio) -> None:
    with make_sender(fake_twilio.url, sender=SERVICE_SID) as sender:
        result = sender.send(TO_NUMBER, BODY)
    assert result.status == "accepted"
    assert result.sid == MESSAGE_SID
    assert only_form(fake_twilio) == {
        "To": TO_NUMBER,
        "Body": BODY,
        "MessagingServiceSid": SERVICE_SID,
    }


def test_status_callback_is_sent(fake_twilio: FakeTwilio) -> None:
    callback = "https://esitieto.example.fi/twilio/sms-status?call=42&x=a b"
    with make_sender(fake_twilio.url) as sender:
        sender.send(TO_NUMBER, BODY, status_callback=callback)
    assert only_form(fake_twilio)["StatusCallback"] == callback


def test_basic_auth_header(fake_twilio: FakeTwilio) -> None:
    with make_sender(fake_twilio.url) as sender:
        sender.send(TO_NUMBER, BODY)
    expected = base64.b64encode(f"{ACCOUNT_SID}:{AUTH_TOKEN}".encode()).decode()
    assert fake_twilio.requests[0].headers["authorization"] == f"Basic {expected}"
    assert fake_twilio.requests[0].headers["accept"] == "application/json"


def test_passed_in_client_is_used_and_left_open(fake_twilio: FakeTwilio) -> None:
    client = httpx.Client()
    try:
        sender = make_sender(fake_twilio.url, client=client)
        assert sender.send(TO_NUMBER, BODY).sid == MESSAGE_SID
        sender.close()
        assert not client.is_closed
    finally:
        client.close()


# --- Twilio errors ---------------------------------------------------------------------------


def test_invalid_to_number_is_not_retryable_and_hides_the_number(fake_twilio: FakeTwilio) -> None:
    fake_twilio.answer_json(
        400,
        twilio_error(21211, f"The 'To' number {TO_NUMBER} is not a valid phone number.", 400),
    )
    with make_sender(fake_twilio.url) as sender, pytest.raises(SmsError) as info:
        sender.send(TO_NUMBER, BODY)
    error = info.value
    assert error.retryable is False
    assert error.code == 21211
    assert error.http_status == 400
    assert str(error) == "Twilio refused the message (21211: invalid 'To' number)"
    for text in (str(error), repr(error), *map(str, error.args)):
        assert TO_NUMBER not in text
        assert TO_NUMBER[1:] not in text
        assert BODY not in text


@pytest.mark.parametrize(
    ("code", "message", "described"),
    [
        (21610, "Attempt to send to unsubscribed recipient", "recipient has unsubscribed"),
        (
            21408,
            f"Permission to send an SMS has not been enabled for the region indicated by "
            f"the 'To' number: {TO_NUMBER}.",
            "sending to this region is not enabled",
        ),
    ],
)
def test_refusals_are_not_retryable(
    fake_twilio: FakeTwilio, code: int, message: str, described: str
) -> None:
    fake_twilio.answer_json(400, twilio_error(code, message, 400))
    with make_sender(fake_twilio.url) as sender, pytest.raises(SmsError) as info:
        sender.send(TO_NUMBER, BODY)
    assert info.value.retryable is False
    assert info.value.code == code
    assert str(info.value) == f"Twilio refused the message ({code}: {described})"
    assert TO_NUMBER not in str(info.value)


def test_unknown_code_and_auth_failure(fake_twilio: FakeTwilio) -> None:
    fake_twilio.answer_json(401, twilio_error(20003, "Authenticate", 401))
    with make_sender(fake_twilio.url) as sender, pytest.raises(SmsError) as info:
        sender.send(TO_NUMBER, BODY)
    assert info.value.retryable is False
    assert str(info.value) == "Twilio refused the message (20003: authentication failed, HTTP 401)"

    fake_twilio.answer_json(400, twilio_error(21999, f"Something about {TO_NUMBER}", 400))
    with make_sender(fake_twilio.url) as sender, pytest.raises(SmsError) as info:
        sender.send(TO_NUMBER, BODY)
    assert info.value.code == 21999
    assert str(info.value) == "Twilio refused the message (code 21999)"


def test_rate_limit_is_retryable(fake_twilio: FakeTwilio) -> None:
    fake_twilio.answer_json(429, twilio_error(20429, "Too Many Requests", 429))
    with make_sender(fake_twilio.url) as sender, pytest.raises(SmsError) as info:
        sender.send(TO_NUMBER, BODY)
    assert info.value.retryable is True
    assert info.value.code == 20429
    assert info.value.http_status == 429


def test_service_unavailable_is_retryable(fake_twilio: FakeTwilio) -> None:
    fake_twilio.answer_json(503, twilio_error(20503, "Service Unavailable", 503))
    with make_sender(fake_twilio.url) as sender, pytest.raises(SmsError) as info:
        sender.send(TO_NUMBER, BODY)
    assert info.value.retryable is True
    assert info.value.code == 20503
    assert str(info.value) == "Twilio could not take the message (code 20503, HTTP 503)"


def test_non_json_gateway_error_is_retryable(fake_twilio: FakeTwilio) -> None:
    fake_twilio.reply = (502, b"<html><body>Bad Gateway</body></html>", "text/html")
    with make_sender(fake_twilio.url) as sender, pytest.raises(SmsError) as info:
        sender.send(TO_NUMBER, BODY)
    assert info.value.retryable is True
    assert info.value.code is None
    assert str(info.value) == "Twilio could not take the message (HTTP 502)"


@pytest.mark.parametrize(
    "payload",
    [b'{"sid": "SM', b"", b"[]", b'{"status": "queued"}', b'{"sid": "SMx", "status": null}'],
)
def test_unreadable_created_message_is_an_error(fake_twilio: FakeTwilio, payload: bytes) -> None:
    fake_twilio.reply = (201, payload, "application/json")
    with make_sender(fake_twilio.url) as sender, pytest.raises(SmsError) as info:
        sender.send(TO_NUMBER, BODY)
    # Twilio answered 201, so it probably queued the message: retrying would send it twice.
    assert info.value.retryable is False
    assert info.value.http_status == 201


# --- network failures ------------------------------------------------------------------------


def test_timeout_is_retryable() -> None:
    # A listening socket that never accepts: the connection lands in the backlog, no reply.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        port = silent.getsockname()[1]
        with (
            make_sender(f"http://127.0.0.1:{port}", timeout_s=0.3) as sender,
            pytest.raises(SmsError) as info,
        ):
            sender.send(TO_NUMBER, BODY)
    assert info.value.retryable is True
    assert info.value.http_status is None
    assert "timed out" in str(info.value)


def test_connection_refused_is_retryable() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    # Nothing listens on the port any more.
    with make_sender(f"http://127.0.0.1:{port}") as sender, pytest.raises(SmsError) as info:
        sender.send(TO_NUMBER, BODY)
    assert info.value.retryable is True
    assert info.value.code is None
    assert str(info.value) == "Twilio request failed: ConnectError"


# --- validation before any request -----------------------------------------------------------


@pytest.mark.parametrize(
    "to",
    [
        "0401234567",  # national format
        "358401234567",  # no plus
        "+3584",  # too short
        "+3584012345678901",  # 16 digits
        "+358 40 123 4567",  # spaces
        "+0401234567",  # no country code starts with 0
        "+35840123456\n",  # trailing newline
        "+३५८४०१२३४५६७",  # non-ASCII digits
        "",
    ],
)
def test_invalid_to_raises_before_any_request(fake_twilio: FakeTwilio, to: str) -> None:
    with make_sender(fake_twilio.url) as sender, pytest.raises(ValueError) as info:
        sender.send(to, BODY)
    assert fake_twilio.requests == []
    assert "E.164" in str(info.value)
    if to.strip():
        assert to.strip() not in str(info.value)


def test_body_limits_raise_before_any_request(fake_twilio: FakeTwilio) -> None:
    with make_sender(fake_twilio.url) as sender:
        with pytest.raises(ValueError, match="1601 characters"):
            sender.send(TO_NUMBER, "a" * (MAX_BODY_CHARS + 1))
        with pytest.raises(ValueError, match="empty"):
            sender.send(TO_NUMBER, "  ")
        assert fake_twilio.requests == []
        sender.send(TO_NUMBER, "ä" * MAX_BODY_CHARS)  # exactly the limit goes through
    assert only_form(fake_twilio)["Body"] == "ä" * MAX_BODY_CHARS


@pytest.mark.parametrize("sender", ["", "358451234567", "MG123", "Terveysasema1", "+358-45"])
def test_invalid_sender_is_refused_at_construction(sender: str) -> None:
    with pytest.raises(ValueError, match="sender"):
        SmsSender(ACCOUNT_SID, AUTH_TOKEN, sender=sender, base_url="http://127.0.0.1:9")


def test_alphanumeric_sender_goes_in_from(fake_twilio: FakeTwilio) -> None:
    with make_sender(fake_twilio.url, sender="TERVEYS") as sender:
        sender.send(TO_NUMBER, BODY)
    assert only_form(fake_twilio)["From"] == "TERVEYS"


# --- hosts -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("region", "edge", "expected"),
    [
        (None, None, "https://api.twilio.com"),
        ("ie1", "dublin", "https://api.dublin.ie1.twilio.com"),
        ("au1", "sydney", "https://api.sydney.au1.twilio.com"),
        ("ie1", None, "https://api.ie1.twilio.com"),
        (None, "dublin", "https://api.dublin.us1.twilio.com"),
    ],
)
def test_api_host_follows_region_and_edge(
    region: str | None, edge: str | None, expected: str
) -> None:
    assert api_base_url(region, edge) == expected
    # Same rule as the Twilio SDK the rest of the project uses.
    sdk = TwilioClient(ACCOUNT_SID, AUTH_TOKEN, region=region, edge=edge)
    assert sdk.get_hostname("https://api.twilio.com") == expected
    sender = SmsSender(ACCOUNT_SID, AUTH_TOKEN, sender=FROM_NUMBER, region=region, edge=edge)
    try:
        assert sender.messages_url == f"{expected}{MESSAGES_PATH}"
    finally:
        sender.close()


def test_base_url_overrides_region_and_edge() -> None:
    sender = SmsSender(
        ACCOUNT_SID,
        AUTH_TOKEN,
        sender=FROM_NUMBER,
        region="ie1",
        edge="dublin",
        base_url="http://127.0.0.1:8080/",
    )
    try:
        assert sender.messages_url == f"http://127.0.0.1:8080{MESSAGES_PATH}"
    finally:
        sender.close()


# --- logs ------------------------------------------------------------------------------------


def test_logs_carry_no_number_or_body(
    fake_twilio: FakeTwilio, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    with make_sender(fake_twilio.url) as sender:
        sender.send(TO_NUMBER, BODY, status_callback="https://esitieto.example.fi/sms")
        fake_twilio.answer_json(
            400,
            twilio_error(21211, f"The 'To' number {TO_NUMBER} is not a valid phone number.", 400),
        )
        with pytest.raises(SmsError):
            sender.send(TO_NUMBER, BODY)
    assert f"sid={MESSAGE_SID} status=queued" in caplog.text
    assert "21211" in caplog.text
    for secret in (TO_NUMBER, TO_NUMBER[1:], "401234567", BODY, "digi.example.fi", AUTH_TOKEN):
        assert secret not in caplog.text
