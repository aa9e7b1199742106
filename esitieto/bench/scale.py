"""The scale run: the product scaled out on one machine, and faults while it takes calls.

``python -m esitieto.bench.scale [--calls 200]`` (``scripts/scale.sh``, which makes the
PostgreSQL database). What runs, each a child process of this one, on loopback (no network
namespaces: every process is on 127.0.0.1 of this host):

* two ``esitieto serve`` (``ESITIETO_WORKER__MODE=external``) behind haproxy, which
  health-checks ``GET /healthz`` each second, balances round robin and sends a request again to
  the other server when a connection fails or a server closes it without an answer; the
  config is written to the run's data dir;
* two ``esitieto worker``;
* two ``esitieto stt-serve``; the app and the workers transcribe on them
  (``ESITIETO_ASR__ENGINE=remote``, ``ESITIETO_ASR__REMOTE_URLS``).

Every process shares the data dir (recordings, secrets) and the database. One recording
server plays Twilio (recordings and the Calls API) for every call, as in the fault run
(``esitieto.bench.harness``). Callers post the real, signed webhooks to haproxy; a webhook that
cannot reach it, or is answered 5xx, is posted again for up to 90 s (Twilio's retrying
connection policy ``#rc=…&rp=all``). Every ``--audio-every``-th call speaks real audio
(espeak-ng, 8 kHz μ-law) heard by Whisper through stt-serve, in the call and afterwards; the
others answer with given words (no speech recognised), to keep two cores from drowning.

Faults, at shares of the calls started: a worker, an stt-serve (the busier one, while an
audio answer is being heard) and a web server get SIGKILL and are started again at once, and
PostgreSQL is restarted once (``pg_ctlcluster``; ``--no-pg-restart`` leaves it alone). A
process that exits on its own is started again too and counted.

Figures: calls started, cases READY, lost (no case, or not READY), duplicated rows, lost
recordings (an answer posted whose recording row is missing or never fetched and heard),
webhook p50/p99 through haproxy, hang-up → READY p50/p99, in-call answers heard within the
budget (the call's dialogue, read through the ORM: it is encrypted at rest). A table is
printed and ``scale-result.json`` written to the data dir (and ``--out``). Only synthetic
callers and words are used.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import httpx
from sqlalchemy import Engine, select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from esitieto.bench.harness import (
    ACCOUNT_SID,
    BUDGETED,
    DIGITS,
    SPOKEN,
    WORDS,
    Caller,
    CallResult,
    CaseState,
    RetryingClient,
    Spawner,
    _SharedMediaDriver,
    duplicates,
    free_port,
    job_summary,
    make_engine,
    new_key_spec,
    open_station_all_day,
    percentile,
    synth_phone_audio,
    tone,
    wait_until_ready,
)
from models import Call, CallState, Recording, RecordingState
from voicebot.simulator import TWILIO_API_VERSION, RecordingServer, new_sid

DEFAULT_DATABASE_URL = "postgresql+psycopg://postgres@127.0.0.1/scale"
STT_KEY_BYTES = 16
HEARD = (RecordingState.TRANSCRIBED, RecordingState.SILENT)
"""A recording in one of these states was fetched and heard: not lost."""


# --- pure helpers (tested in tests/esitieto/test_bench_scale.py) ---------------------------


def haproxy_config(
    port: int, servers: list[tuple[str, int]], *, stats_port: int, check_inter_ms: int = 1000
) -> str:
    """haproxy in front of the web servers: ``/healthz`` checked every ``check_inter_ms``
    (down after 2 failures, up after 2 successes), round robin, a request sent again to
    another server when the connection fails or is closed without an answer."""
    lines = [
        "global",
        "    maxconn 4000",
        "defaults",
        "    mode http",
        "    timeout connect 2s",
        "    timeout client 120s",
        "    timeout server 120s",
        "    retries 3",
        "    option redispatch 1",
        "    retry-on conn-failure empty-response junk-response",
        "frontend twilio",
        f"    bind 127.0.0.1:{port}",
        "    default_backend web",
        "backend web",
        "    balance roundrobin",
        "    option httpchk GET /healthz",
        "    http-check expect status 200",
        f"    default-server inter {check_inter_ms} fall 2 rise 2",
        *(f"    server {name} 127.0.0.1:{p} check" for name, p in servers),
        "listen stats",
        f"    bind 127.0.0.1:{stats_port}",
        "    stats enable",
        "    stats uri /stats",
    ]
    return "\n".join(lines) + "\n"


def haproxy_servers(stats_csv: str) -> dict[str, dict[str, Any]]:
    """Per web server from haproxy's ``/stats;csv``: requests sent, status, times marked down,
    connection errors, responses it sent again elsewhere."""
    text = stats_csv.lstrip("# ")
    out: dict[str, dict[str, Any]] = {}
    for row in csv.DictReader(io.StringIO(text)):
        if row.get("pxname") != "web" or row.get("svname") in ("FRONTEND", "BACKEND"):
            continue

        def num(key: str, row: dict[str, str] = row) -> int:
            value = row.get(key) or "0"
            return int(value) if value.isdigit() else 0

        out[row["svname"]] = {
            "requests": num("stot"),
            "status": row.get("status"),
            "marked_down": num("chkdown"),
            "connection_errors": num("econ"),
            "response_errors": num("eresp"),
            "retried": num("wretr"),
            "redispatched": num("wredis"),
        }
    return out


def p50_p99(values: list[float], scale: float = 1.0, digits: int = 1) -> dict[str, Any]:
    if not values:
        return {"count": 0}
    v = [x * scale for x in values]
    return {
        "count": len(v),
        "p50": round(percentile(v, 0.50), digits),
        "p99": round(percentile(v, 0.99), digits),
        "max": round(max(v), digits),
    }


def lost_recordings(posted: dict[str, set[str]], stored: dict[str, str]) -> dict[str, Any]:
    """Answers posted (call → recording SIDs) against recording rows (SID → state): lost is
    a posted recording without a row, or one never fetched and heard."""
    missing = [sid for sids in posted.values() for sid in sids if sid not in stored]
    unheard = Counter(
        stored[sid]
        for sids in posted.values()
        for sid in sids
        if sid in stored and stored[sid] not in HEARD
    )
    return {
        "posted": sum(len(s) for s in posted.values()),
        "no_row": len(missing),
        "not_heard_by_state": dict(unheard),
        "lost": len(missing) + sum(unheard.values()),
    }


def heard_in_budget(dialogues: dict[str, dict[str, Any] | None]) -> dict[str, int]:
    """Calls whose dialogue says the answer was assessed in the call, and of those, how many
    had the answer heard (``heard`` set: in time, within the budget)."""
    assessed = [d for d in dialogues.values() if d and d.get("assessed")]
    return {
        "calls": len(dialogues),
        "assessed": len(assessed),
        "heard_within_budget": sum(1 for d in assessed if d.get("heard") is not None),
    }


LOG_SIGNS = {
    "stt_server_failed": "speech-to-text server",
    "stt_local_fallback": "transcribing on this machine instead",
    "live_webhook_to_nurse": "the caller goes to a nurse",
    "job_failed_attempt": "failed (attempt",
    "worker_loop_error": "worker loop error",
}
"""What the app's own logs say happened (the lines name error types, never words heard)."""


def log_counts(texts: list[str]) -> dict[str, int]:
    return {
        key: sum(line.count(sign) for text in texts for line in text.splitlines())
        for key, sign in LOG_SIGNS.items()
    }


def verdict(f: dict[str, Any]) -> bool:
    """Nothing lost, nothing twice, every call played to the end."""
    return (
        f["calls_started"] > 0
        and f["calls_started"] == f.get("calls_spawned", f["calls_started"])
        and f["cases_lost"] == 0
        and all(v == 0 for v in f["duplicates"].values())
        and f["recordings"]["lost"] == 0
        and f["call_errors"] == 0
    )


# --- processes ------------------------------------------------------------------------------


def listen_port(low: int = 20000, high: int = 32000) -> int:
    """A free port below the kernel's ephemeral range (32768 up by default), so no outgoing
    connection takes it between now and the server's bind (which ``free_port``'s can)."""
    import random
    import socket

    rng = random.SystemRandom()
    for _ in range(200):
        port = rng.randrange(low, high)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    return free_port()


def _cpu_ticks(pid: int) -> int:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])  # utime + stime
    except (OSError, IndexError, ValueError):
        return 0


def busier(services: list[Service], window_s: float = 0.5) -> Service:
    """The one of ``services`` that used the most CPU over the next ``window_s`` (the one
    most likely in the middle of some work)."""
    before = {s.name: _cpu_ticks(s.pid) for s in services}
    time.sleep(window_s)
    return max(services, key=lambda s: _cpu_ticks(s.pid) - before[s.name])


@dataclass
class Service:
    """One child process of the run, which can be killed and started again."""

    name: str
    command: list[str]
    env: dict[str, str]
    log_path: Path
    health_url: str | None = None
    proc: subprocess.Popen[bytes] | None = None
    starts: int = 0
    exits: list[dict[str, Any]] = field(default_factory=list)
    """Exits nobody asked for (found by the supervisor)."""
    lock: threading.Lock = field(default_factory=threading.Lock)
    _log: IO[bytes] | None = None

    def start(self) -> None:
        if self._log is None:
            self._log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            self.command, env=self.env, stdout=self._log, stderr=subprocess.STDOUT
        )
        self.starts += 1

    def wait_healthy(self, timeout_s: float = 180.0, ok: tuple[int, ...] = (200,)) -> float:
        """Wait until the process answers its health URL; the wall time it did."""
        if self.health_url is None:
            return time.time()
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                if httpx.get(self.health_url, timeout=2).status_code in ok:
                    return time.time()
            except httpx.HTTPError:
                pass
            if self.proc is None or self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited at start; see {self.log_path}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.name} did not answer; see {self.log_path}")
            time.sleep(0.2)

    def signal(self, sig: int, wait_s: float = 30.0) -> None:
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return
        os.kill(proc.pid, sig)  # only ever a child this run started
        try:
            proc.wait(timeout=wait_s)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)

    def stop(self) -> None:
        self.signal(signal.SIGTERM)
        if self._log is not None:
            self._log.close()
            self._log = None

    @property
    def pid(self) -> int:
        return self.proc.pid if self.proc is not None else 0


@dataclass
class Fault:
    target: str
    action: str
    at: float
    back_at: float | None = None
    detail: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "action": self.action,
            "at_utc": _iso(self.at),
            "back_in_s": round(self.back_at - self.at, 2) if self.back_at else None,
            "detail": self.detail,
        }


def _iso(t: float | None) -> str | None:
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="milliseconds") if t else None


class Cluster:
    """Two web servers behind haproxy, two workers, two stt-serve, on one data dir."""

    def __init__(
        self, data_dir: Path, database_url: str, base_env: dict[str, str], stt_key: str
    ) -> None:
        self.data_dir = data_dir
        python = [sys.executable, "-m", "esitieto.cli"]
        self.stt = []
        for i in (1, 2):
            port = listen_port()
            env = {**base_env, "ESITIETO_ASR__ENGINE": "faster-whisper"}
            self.stt.append(
                Service(
                    f"stt{i}",
                    [*python, "stt-serve", "--port", str(port)],
                    env,
                    data_dir / f"stt{i}.log",
                    f"http://127.0.0.1:{port}/health",
                )
            )
        stt_urls = [s.health_url.removesuffix("/health") for s in self.stt if s.health_url]
        self.lb_port = listen_port()
        self.stats_port = listen_port()
        self.url = f"http://127.0.0.1:{self.lb_port}"
        self.app_env = {
            **base_env,
            "ESITIETO_DATABASE__URL": database_url,
            "ESITIETO_WORKER__MODE": "external",
            "ESITIETO_ASR__ENGINE": "remote",
            "ESITIETO_ASR__REMOTE_URLS": json.dumps(stt_urls),
            "ESITIETO_ASR__REMOTE_API_KEY": stt_key,
            "ESITIETO_TWILIO__PUBLIC_BASE_URL": self.url,
        }
        self.web = []
        for i in (1, 2):
            port = listen_port()
            self.web.append(
                Service(
                    f"web{i}",
                    [*python, "serve", "--port", str(port)],
                    self.app_env,
                    data_dir / f"web{i}.log",
                    f"http://127.0.0.1:{port}/healthz",
                )
            )
        self.workers = [
            Service(f"worker{i}", [*python, "worker"], self.app_env, data_dir / f"worker{i}.log")
            for i in (1, 2)
        ]
        cfg = data_dir / "haproxy.cfg"
        cfg.write_text(
            haproxy_config(
                self.lb_port,
                [(w.name, int((w.health_url or "").split(":")[2].split("/")[0])) for w in self.web],
                stats_port=self.stats_port,
            )
        )
        check = subprocess.run(["haproxy", "-c", "-f", str(cfg)], capture_output=True, text=True)
        if check.returncode != 0:
            raise RuntimeError(f"haproxy config: {check.stdout}{check.stderr}")
        self.haproxy = Service(
            "haproxy",
            ["haproxy", "-db", "-f", str(cfg)],
            dict(os.environ),
            data_dir / "haproxy.log",
        )
        self._stop = threading.Event()
        self._supervisor: threading.Thread | None = None

    @property
    def services(self) -> list[Service]:
        return [*self.stt, *self.web, *self.workers, self.haproxy]

    def start(self) -> None:
        for s in self.stt:
            s.start()
        for s in self.stt:
            s.wait_healthy()
        # The first web server migrates the schema alone; then the rest start together.
        self.web[0].start()
        self.web[0].wait_healthy(ok=(200, 503))
        self.web[1].start()
        self.web[1].wait_healthy(ok=(200, 503))
        for w in self.workers:
            w.start()
        self.haproxy.start()
        deadline = time.monotonic() + 30
        while not self._lb_ready() and time.monotonic() < deadline:
            time.sleep(0.5)
        if not self._lb_ready():
            raise RuntimeError(f"haproxy has no healthy server; see {self.data_dir}")
        self._supervisor = threading.Thread(target=self._supervise, daemon=True)
        self._supervisor.start()

    def _lb_ready(self) -> bool:
        try:
            servers = self.lb_servers()
        except httpx.HTTPError:
            return False
        return len(servers) == 2 and all(s["status"] == "UP" for s in servers.values())

    def lb_servers(self) -> dict[str, dict[str, Any]]:
        r = httpx.get(f"http://127.0.0.1:{self.stats_port}/stats;csv", timeout=5)
        return haproxy_servers(r.text)

    def _supervise(self) -> None:
        """Start again any process that exited on its own (as systemd would)."""
        while not self._stop.wait(1.0):
            for s in self.services:
                if not s.lock.acquire(blocking=False):
                    continue  # being killed and restarted on purpose
                try:
                    if s.proc is not None and s.proc.poll() is not None and not self._stop.is_set():
                        s.exits.append({"at_utc": _iso(time.time()), "rc": s.proc.returncode})
                        print(f"  {s.name} exited ({s.proc.returncode}); starting it again")
                        s.start()
                finally:
                    s.lock.release()

    def kill_and_restart(self, s: Service) -> Fault:
        with s.lock:
            killed = time.time()
            s.signal(signal.SIGKILL)
            s.start()
        back = s.wait_healthy() if s.health_url else time.time()
        return Fault(s.name, "kill -9, restarted", killed, back, f"pid {s.pid}")

    def stop(self) -> None:
        self._stop.set()
        for s in [*self.workers, self.haproxy, *self.web, *self.stt]:
            with s.lock:
                s.stop()


def restart_postgres() -> Fault:
    """``pg_ctlcluster … restart`` of the one cluster there is; the time until it answers."""
    versions = sorted(os.listdir("/etc/postgresql"))
    cmd = ["pg_ctlcluster", "--skip-systemctl-redirect", versions[-1], "main", "restart"]
    at = time.time()
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    back = time.time()
    detail = " ".join(cmd) + (
        f" (rc {r.returncode}: {r.stderr.strip()[:200]})" if r.returncode else ""
    )
    return Fault("postgresql", "restart", at, back, detail)


# --- callers --------------------------------------------------------------------------------


class Twilio5xxRetryingClient(RetryingClient):
    """As the harness' client, and also posts again on a 5xx answer (haproxy's 502/503 while
    a server is gone or every server is marked down), as Twilio does with ``rp=all``."""

    def post(self, url: Any, **kwargs: Any) -> httpx.Response:
        deadline = time.monotonic() + self.retry_for_s
        while True:
            response = super().post(url, **kwargs)
            if response.status_code < 500 or time.monotonic() > deadline:
                return response
            self.retries += 1
            time.sleep(0.5)


@dataclass
class _ScaleDriver(_SharedMediaDriver):
    """Keeps the recording SIDs the caller posted, and calls ``on_assess`` as its first
    ``/twilio/assess`` goes out (after the caller's pause): the answer is being heard then."""

    posted: set[str] = field(default_factory=set)
    on_assess: Any = None
    _assessing: bool = False

    def post(self, url: str, extra: dict[str, str] | None = None) -> str:
        sid = (extra or {}).get("RecordingSid")
        if sid and "RecordingStatus" not in (extra or {}):
            self.posted.add(sid)
        self._assessing = url.split("?")[0].endswith(BUDGETED)
        return super().post(url, extra)

    def paced(self, pause: Any) -> None:
        pause()
        if self._assessing and self.on_assess is not None:
            self.on_assess()
            self.on_assess = None


@dataclass
class ScaleResult:
    call: CallResult
    posted: set[str]
    hangup_at: float | None


class ScaleCaller(Caller):
    """The harness' caller (one shared recording server), with the 5xx-retrying client, the
    posted recordings kept, the hang-up time, and given words stored through a database
    restart."""

    audio_assessing = threading.Event()
    """Set as an audio call asks for its answer to be heard in the call."""

    def give(self, recording_sid: str, text: str) -> None:
        from voicebot.service import give_words

        deadline = time.monotonic() + 90
        while True:
            try:
                with Session(self.engine) as session, session.begin():
                    give_words(session, recording_sid, text)
                return
            except DBAPIError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)

    def play_scaled(self, index: int, *, audio: bool) -> ScaleResult:
        import random

        pace = random.Random(index)
        sid = new_sid("CA")
        result = CallResult(sid, "audio" if audio else "words", time.time())
        self.media.calls[sid] = ("in-progress", None)
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
        client = Twilio5xxRetryingClient(timeout=60.0)
        driver = _ScaleDriver(
            base_url=self.url,
            auth_token=self.auth_token,
            media=self.media,
            call_params=params,
            audio=deque([self.audio_path] if audio and self.audio_path else []),
            digits=deque(DIGITS),
            given=deque([] if audio else [WORDS[index % len(WORDS)]]),
            give_transcript=self.give,
            client=client,
            tone_path=self.tone_path,
        )
        driver.on_assess = self.audio_assessing.set if audio else None
        driver.pause = lambda: driver.paced(lambda: time.sleep(pace.uniform(*self.think_s)))
        hangup_at = None
        try:
            driver.run("/twilio/voice")
            hangup_at = time.time()
            duration = str(max(1, round(hangup_at - result.started)))
            self.media.calls[sid] = ("completed", int(duration))
            driver.call_params["CallStatus"] = "completed"
            driver.post("/twilio/status", {"CallDuration": duration, "CallStatus": "completed"})
        except Exception as exc:
            result.error = f"{type(exc).__name__}: {exc}"[:300]
        finally:
            client.close()
        result.ended = time.time()
        result.outcome = driver.outcome
        result.retries = client.retries
        result.webhooks = driver.webhooks
        return ScaleResult(result, driver.posted, hangup_at)


# --- the run --------------------------------------------------------------------------------


def read_back(
    engine: Engine, sids: list[str]
) -> tuple[dict[str, dict[str, Any] | None], dict[str, str]]:
    """Each call's dialogue (decrypted by the engine's keyring) and every recording's state."""
    dialogues: dict[str, dict[str, Any] | None] = {}
    with Session(engine) as s:
        for i in range(0, len(sids), 200):
            chunk = sids[i : i + 200]
            for call_sid, dialogue in s.execute(
                select(Call.call_sid, Call.dialogue).where(Call.call_sid.in_(chunk))
            ):
                dialogues[call_sid] = dialogue
        recordings = {
            r: st for r, st in s.execute(select(Recording.recording_sid, Recording.state))
        }
    return dialogues, recordings


def figures(
    info: dict[str, Any],
    results: list[ScaleResult],
    states: dict[str, CaseState],
    dialogues: dict[str, dict[str, Any] | None],
    recordings: dict[str, str],
) -> dict[str, Any]:
    calls = [r.call for r in results]
    webhooks = [w for c in calls for w in c.webhooks]
    ready = [c for c in calls if states[c.call_sid].state == CallState.READY]
    hangup_to_ready = [
        states[r.call.call_sid].ready_at - r.hangup_at  # type: ignore[operator]
        for r in results
        if r.hangup_at is not None and states[r.call.call_sid].ready_at is not None
    ]
    by_mode: dict[str, dict[str, int]] = {}
    for mode in ("audio", "words"):
        sids = [c.call_sid for c in calls if c.mode == mode]
        by_mode[mode] = heard_in_budget({sid: dialogues.get(sid) for sid in sids})
    in_call = heard_in_budget({c.call_sid: dialogues.get(c.call_sid) for c in calls})
    return {
        **info,
        "calls_started": len(calls),
        "calls_with_audio": sum(1 for c in calls if c.mode == "audio"),
        "call_errors": sum(1 for c in calls if c.error),
        "call_error_examples": [c.error for c in calls if c.error][:5],
        "outcomes": dict(Counter(c.outcome for c in calls)),
        "webhook_retries": sum(c.retries for c in calls),
        "cases_ready": len(ready),
        "cases_failed": sum(1 for s in states.values() if s.state == CallState.FAILED),
        "cases_missing": sum(1 for s in states.values() if s.state is None),
        "cases_lost": len(calls) - len(ready),
        "not_ready_examples": {
            sid: s.state for sid, s in states.items() if s.state != CallState.READY
        },
        "duplicates": {},
        "recordings": lost_recordings({r.call.call_sid: r.posted for r in results}, recordings),
        "webhook_ms_all_but_assess": p50_p99([w.ms for w in webhooks if w.path != BUDGETED]),
        "webhook_ms_assess": p50_p99([w.ms for w in webhooks if w.path == BUDGETED]),
        "webhook_ms_all": p50_p99([w.ms for w in webhooks]),
        "hangup_to_ready_s": p50_p99(hangup_to_ready, digits=2),
        "in_call_heard_within_budget": in_call,
        "in_call_by_mode": by_mode,
    }


def table(f: dict[str, Any]) -> str:
    def pp(d: dict[str, Any], unit: str) -> str:
        if not d.get("count"):
            return "-"
        return f"{d['p50']} / {d['p99']} {unit} (max {d['max']}, n={d['count']})"

    ic, au = f["in_call_heard_within_budget"], f["in_call_by_mode"]["audio"]
    rows = [
        ("result", "PASSED" if f["passed"] else "FAILED"),
        ("topology", f["topology"]),
        ("extra settings", ", ".join(f.get("settings") or []) or "none (defaults)"),
        ("machine load (1-min mean)", f"{f['load_1min_mean']} on {f['cpus']} CPUs"),
        (
            "calls started / played to the end",
            f"{f['calls_spawned']} / {f['calls_started']} "
            f"({f['calls_with_audio']} with real audio)",
        ),
        ("call errors", str(f["call_errors"])),
        ("cases on the worklist (READY)", str(f["cases_ready"])),
        ("cases lost (missing / not READY)", f"{f['cases_lost']} ({f['cases_missing']} missing)"),
        ("duplicated rows", ", ".join(f"{k} {v}" for k, v in f["duplicates"].items())),
        (
            "lost recordings",
            f"{f['recordings']['lost']} of {f['recordings']['posted']} posted",
        ),
        ("webhook p50 / p99 (not /assess)", pp(f["webhook_ms_all_but_assess"], "ms")),
        ("/twilio/assess p50 / p99", pp(f["webhook_ms_assess"], "ms")),
        ("hang-up -> worklist p50 / p99", pp(f["hangup_to_ready_s"], "s")),
        (
            "in-call answers heard in budget",
            f"{ic['heard_within_budget']} of {ic['assessed']} assessed "
            f"(audio: {au['heard_within_budget']} of {au['assessed']})",
        ),
        ("webhooks posted again", str(f["webhook_retries"])),
        ("call outcomes", ", ".join(f"{k} {v}" for k, v in f["outcomes"].items())),
    ]
    for fault in f["faults"]:
        back = f"back in {fault['back_in_s']} s" if fault["back_in_s"] is not None else ""
        rows.append((f"fault: {fault['target']}", f"{fault['action']} {back}".strip()))
    for name, s in f.get("haproxy", {}).items():
        rows.append(
            (
                f"haproxy {name}",
                f"{s['requests']} requests, marked down {s['marked_down']}x, "
                f"retried {s['retried']}, redispatched {s['redispatched']}",
            )
        )
    rows.append(("app logs", ", ".join(f"{k} {v}" for k, v in f["app_log_counts"].items())))
    for name, exits in f["unexpected_exits"].items():
        rows.append((f"exited on its own: {name}", str(exits)))
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k.ljust(width)}  {v}" for k, v in rows)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m esitieto.bench.scale", description=__doc__)
    ap.add_argument("--calls", type=int, default=200)
    ap.add_argument("--call-every-s", type=float, default=3.0, help="a call starts this often")
    ap.add_argument("--audio-every", type=int, default=5, help="every Nth call speaks audio")
    ap.add_argument("--budget-s", type=float, default=8.0, help="the in-call budget")
    ap.add_argument(
        "--faults",
        type=float,
        nargs=4,
        default=(0.2, 0.35, 0.5, 0.65),
        metavar=("WORKER", "STT", "WEB", "PG"),
        help="shares of the calls started at which each fault happens",
    )
    ap.add_argument("--no-pg-restart", action="store_true", help="leave PostgreSQL alone")
    ap.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="ESITIETO_KEY=VALUE",
        help="another setting for every process, e.g. ESITIETO_WORKER__ENGINE=procrastinate",
    )
    ap.add_argument("--database-url", default=DEFAULT_DATABASE_URL)
    ap.add_argument("--data-dir", type=Path, default=None)
    ap.add_argument("--out", type=Path, default=None, help="also write the result JSON here")
    ap.add_argument("--wait-s", type=float, default=600.0, help="for the cases at the end")
    args = ap.parse_args(argv)
    if shutil.which("haproxy") is None:
        print(
            "scale: haproxy is needed: apt-get update && apt-get install -y haproxy",
            file=sys.stderr,
        )
        return 2
    if args.database_url.rsplit("/", 1)[-1].split("?")[0] == "test":
        print("scale: the database 'test' belongs to the test suite", file=sys.stderr)
        return 2

    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    data_dir: Path = args.data_dir or Path(tempfile.mkdtemp(prefix=f"esitieto-scale-{stamp}-"))
    data_dir.mkdir(parents=True, exist_ok=True)
    print(f"scale: data dir {data_dir}", flush=True)

    def _term(*_: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _term)

    token = secrets.token_hex(16)
    key_spec = new_key_spec()
    media = RecordingServer(ACCOUNT_SID, token)
    base_env = {k: v for k, v in os.environ.items() if not k.startswith("ESITIETO_")}
    base_env.update(
        ESITIETO_DATA_DIR=str(data_dir),
        ESITIETO_LOG_LEVEL="INFO",
        ESITIETO_ASR__CPU_THREADS="1",
        ESITIETO_DETECTOR__THREADS="1",
        ESITIETO_DEMO__ENABLED="true",
        ESITIETO_DEMO__NURSE_PASSWORD=secrets.token_urlsafe(16),
        ESITIETO_TWILIO__ALLOW_LOCAL_RECORDINGS="true",
        ESITIETO_ENCRYPTION__KEYS=key_spec,
        ESITIETO_VOICEBOT__IN_CALL_BUDGET_S=str(args.budget_s),
        ESITIETO_TWILIO__ACCOUNT_SID=media.account_sid,
        ESITIETO_TWILIO__AUTH_TOKEN=token,
        ESITIETO_TWILIO__API_BASE_URL=media.base,
    )
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep or not key.startswith("ESITIETO_"):
            print(f"scale: --set wants ESITIETO_KEY=VALUE, not {item!r}", file=sys.stderr)
            return 2
        base_env[key] = value
    cluster = Cluster(data_dir, args.database_url, base_env, secrets.token_hex(STT_KEY_BYTES))
    engine = make_engine(args.database_url, key_spec)
    spawner = Spawner()
    scaled: list[ScaleResult] = []
    scaled_lock = threading.Lock()
    faults: list[Fault] = []
    fault_threads: list[threading.Thread] = []
    info: dict[str, Any] = {
        "started_utc": stamp,
        "database": args.database_url.split("@")[-1],
        "data_dir": str(data_dir),
        "topology": "processes on 127.0.0.1 (no network namespaces): haproxy -> 2 serve, "
        "2 worker, 2 stt-serve, PostgreSQL",
        "calls_planned": args.calls,
        "call_every_s": args.call_every_s,
        "audio_every": args.audio_every,
        "in_call_budget_s": args.budget_s,
        "fault_shares": dict(zip(("worker", "stt", "web", "pg"), args.faults, strict=True)),
        "pg_restart": not args.no_pg_restart,
        "settings": sorted(args.set),
    }

    load: list[float] = []
    sampling = threading.Event()

    def sample_load() -> None:
        while not sampling.wait(10.0):
            load.append(os.getloadavg()[0])

    threading.Thread(target=sample_load, daemon=True).start()

    def fault(kind: str) -> None:
        try:
            if kind == "worker":
                faults.append(cluster.kill_and_restart(busier(cluster.workers)))
            elif kind == "web":
                faults.append(cluster.kill_and_restart(busier(cluster.web)))
            elif kind == "stt":
                ScaleCaller.audio_assessing.clear()
                heard = ScaleCaller.audio_assessing.wait(60)
                time.sleep(0.3)  # fetched and trimmed; now it is being heard
                f = cluster.kill_and_restart(busier(cluster.stt))
                f.detail += " (while an audio answer was heard)" if heard else ""
                faults.append(f)
            elif kind == "pg":
                faults.append(restart_postgres())
            print(f"  fault: {faults[-1].as_dict()}", flush=True)
        except Exception as exc:  # reported, the run goes on
            faults.append(Fault(kind, "failed", time.time(), None, repr(exc)[:300]))
            print(f"  fault {kind} failed: {exc!r}", flush=True)

    try:
        cluster.start()
        print(f"scale: haproxy {cluster.url}, {cluster.lb_servers()}", flush=True)
        to_number = open_station_all_day(engine)
        audio = synth_phone_audio(SPOKEN, data_dir / "caller.wav") if args.audio_every else None
        tone_path = tone(data_dir / "tone.wav")
        with media:
            caller = ScaleCaller(
                url=cluster.url,
                auth_token=token,
                to_number=to_number,
                media=media,
                engine=engine,
                tone_path=tone_path,
                audio_path=audio,
            )
            warm = [caller.play_scaled(0, audio=False)]
            if audio is not None:
                warm.append(caller.play_scaled(0, audio=True))
            warm_states = wait_until_ready(engine, [w.call.call_sid for w in warm], 180)
            for w in warm:
                if w.call.error or warm_states[w.call.call_sid].state != CallState.READY:
                    state = warm_states[w.call.call_sid].state
                    raise RuntimeError(f"a warm-up call failed: {w.call.error or state}")
            print("scale: warm-up calls READY; playing", flush=True)

            plan = {
                int(args.calls * share): kind
                for kind, share in zip(("worker", "stt", "web", "pg"), args.faults, strict=True)
                if not (kind == "pg" and args.no_pg_restart)
            }
            t0 = time.time()
            for i in range(args.calls):
                time.sleep(max(0.0, t0 + i * args.call_every_s - time.time()))
                if i in plan:
                    t = threading.Thread(target=fault, args=(plan[i],), daemon=True)
                    t.start()
                    fault_threads.append(t)
                speak = audio is not None and args.audio_every > 0 and i % args.audio_every == 0

                def play(index: int = i + 1, speak: bool = speak) -> CallResult:
                    r = caller.play_scaled(index, audio=speak)
                    with scaled_lock:
                        scaled.append(r)
                    return r.call

                spawner.start(play)
                if (i + 1) % 25 == 0:
                    print(f"  {i + 1} calls started, {len(scaled)} played", flush=True)
            spawner.join(900)
            for t in fault_threads:
                t.join(300)
            print(f"scale: {len(scaled)} calls played; waiting for the cases", flush=True)
            sids = [r.call.call_sid for r in scaled]
            states = wait_until_ready(engine, sids, args.wait_s)
            lb = cluster.lb_servers()
    except KeyboardInterrupt:
        print("scale: interrupted", flush=True)
        cluster.stop()
        return 1
    finally:
        cluster.stop()

    sampling.set()
    info["load_1min_mean"] = round(sum(load) / len(load), 2) if load else None
    info["cpus"] = os.cpu_count()
    info["calls_spawned"] = len(spawner._threads)
    dialogues, recordings = read_back(engine, sids)
    info["finished_utc"] = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    f = figures(info, scaled, states, dialogues, recordings)
    f["not_ready_examples"] = dict(list(f["not_ready_examples"].items())[:10])
    f["duplicates"] = duplicates(engine, sids)
    f["jobs"] = job_summary(engine)
    f["faults"] = [x.as_dict() for x in faults]
    f["haproxy"] = lb
    f["process_starts"] = {s.name: s.starts for s in cluster.services}
    f["unexpected_exits"] = {s.name: s.exits for s in cluster.services if s.exits}
    f["app_log_counts"] = log_counts(
        [s.log_path.read_text(errors="replace") for s in [*cluster.web, *cluster.workers]]
    )
    f["passed"] = verdict(f)
    engine.dispose()
    write_calls(data_dir, scaled, states, dialogues)
    text = json.dumps(f, indent=1)
    (data_dir / "scale-result.json").write_text(text)
    if args.out:
        args.out.write_text(text)
    print(table(f), flush=True)
    print(f"scale: result in {data_dir / 'scale-result.json'}", flush=True)
    return 0 if f["passed"] else 1


def write_calls(
    data_dir: Path,
    results: list[ScaleResult],
    states: dict[str, CaseState],
    dialogues: dict[str, dict[str, Any] | None],
) -> None:
    """``calls.csv`` (one row a call) and ``webhooks.csv`` (one row a webhook, client-side)."""
    with (data_dir / "calls.csv").open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(
            ["call_sid", "mode", "started_utc", "hangup_utc", "ready_utc", "state", "outcome",
             "assessed", "heard_in_budget", "assess_ms_max", "recordings_posted", "retries",
             "error"]
        )  # fmt: skip
        for r in results:
            st = states[r.call.call_sid]
            d = dialogues.get(r.call.call_sid) or {}
            assess = [x.ms for x in r.call.webhooks if x.path == BUDGETED]
            w.writerow(
                [r.call.call_sid, r.call.mode, _iso(r.call.started), _iso(r.hangup_at),
                 _iso(st.ready_at), st.state, r.call.outcome, bool(d.get("assessed")),
                 d.get("heard") is not None, round(max(assess), 1) if assess else "",
                 len(r.posted), r.call.retries, r.call.error or ""]
            )  # fmt: skip
    with (data_dir / "webhooks.csv").open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["call_sid", "path", "answered_utc", "ms"])
        for r in results:
            for x in r.call.webhooks:
                w.writerow([x.call_sid, x.path, _iso(x.at), round(x.ms, 1)])


if __name__ == "__main__":
    sys.exit(main())
