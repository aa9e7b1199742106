"""Recording downloads: only audio, under a size cap, and credentials only to the host asked."""

from __future__ import annotations

import http.server
import threading
import time
from collections.abc import Iterator
from typing import Any, ClassVar

import httpx
import pytest

from integrations.twilio import RecordingFetcher, RecordingFetchError

AUDIO = b"RIFF" + b"\0" * 4996
SLOW_S = 20.0


class _Handler(http.server.BaseHTTPRequestHandler):
    seen: ClassVar[list[tuple[str, str | None]]] = []  # (path, Authorization) of each request

    def do_GET(self) -> None:
        _Handler.seen.append((self.path, self.headers.get("Authorization")))
        port = self.server.server_address[1]  # type: ignore[index]
        routes = {
            "/ok.wav": (200, "audio/x-wav", AUDIO, None),
            "/page.wav": (200, "text/html", b"<html>not audio</html>", None),
            "/same.wav": (302, "text/plain", b"", "/ok.wav"),
            "/away.wav": (302, "text/plain", b"", f"http://localhost:{port}/spy.wav"),
        }
        if self.path == "/slow.wav":
            time.sleep(SLOW_S)
        if self.path == "/endless.wav":  # no length: counted as it arrives
            self.send_response(200)
            self.send_header("Content-Type", "audio/x-wav")
            self.end_headers()
            for _ in range(50):
                self.wfile.write(b"\0" * 1000)
            return
        status, ctype, body, location = routes.get(self.path, (404, "text/plain", b"", None))
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        if location:
            self.send_header("Location", location)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def host() -> Iterator[str]:
    _Handler.seen = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def fetcher(max_bytes: int = 25_000_000, **kwargs: Any) -> RecordingFetcher:
    kwargs.setdefault("allow_loopback", True)  # the local host stands in for Twilio's
    return RecordingFetcher("AC" + "0" * 32, "token", timeout_s=10, max_bytes=max_bytes, **kwargs)


@pytest.mark.parametrize(
    "url",
    [
        "http://api.twilio.com/2010-04-01/Accounts/AC0/Recordings/RE1",  # not https
        "https://api.twilio.com.evil.example/Recordings/RE1",
        "https://evil.example/twilio.com/Recordings/RE1",
        "http://127.0.0.1:5432/",  # the local database, as the probe reached it
        "http://169.254.169.254/latest/meta-data/",
        "file:///etc/passwd",
    ],
)
def test_a_recording_url_off_twilios_hosts_is_refused_before_any_connection(url: str) -> None:
    with pytest.raises(RecordingFetchError, match="not on Twilio's hosts"):
        fetcher(allow_loopback=False).fetch(url)


def test_loopback_is_refused_unless_allowed_and_then_reached(host: str) -> None:
    with pytest.raises(RecordingFetchError, match="not on Twilio's hosts"):
        fetcher(allow_loopback=False).fetch(f"{host}/ok.wav")
    assert _Handler.seen == []  # no request was made
    assert fetcher(allow_loopback=False, api_base_url=host).fetch(f"{host}/ok.wav").data == AUDIO


def test_twilios_hosts_are_allowed_over_https_only() -> None:
    f = fetcher(allow_loopback=False)
    assert f.allowed(httpx.URL("https://api.twilio.com/2010-04-01/Accounts/AC0/Recordings/RE1"))
    assert f.allowed(httpx.URL("https://api.dublin.ie1.twilio.com/x"))
    assert not f.allowed(httpx.URL("http://api.twilio.com/x"))
    assert not f.allowed(httpx.URL("https://twilio.com.example/x"))


def test_a_slow_host_is_given_up_at_the_callers_deadline(host: str) -> None:
    """The in-call budget includes the download: a host that answers in 30 s does not hold
    the caller for 30 s."""
    started = time.monotonic()
    with pytest.raises(RecordingFetchError):
        fetcher().fetch(f"{host}/slow.wav", timeout_s=0.5)
    assert time.monotonic() - started < SLOW_S / 2
    with pytest.raises(RecordingFetchError, match="deadline"):
        fetcher().fetch(f"{host}/ok.wav", timeout_s=0.0)


def test_audio_is_fetched_with_the_credentials_and_a_same_host_redirect_kept(host: str) -> None:
    got = fetcher().fetch(f"{host}/same.wav")
    assert got.data == AUDIO and got.content_type == "audio/x-wav"
    assert [p for p, _ in _Handler.seen] == ["/same.wav", "/ok.wav"]
    assert all(auth and auth.startswith("Basic ") for _, auth in _Handler.seen)


def test_a_redirect_to_another_host_is_refused_and_gets_no_credentials(host: str) -> None:
    with pytest.raises(RecordingFetchError, match="another host"):
        fetcher().fetch(f"{host}/away.wav")
    assert [p for p, _ in _Handler.seen] == ["/away.wav"]  # the other host was never asked


def test_what_is_not_audio_is_refused(host: str) -> None:
    with pytest.raises(RecordingFetchError, match="not audio"):
        fetcher().fetch(f"{host}/page.wav")


def test_a_recording_over_the_cap_is_refused_declared_or_streamed(host: str) -> None:
    with pytest.raises(RecordingFetchError, match="over 1000 bytes"):
        fetcher(max_bytes=1000).fetch(f"{host}/ok.wav")
    with pytest.raises(RecordingFetchError, match="over 20000 bytes"):
        fetcher(max_bytes=20000).fetch(f"{host}/endless.wav")
