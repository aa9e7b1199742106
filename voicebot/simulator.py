"""A whole phone call without a phone: plays Twilio's part against the real webhooks.

Requests are signed with the account's auth token exactly as Twilio signs them, the caller's
answers are served as recordings over local HTTP (with basic auth, as Twilio serves them),
and the TwiML that comes back is followed verb by verb. When the call ends, the simulator
sends the final status callback, waits for the pipeline, and returns the stored case.
"""

from __future__ import annotations

import base64
import hmac
import http.server
import mimetypes
import socket
import threading
import time
import uuid
import wave
import xml.etree.ElementTree as ET
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import httpx
from defusedxml import ElementTree as safe_xml
from sqlalchemy import select

from esitieto.runtime import Runtime
from esitieto.settings import Settings
from integrations.twilio import sign
from models import Call, CallState, Station, Summary, TriageDecision

TWILIO_API_VERSION = "2010-04-01"


class SimulationError(Exception):
    """The simulation could not run or the case did not appear; the message says why."""


class RecordingServer:
    """Serves the caller's audio files the way Twilio serves recordings."""

    def __init__(self, account_sid: str, auth_token: str) -> None:
        self.account_sid = account_sid
        self._expected = "Basic " + base64.b64encode(f"{account_sid}:{auth_token}".encode()).decode(
            "ascii"
        )
        self._files: dict[str, Path] = {}
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                auth = self.headers.get("Authorization") or ""
                if not hmac.compare_digest(auth, server._expected):
                    self.send_response(401)
                    self.send_header("WWW-Authenticate", 'Basic realm="Twilio API"')
                    self.end_headers()
                    return
                name = self.path.rstrip("/").rsplit("/", 1)[-1]
                sid = name.split(".", 1)[0]
                path = server._files.get(sid)
                if path is None or not path.is_file():
                    self.send_response(404)
                    self.end_headers()
                    return
                data = path.read_bytes()
                ctype = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
                self.send_response(200)
                self.send_header("Content-Type", "audio/x-wav" if ctype == "audio/x-wav" else ctype)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                return

        self._httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    def add(self, recording_sid: str, path: Path) -> str:
        self._files[recording_sid] = path
        return (
            f"{self.base}/{TWILIO_API_VERSION}/Accounts/{self.account_sid}"
            f"/Recordings/{recording_sid}"
        )

    def __enter__(self) -> RecordingServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


def _sid(prefix: str) -> str:
    return prefix + uuid.uuid4().hex


def _audio_seconds(path: Path) -> int:
    try:
        with wave.open(str(path), "rb") as w:
            return max(1, round(w.getnframes() / float(w.getframerate())))
    except (wave.Error, EOFError, OSError):
        return 1  # not a PCM WAV (μ-law, MP3): the exact duration does not matter here


@dataclass
class CallDriver:
    """Follows TwiML as Twilio would, posting signed webhooks."""

    base_url: str
    auth_token: str
    media: RecordingServer
    call_params: dict[str, str]
    audio: deque[Path]
    digits: deque[str]
    hangup_after: int | None = None
    heard: list[str] = field(default_factory=list)
    events: list[str] = field(default_factory=list)
    outcome: str = "completed"
    requests: int = 0
    timings: list[tuple[str, float]] = field(default_factory=list)
    pause: Callable[[], None] | None = None
    """Called before each webhook after the first: the caller listening (bench pacing)."""
    """(webhook path, seconds) for every request, for ``esitieto bench voicebot``."""
    client: httpx.Client = field(default_factory=lambda: httpx.Client(timeout=60.0))

    def post(self, url: str, extra: dict[str, str] | None = None) -> str:
        if self.hung_up():
            raise _CallerHungUp
        url = urljoin(self.base_url + "/", url)
        params = {**self.call_params, **(extra or {})}
        headers = {"X-Twilio-Signature": sign(self.auth_token, url, params)}
        if self.pause is not None and self.requests:
            self.pause()
        self.requests += 1
        started = time.perf_counter()
        response = self.client.post(url, data=params, headers=headers)
        self.timings.append((httpx.URL(url).path, time.perf_counter() - started))
        if response.status_code != 200:
            raise SimulationError(f"webhook {url} answered HTTP {response.status_code}")
        return response.text

    def hung_up(self) -> bool:
        return self.hangup_after is not None and self.requests >= self.hangup_after

    def run(self, url: str) -> None:
        """Start at ``url`` and follow documents until the call ends."""
        next_url: str | None = url
        extra: dict[str, str] | None = None
        try:
            while next_url is not None:
                doc_url = urljoin(self.base_url + "/", next_url)
                body = self.post(doc_url, extra)
                next_url, extra = self._follow(body, doc_url)
        except _CallerHungUp:
            self.outcome = "caller_hung_up"

    def _follow(self, body: str, doc_url: str) -> tuple[str | None, dict[str, str] | None]:
        try:
            root = safe_xml.fromstring(body)
        except ET.ParseError as exc:
            raise SimulationError(f"the app answered with invalid TwiML: {exc}") from exc
        if root.tag != "Response":
            raise SimulationError("the app's TwiML has no <Response>")
        for verb in root:
            tag = verb.tag
            self.events.append(tag)
            if tag == "Say":
                self.heard.append("".join(verb.itertext()).strip())
            elif tag in ("Play", "Pause"):
                continue
            elif tag == "Gather":
                for inner in verb:
                    if inner.tag == "Say":
                        self.heard.append("".join(inner.itertext()).strip())
                action = verb.get("action") or doc_url
                if self.digits:
                    return action, {"Digits": self.digits.popleft()}
                if verb.get("actionOnEmptyResult") == "true":
                    return action, {"Digits": ""}
            elif tag == "Record":
                result = self._record(verb, doc_url)
                if result is not None:
                    return result
            elif tag == "Redirect":
                return (verb.text or "").strip() or doc_url, None
            elif tag in ("Dial", "Enqueue"):
                self.outcome = "nurse_queue"
                self.heard.append(f"[{tag}: {(verb.text or '').strip()}]")
                return None, None
            elif tag in ("Hangup", "Reject"):
                self.outcome = "hangup"
                return None, None
        return None, None

    def _record(
        self, verb: ET.Element, doc_url: str
    ) -> tuple[str | None, dict[str, str] | None] | None:
        """Answer a ``<Record>``; None when the caller stays silent (go on to the next verb)."""
        status_cb = verb.get("recordingStatusCallback")
        sid = _sid("RE")
        if not self.audio:
            # Silence: Twilio reports the recording absent and goes on to the next verb.
            if status_cb and "absent" in (verb.get("recordingStatusCallbackEvent") or ""):
                self.post(
                    status_cb,
                    {"RecordingSid": sid, "RecordingStatus": "absent", "RecordingDuration": "0"},
                )
            return None
        path = self.audio.popleft()
        rec = {
            "RecordingSid": sid,
            "RecordingUrl": self.media.add(sid, path),
            "RecordingDuration": str(_audio_seconds(path)),
        }
        action_url = urljoin(doc_url, verb.get("action") or doc_url)
        body = self.post(action_url, rec)
        if status_cb:
            self.post(
                status_cb,
                {
                    **rec,
                    "RecordingStatus": "completed",
                    "RecordingChannels": "1",
                    "RecordingSource": "RecordVerb",
                },
            )
        return self._follow(body, action_url)


class _CallerHungUp(Exception):
    """The simulated caller put the phone down (``--hangup-after``)."""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def _inprocess_app(runtime: Runtime) -> Iterator[str]:
    import uvicorn

    from esitieto.app import create_app

    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(runtime=runtime), host="127.0.0.1", port=port, log_level="warning"
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise SimulationError("the in-process app did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def simulate_call(
    settings: Settings,
    *,
    station_id: str,
    audio: list[Path],
    url: str | None = None,
    from_number: str = "+358401234567",
    digits: list[str] | None = None,
    hangup_after: int | None = None,
    timeout_s: float = 180.0,
    runtime: Runtime | None = None,
) -> dict[str, Any]:
    """Play one call and return the finished case as JSON-ready data."""
    for path in audio:
        if not path.is_file():
            raise SimulationError(f"{path}: no such audio file")
    own_runtime = runtime is None
    rt = runtime or Runtime(settings)
    try:
        if url is None:
            with _inprocess_app(rt) as base:
                return _play(
                    rt, base, station_id, audio, from_number, digits, hangup_after, timeout_s
                )
        from esitieto.app import prepare

        prepare(rt)
        return _play(
            rt, url.rstrip("/"), station_id, audio, from_number, digits, hangup_after, timeout_s
        )
    finally:
        if own_runtime:
            rt.close()


def _play(
    rt: Runtime,
    base: str,
    station_id: str,
    audio: list[Path],
    from_number: str,
    digits: list[str] | None,
    hangup_after: int | None,
    timeout_s: float,
) -> dict[str, Any]:
    with rt.db.session() as session:
        station = session.get(Station, station_id)
        if station is None:
            raise SimulationError(f"unknown station '{station_id}'")
        to_number = station.phone_number
    settings = rt.settings
    call_sid = _sid("CA")
    token = settings.twilio_auth_token.get_secret_value()
    params = {
        "CallSid": call_sid,
        "AccountSid": settings.twilio.account_sid,
        "From": from_number,
        "To": to_number,
        "Called": to_number,
        "Direction": "inbound",
        "ApiVersion": TWILIO_API_VERSION,
    }
    started = time.monotonic()
    with RecordingServer(settings.twilio.account_sid, token) as media:
        driver = CallDriver(
            base_url=base,
            auth_token=token,
            media=media,
            call_params={**params, "CallStatus": "ringing"},
            audio=deque(audio),
            digits=deque(digits or []),
            hangup_after=hangup_after,
        )
        try:
            driver.call_params["CallStatus"] = "in-progress"
            driver.run("/twilio/voice")
        except httpx.HTTPError as exc:
            raise SimulationError(f"could not reach the app at {base}: {exc}") from exc
        duration = str(max(1, round(time.monotonic() - started)))
        driver.hangup_after = None
        driver.call_params["CallStatus"] = "completed"
        driver.post("/twilio/status", {"CallDuration": duration, "CallStatus": "completed"})
        case = _wait_for_case(rt, call_sid, timeout_s)
    case["heard"] = driver.heard
    case["outcome"] = driver.outcome
    return case


def _wait_for_case(rt: Runtime, call_sid: str, timeout_s: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    state = "unknown"
    while time.monotonic() < deadline:
        case = load_case(rt, call_sid)
        if case is not None:
            state = case["state"]
            if state in (CallState.READY, CallState.FAILED):
                return case
        time.sleep(0.25)
    raise SimulationError(f"timed out after {timeout_s:.0f}s waiting for the case (state: {state})")


def load_case(rt: Runtime, call_sid: str) -> dict[str, Any] | None:
    """The stored case of a call, as the nurse would see it."""
    with rt.db.session() as session:
        call = session.scalar(select(Call).where(Call.call_sid == call_sid))
        if call is None:
            return None
        summary = session.scalar(select(Summary).where(Summary.call_id == call.id))
        decision = session.scalar(
            select(TriageDecision)
            .where(TriageDecision.call_id == call.id)
            .order_by(TriageDecision.created_at.desc())
        )
        recordings = [
            {
                "recording_sid": r.recording_sid,
                "state": r.state,
                "duration_s": r.duration_s,
                "error": r.error,
                "transcript": r.transcript.text if r.transcript else None,
                "segments": [
                    {"start": s.start_s, "end": s.end_s, "text": s.text}
                    for s in (r.transcript.segments if r.transcript else [])
                ],
            }
            for r in call.recordings
        ]
        return {
            "case_id": call.id,
            "call_sid": call.call_sid,
            "station": call.station_id,
            "state": call.state,
            "language": call.language,
            "recordings": recordings,
            "transcript": summary.source_text if summary else "",
            "summary": summary.data if summary else None,
            "note": summary.note if summary else None,
            "triage": {
                "urgency": decision.urgency,
                "route": decision.route,
                "digital_path": decision.digital_path,
                "reasons": decision.reasons,
                "ruleset_version": decision.ruleset_version,
            }
            if decision
            else None,
            "processing_error": call.processing_error,
        }
