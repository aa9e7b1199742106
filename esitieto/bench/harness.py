"""What the fault and endurance runs share (``esitieto.bench.faults``, ``esitieto.bench.soak``):
the product as separate processes (``esitieto serve`` with ``ESITIETO_WORKER__MODE=external``
and one ``esitieto worker``), simulated callers driven through the real, signed webhooks, and
the checks on the database afterwards (every call a case, READY, nothing twice).

One recording server plays Twilio's REST API for every call of a run, so the app can be
pointed at it with ``ESITIETO_TWILIO__API_BASE_URL``. Answers are either given as words (the
simulator's ``--as-heard``: a tone is served as the recording and the words are stored for it,
so no speech is recognised) or real audio spoken by espeak-ng and heard by the configured
Whisper model. Only synthetic callers and words are used.
"""

from __future__ import annotations

import json
import math
import os
import random
import secrets
import signal
import socket
import statistics
import struct
import subprocess
import sys
import threading
import time
import wave
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import httpx
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from esitieto.db import create_db_engine
from models import Call, CallState, Job, JobState, Recording, Summary, Transcript
from models.encryption import Keyring, attach
from voicebot.service import give_words
from voicebot.simulator import TWILIO_API_VERSION, CallDriver, RecordingServer, new_sid

ACCOUNT_SID = "AC00000000000000000000000000000000"
DIGITS = ["1", "2", "#", "1", "1", "1", "1", "1", "1"]
"""Finnish, no emergency signs, identity skipped, then 1 for every follow-up."""
WORDS = [
    "Minulla on ollut kuumetta ja yskää kaksi päivää.",
    "Lapsella on korvakipua ja nuhaa, kuumetta ei ole.",
    "Haluaisin uusia reseptin verenpainelääkkeeseen.",
    "Selkä on ollut kipeä viikon, kävely onnistuu.",
    "Kurkku on kipeä ja nieleminen sattuu, kolme päivää.",
    "Iholla on kutiseva ihottuma käsivarressa.",
]
"""Synthetic answers to "what is the matter" (never real callers' words)."""
SPOKEN = "Minulla on ollut kuumetta ja yskää kolme päivää."
THINK_S = (0.5, 2.0)
BUDGETED = "/twilio/assess"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rss_kb(pid: int) -> int | None:
    """The resident set size of a process, from ``/proc``; None when it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def percentile(values: list[float], q: float) -> float:
    """The nearest-rank percentile (as ``esitieto bench voicebot`` reports it)."""
    ordered = sorted(values)
    if not ordered:
        return math.nan
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def latency_figures(ms: list[float]) -> dict[str, float]:
    if not ms:
        return {"count": 0}
    return {
        "count": len(ms),
        "p50_ms": round(statistics.median(ms), 1),
        "p99_ms": round(percentile(ms, 0.99), 1),
        "max_ms": round(max(ms), 1),
    }


def synth_phone_audio(text: str, out: Path) -> Path:
    """``text`` spoken by espeak-ng in Finnish as 8 kHz μ-law, as a phone line carries it."""
    wide = out.with_suffix(".22k.wav")
    subprocess.run(["espeak-ng", "-v", "fi", "-w", str(wide), text], check=True)
    subprocess.run(
        ["sox", "-R", str(wide), "-r", "8000", "-c", "1", "-e", "u-law", str(out)], check=True
    )
    return out


def tone(out: Path, seconds: float = 1.0) -> Path:
    """A quiet tone served as the recording of an answer whose words are given."""
    rate = 8000
    frames = b"".join(
        struct.pack("<h", int(3000 * math.sin(2 * math.pi * 440 * i / rate)))
        for i in range(int(rate * seconds))
    )
    with wave.open(str(out), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(frames)
    return out


class Stack:
    """``esitieto serve`` and one ``esitieto worker`` as child processes on one data dir."""

    def __init__(self, data_dir: Path, database_url: str, extra_env: dict[str, str]) -> None:
        self.data_dir = data_dir
        self.database_url = database_url
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("ESITIETO_")}
        env.update(
            ESITIETO_DATA_DIR=str(data_dir),
            ESITIETO_WORKER__MODE="external",
            ESITIETO_DATABASE__URL=database_url,
            ESITIETO_ASR__CPU_THREADS=os.environ.get("ESITIETO_ASR__CPU_THREADS", "1"),
            ESITIETO_DEMO__ENABLED="true",  # the demo station takes the calls
            ESITIETO_TWILIO__ALLOW_LOCAL_RECORDINGS="true",  # the simulator's recordings
        )
        env.update(extra_env)
        self.env = env
        self.serve: subprocess.Popen[bytes] | None = None
        self.worker: subprocess.Popen[bytes] | None = None
        self._logs: list[IO[bytes]] = []
        self.pids: list[int] = []
        """Every process this stack started, in order (for the report)."""

    def _spawn(self, command: str, log_name: str, *args: str) -> subprocess.Popen[bytes]:
        log = (self.data_dir / log_name).open("ab")
        self._logs.append(log)
        proc = subprocess.Popen(
            [sys.executable, "-m", "esitieto.cli", command, *args],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        self.pids.append(proc.pid)
        return proc

    def start_serve(self, timeout_s: float = 120.0) -> float:
        """Start the web app and wait until it answers; the wall time it answered."""
        self.serve = self._spawn("serve", "serve.log", "--port", str(self.port))
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                if httpx.get(f"{self.url}/healthz", timeout=2).status_code in (200, 503):
                    return time.time()
            except httpx.HTTPError:
                pass
            if self.serve.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the app did not start; see {self.data_dir / 'serve.log'}")
            time.sleep(0.1)

    def start_worker(self) -> float:
        """Start a worker (it starts taking jobs about two seconds later); the wall time."""
        self.worker = self._spawn("worker", "worker.log")
        return time.time()

    @staticmethod
    def _kill(proc: subprocess.Popen[bytes] | None, sig: int) -> None:
        if proc is None or proc.poll() is not None:
            return
        os.kill(proc.pid, sig)  # only ever a child this stack started
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)

    def kill_worker(self, sig: int = signal.SIGKILL) -> None:
        self._kill(self.worker, sig)

    def kill_serve(self, sig: int = signal.SIGKILL) -> None:
        self._kill(self.serve, sig)

    def stop(self) -> None:
        self._kill(self.worker, signal.SIGTERM)
        self._kill(self.serve, signal.SIGTERM)
        for log in self._logs:
            log.close()

    def auth_token(self) -> str:
        token = self.env.get("ESITIETO_TWILIO__AUTH_TOKEN")
        if not token:
            token = json.loads((self.data_dir / "secrets.json").read_text())["twilio_auth_token"]
        return str(token)


def settings_given(pairs: list[str]) -> dict[str, str]:
    """``--set ESITIETO_NAME=VALUE`` options as environment variables for serve and worker
    (the run's own environment's ``ESITIETO_*`` variables are not passed on)."""
    out: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.startswith("ESITIETO_"):
            raise SystemExit(f"--set {pair!r}: expected ESITIETO_NAME=VALUE")
        out[key] = value
    return out


def twilio_env(media: RecordingServer, auth_token: str) -> dict[str, str]:
    """Settings that make the recording server the app's "Twilio": its token, its REST API
    (the Calls API that reconciliation asks), its recordings."""
    return {
        "ESITIETO_TWILIO__ACCOUNT_SID": media.account_sid,
        "ESITIETO_TWILIO__AUTH_TOKEN": auth_token,
        "ESITIETO_TWILIO__API_BASE_URL": media.base,
    }


def open_station_all_day(engine: Engine) -> str:
    """Open the demo station round the clock (every branch reachable); its number."""
    from sqlalchemy import text

    with engine.begin() as conn:
        conn.execute(
            text("UPDATE stations SET opening_hours = :h"), {"h": '{"mon-sun": "00:00-24:00"}'}
        )
        return str(conn.execute(text("SELECT phone_number FROM stations")).scalar_one())


class RetryingClient(httpx.Client):
    """Posts a webhook again while the app cannot be reached or drops the connection, as
    Twilio does with a retrying connection policy (``#rc=…&rp=all``); retries are counted."""

    def __init__(self, retry_for_s: float = 90.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.retry_for_s = retry_for_s
        self.retries = 0

    def post(self, url: Any, **kwargs: Any) -> httpx.Response:
        deadline = time.monotonic() + self.retry_for_s
        while True:
            try:
                return super().post(url, **kwargs)
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise
                self.retries += 1
                time.sleep(0.25)


@dataclass
class Webhook:
    at: float
    """Wall time the response arrived."""
    call_sid: str
    path: str
    ms: float


@dataclass
class CallResult:
    call_sid: str
    mode: str
    """``words`` (given) or ``audio`` (recognised)."""
    started: float
    ended: float = 0.0
    final_status_sent: bool = True
    outcome: str = ""
    error: str | None = None
    retries: int = 0
    webhooks: list[Webhook] = field(default_factory=list)


class Caller:
    """Plays whole calls against the stack's webhooks, sharing one recording server."""

    def __init__(
        self,
        *,
        url: str,
        auth_token: str,
        to_number: str,
        media: RecordingServer,
        engine: Engine,
        tone_path: Path,
        audio_path: Path | None,
        think_s: tuple[float, float] = THINK_S,
    ) -> None:
        self.url = url
        self.auth_token = auth_token
        self.to_number = to_number
        self.media = media
        self.engine = engine
        self.tone_path = tone_path
        self.audio_path = audio_path
        self.think_s = think_s

    def give(self, recording_sid: str, text: str) -> None:
        with Session(self.engine) as session, session.begin():
            give_words(session, recording_sid, text)

    def play(
        self,
        index: int,
        *,
        audio: bool,
        final_status: bool = True,
        on_final_status_skipped: Callable[[str], None] | None = None,
    ) -> CallResult:
        pace = random.Random(index)
        sid = new_sid("CA")
        result = CallResult(sid, "audio" if audio else "words", time.time())
        self.media.calls[sid] = ("in-progress", None)  # what the Calls API answers
        params = {
            "CallSid": sid,
            "AccountSid": ACCOUNT_SID,
            "From": f"+35840{index:07d}",
            "To": self.to_number,
            "Called": self.to_number,
            "Direction": "inbound",
            "ApiVersion": TWILIO_API_VERSION,
            "CallStatus": "in-progress",
        }
        client = RetryingClient(timeout=60.0)
        words = WORDS[index % len(WORDS)]
        driver = _SharedMediaDriver(
            base_url=self.url,
            auth_token=self.auth_token,
            media=self.media,
            call_params=params,
            audio=deque([self.audio_path] if audio and self.audio_path else []),
            digits=deque(DIGITS),
            given=deque([] if audio else [words]),
            give_transcript=self.give,
            client=client,
            tone_path=self.tone_path,
        )
        driver.pause = lambda: time.sleep(pace.uniform(*self.think_s))
        try:
            driver.run("/twilio/voice")
            duration = str(max(1, round(time.time() - result.started)))
            self.media.calls[sid] = ("completed", int(duration))
            if final_status:
                driver.call_params["CallStatus"] = "completed"
                driver.post("/twilio/status", {"CallDuration": duration, "CallStatus": "completed"})
            else:
                result.final_status_sent = False
                if on_final_status_skipped is not None:
                    on_final_status_skipped(sid)
        except Exception as exc:
            result.error = f"{type(exc).__name__}: {exc}"[:300]
        finally:
            client.close()
        result.ended = time.time()
        result.outcome = driver.outcome
        result.retries = client.retries
        result.webhooks = driver.webhooks
        return result


@dataclass
class _SharedMediaDriver(CallDriver):
    """The simulator's driver, serving a given-words answer as one shared tone file and
    keeping each webhook's wall time."""

    tone_path: Path | None = None
    webhooks: list[Webhook] = field(default_factory=list)

    def post(self, url: str, extra: dict[str, str] | None = None) -> str:
        before = len(self.timings)
        try:
            return super().post(url, extra)
        finally:
            for path, seconds in self.timings[before:]:
                self.webhooks.append(
                    Webhook(time.time(), self.call_params["CallSid"], path, seconds * 1000)
                )

    def _record(self, verb: Any, doc_url: str) -> Any:
        if self.given and self.give_transcript is not None and self.tone_path is not None:
            # As the simulator does, with one tone file for every call instead of a new one.
            sid = new_sid("RE")
            self.give_transcript(sid, self.given.popleft())
            self.media.add(sid, self.tone_path)
            return self._post_recording(verb, doc_url, sid)
        return super()._record(verb, doc_url)

    def _post_recording(self, verb: Any, doc_url: str, sid: str) -> Any:
        from urllib.parse import urljoin

        status_cb = verb.get("recordingStatusCallback")
        rec = {
            "RecordingSid": sid,
            "RecordingUrl": self.media.url_of(sid),
            "RecordingDuration": "1",
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


def utc_seconds(value: datetime | None) -> float | None:
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.timestamp()


@dataclass
class CaseState:
    call_sid: str
    state: str | None
    """None: no case at all for the call."""
    ready_at: float | None
    ended_at: float | None
    recordings: int
    transcripts: int
    summaries: int


def case_states(engine: Engine, call_sids: list[str]) -> dict[str, CaseState]:
    """Each played call's case as stored: state, times and how many rows of each kind."""
    out: dict[str, CaseState] = {}
    with Session(engine) as s:
        for i in range(0, len(call_sids), 200):
            chunk = call_sids[i : i + 200]
            rows = s.execute(
                select(Call.call_sid, Call.id, Call.state, Call.ready_at, Call.ended_at).where(
                    Call.call_sid.in_(chunk)
                )
            ).all()
            ids = {r.id: r for r in rows}
            recs = dict(
                s.execute(
                    select(Recording.call_id, func.count())
                    .where(Recording.call_id.in_(list(ids)))
                    .group_by(Recording.call_id)
                ).all()
            )
            trs = dict(
                s.execute(
                    select(Transcript.call_id, func.count())
                    .where(Transcript.call_id.in_(list(ids)))
                    .group_by(Transcript.call_id)
                ).all()
            )
            sums = dict(
                s.execute(
                    select(Summary.call_id, func.count())
                    .where(Summary.call_id.in_(list(ids)))
                    .group_by(Summary.call_id)
                ).all()
            )
            for r in rows:
                out[r.call_sid] = CaseState(
                    r.call_sid,
                    r.state,
                    utc_seconds(r.ready_at),
                    utc_seconds(r.ended_at),
                    int(recs.get(r.id, 0)),
                    int(trs.get(r.id, 0)),
                    int(sums.get(r.id, 0)),
                )
    for sid in call_sids:
        out.setdefault(sid, CaseState(sid, None, None, None, 0, 0, 0))
    return out


def wait_until_ready(
    engine: Engine, call_sids: list[str], timeout_s: float, poll_s: float = 1.0
) -> dict[str, CaseState]:
    """Poll until every call's case is READY or FAILED, or the time is up."""
    deadline = time.monotonic() + timeout_s
    while True:
        states = case_states(engine, call_sids)
        done = all(c.state in (CallState.READY, CallState.FAILED) for c in states.values())
        if done or time.monotonic() > deadline:
            return states
        time.sleep(poll_s)


def duplicates(engine: Engine, call_sids: list[str]) -> dict[str, int]:
    """Rows there should be one of, found more than once (each must be 0)."""
    with Session(engine) as s:
        calls = s.execute(
            select(Call.call_sid, func.count()).group_by(Call.call_sid).having(func.count() > 1)
        ).all()
        summaries = s.execute(
            select(Summary.call_id, func.count()).group_by(Summary.call_id).having(func.count() > 1)
        ).all()
        transcripts = s.execute(
            select(Transcript.recording_id, func.count())
            .group_by(Transcript.recording_id)
            .having(func.count() > 1)
        ).all()
        recordings = s.execute(
            select(Recording.recording_sid, func.count())
            .group_by(Recording.recording_sid)
            .having(func.count() > 1)
        ).all()
        jobs = s.execute(
            select(Job.kind, Job.key, func.count())
            .group_by(Job.kind, Job.key)
            .having(func.count() > 1)
        ).all()
        states = case_states(engine, call_sids)
    return {
        "cases": len(calls),
        "summaries": len(summaries),
        "transcripts": len(transcripts),
        "recordings": len(recordings),
        "jobs": len(jobs),
        "calls_with_more_than_one_recording": sum(1 for c in states.values() if c.recordings > 1),
        "calls_with_more_transcripts_than_recordings": sum(
            1 for c in states.values() if c.transcripts > c.recordings
        ),
    }


def job_summary(engine: Engine) -> dict[str, Any]:
    with Session(engine) as s:
        by_state = dict(s.execute(select(Job.state, func.count()).group_by(Job.state)).all())
        max_attempts = s.scalar(select(func.max(Job.attempts))) or 0
        failed = s.execute(
            select(Job.kind, Job.last_error).where(Job.state == JobState.FAILED).limit(5)
        ).all()
    return {
        "by_state": {str(k): int(v) for k, v in by_state.items()},
        "max_attempts": int(max_attempts),
        "failed_examples": [f"{k}: {(e or '')[:120]}" for k, e in failed],
    }


def new_key_spec() -> str:
    """A throwaway encryption key for the run (``ESITIETO_ENCRYPTION__KEYS``), so this
    process seals what it writes (the given words) as the app does."""
    return f"run1:{secrets.token_hex(32)}"


def make_engine(database_url: str, key_spec: str | None = None) -> Engine:
    engine = create_db_engine(database_url, pool_size=5)
    if key_spec is not None:
        attach(engine.dialect, Keyring.parse(key_spec))
    return engine


class Spawner:
    """Runs callers in threads and collects their results."""

    def __init__(self) -> None:
        self.results: list[CallResult] = []
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []

    def start(self, fn: Callable[[], CallResult]) -> None:
        def run() -> None:
            result = fn()
            with self._lock:
                self.results.append(result)

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        self._threads.append(thread)

    def in_flight(self) -> int:
        return sum(1 for t in self._threads if t.is_alive())

    def join(self, timeout_s: float = 600.0) -> None:
        deadline = time.monotonic() + timeout_s
        for t in self._threads:
            t.join(max(0.0, deadline - time.monotonic()))
