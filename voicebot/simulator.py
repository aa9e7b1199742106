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
import json
import math
import mimetypes
import struct
import tempfile
import threading
import time
import uuid
import wave
import xml.etree.ElementTree as ET
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import httpx
from defusedxml import ElementTree as safe_xml
from sqlalchemy import select
from sqlalchemy.orm import Session

from integrations.twilio import sign
from models import Call, CallState, Job, Summary, TriageDecision

TWILIO_API_VERSION = "2010-04-01"


class SimulationError(Exception):
    """The simulation could not run or the case did not appear; the message says why."""


class RecordingServer:
    """Serves the caller's audio files the way Twilio serves recordings, and answers Twilio's
    Calls API for the calls it played (``GET …/Calls/{CallSid}.json``), so a server pointed
    at it (``ESITIETO_TWILIO__API_BASE_URL``) can reconcile a call whose final status
    callback was lost."""

    def __init__(self, account_sid: str, auth_token: str) -> None:
        self.account_sid = account_sid
        self._expected = "Basic " + base64.b64encode(f"{account_sid}:{auth_token}".encode()).decode(
            "ascii"
        )
        self._files: dict[str, Path] = {}
        self.calls: dict[str, tuple[str, int | None]] = {}
        """CallSid → (Twilio's status, duration in seconds once ended)."""
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
                if "/Calls/" in self.path:
                    self._call(sid)
                    return
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

            def _call(self, sid: str) -> None:
                known = server.calls.get(sid)
                status, duration = known if known else (None, None)
                body = json.dumps(
                    {"sid": sid, "account_sid": server.account_sid, "status": status,
                     "duration": None if duration is None else str(duration),
                     "direction": "inbound", "api_version": TWILIO_API_VERSION}
                    if known
                    else {"code": 20404, "message": "The requested resource was not found",
                          "status": 404}
                ).encode()  # fmt: skip
                self.send_response(200 if known else 404)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                return

        self._tmp = tempfile.TemporaryDirectory(prefix="esitieto-sim-")
        self._httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    def add(self, recording_sid: str, path: Path) -> str:
        self._files[recording_sid] = path
        return self.url_of(recording_sid)

    def add_tone(self, recording_sid: str, seconds: float = 1.0) -> str:
        """A short quiet tone as the recording of an answer whose words are given."""
        path = Path(self._tmp.name) / f"{recording_sid}.wav"
        rate = 8000
        frames = b"".join(
            struct.pack("<h", int(3000 * math.sin(2 * math.pi * 440 * i / rate)))
            for i in range(int(rate * seconds))
        )
        with wave.open(str(path), "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(rate)
            w.writeframes(frames)
        return self.add(recording_sid, path)

    def url_of(self, recording_sid: str) -> str:
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
        self._tmp.cleanup()


def new_sid(prefix: str) -> str:
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
    """(webhook path, seconds) for every request, for ``esitieto bench voicebot``."""
    pause: Callable[[], None] | None = None
    """Called before each webhook after the first: the caller listening (bench pacing)."""
    given: deque[str] = field(default_factory=deque)
    """Answers given as words (see :func:`play_call`), used before any audio."""
    give_transcript: Callable[[str, str], None] | None = None
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
        sid = new_sid("RE")
        if self.given and self.give_transcript is not None:
            self.give_transcript(sid, self.given.popleft())
            url = self.media.add_tone(sid)
            path = None
        elif not self.audio:
            # Silence: Twilio reports the recording absent and goes on to the next verb.
            if status_cb and "absent" in (verb.get("recordingStatusCallbackEvent") or ""):
                self.post(
                    status_cb,
                    {"RecordingSid": sid, "RecordingStatus": "absent", "RecordingDuration": "0"},
                )
            return None
        else:
            path = self.audio.popleft()
            url = self.media.add(sid, path)
        rec = {
            "RecordingSid": sid,
            "RecordingUrl": url,
            "RecordingDuration": str(_audio_seconds(path) if path else 1),
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


@dataclass(frozen=True)
class PlayedCall:
    call_sid: str
    heard: list[str]
    """What the caller heard, in order; transfers as ``[Enqueue: queue]``."""
    outcome: str
    """``nurse_queue``, ``hangup``, ``caller_hung_up`` or ``completed``."""


def play_call(
    base_url: str,
    *,
    account_sid: str,
    auth_token: str,
    to_number: str,
    audio: list[Path],
    from_number: str = "+358401234567",
    digits: list[str] | None = None,
    hangup_after: int | None = None,
    give_transcript: Callable[[str, str], None] | None = None,
    as_heard: list[str] | None = None,
    media: RecordingServer | None = None,
    lose_final_status: bool = False,
) -> PlayedCall:
    """Play one call against the webhooks at ``base_url`` and hang up (final status callback).

    ``as_heard`` answers recorded questions with given words instead of audio (demos and
    training, where the bundled model would garble synthetic speech): each answer is a short
    tone served as the recording, and ``give_transcript(recording_sid, text)`` stores the words
    before Twilio's callbacks are posted, so the pipeline uses them instead of recognising.

    ``media``: a recording server that outlives the call (one is made for the call if None);
    ``lose_final_status``: the call ends at "Twilio" but its final status callback is never
    posted, as when the server was down, so only reconciliation can end it."""
    for path in audio:
        if not path.is_file():
            raise SimulationError(f"{path}: no such audio file")
    if as_heard and give_transcript is None:
        raise SimulationError("given words need a way to store them (give_transcript)")
    call_sid = new_sid("CA")
    params = {
        "CallSid": call_sid,
        "AccountSid": account_sid,
        "From": from_number,
        "To": to_number,
        "Called": to_number,
        "Direction": "inbound",
        "ApiVersion": TWILIO_API_VERSION,
    }
    started = time.monotonic()
    with _serving(media, account_sid, auth_token) as media:
        media.calls[call_sid] = ("in-progress", None)
        driver = CallDriver(
            base_url=base_url.rstrip("/"),
            auth_token=auth_token,
            media=media,
            call_params={**params, "CallStatus": "in-progress"},
            audio=deque(audio),
            digits=deque(digits or []),
            hangup_after=hangup_after,
            given=deque(as_heard or []),
            give_transcript=give_transcript,
        )
        try:
            driver.run("/twilio/voice")
            duration = max(1, round(time.monotonic() - started))
            media.calls[call_sid] = ("completed", duration)
            driver.hangup_after = None
            driver.call_params["CallStatus"] = "completed"
            if not lose_final_status:
                driver.post(
                    "/twilio/status", {"CallDuration": str(duration), "CallStatus": "completed"}
                )
        except httpx.HTTPError as exc:
            raise SimulationError(f"could not reach the app at {base_url}: {exc}") from exc
    return PlayedCall(call_sid=call_sid, heard=driver.heard, outcome=driver.outcome)


@contextmanager
def _serving(
    media: RecordingServer | None, account_sid: str, auth_token: str
) -> Iterator[RecordingServer]:
    if media is not None:
        yield media
        return
    with RecordingServer(account_sid, auth_token) as own:
        yield own


def wait_for_case(
    session: Callable[[], AbstractContextManager[Session]], call_sid: str, timeout_s: float
) -> dict[str, Any]:
    """The case once the pipeline has finished it (ready or failed)."""
    deadline = time.monotonic() + timeout_s
    state = "unknown"
    while time.monotonic() < deadline:
        with session() as s:
            case = load_case(s, call_sid)
        if case is not None:
            state = case["state"]
            if state in (CallState.READY, CallState.FAILED):
                return case
        time.sleep(0.25)
    with session() as s:
        waiting = _pipeline_state(s, call_sid)
    raise SimulationError(
        f"timed out after {timeout_s:.0f}s waiting for the case (state: {state}; {waiting})"
    )


def _pipeline_state(s: Session, call_sid: str) -> str:
    """Where the after-call pipeline stands: each recording's state and each job's."""
    call = s.scalar(select(Call).where(Call.call_sid == call_sid))
    if call is None:
        return "no such call"
    keys = {call.id, *(r.id for r in call.recordings)}
    recordings = ", ".join(f"recording {r.sequence} {r.state}" for r in call.recordings)
    jobs = ", ".join(
        f"{j.kind} {j.state} after {j.attempts} attempts ({j.last_error or 'no error'})"
        for j in s.scalars(select(Job).where(Job.key.in_(keys)).order_by(Job.created_at))
    )
    return f"{recordings or 'no recordings'}; jobs: {jobs or 'none'}"


def load_case(session: Session, call_sid: str) -> dict[str, Any] | None:
    """The stored case of a call, as the nurse would see it."""
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
            "transcribed_by": r.transcript.engine if r.transcript else None,
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
            "uncertain": decision.uncertain,
            "uncertain_reasons": decision.uncertain_reasons,
        }
        if decision
        else None,
        "processing_error": call.processing_error,
    }
