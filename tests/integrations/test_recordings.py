"""Recording downloads: only audio, under a size cap, and credentials only to the host asked."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from typing import ClassVar

import pytest

from integrations.twilio import RecordingFetcher, RecordingFetchError

AUDIO = b"RIFF" + b"\0" * 4996


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


def fetcher(max_bytes: int = 25_000_000) -> RecordingFetcher:
    return RecordingFetcher("AC" + "0" * 32, "token", timeout_s=10, max_bytes=max_bytes)


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
