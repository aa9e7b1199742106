"""``esitieto bench voicebot``: webhook latency with many simulated calls in flight.

``esitieto serve`` runs in its own process on a fresh data directory (SQLite, no worker, so
the after-call pipeline does not compete); N simulated callers, each in a thread, play whole
calls through the real, signed webhooks at the same time: language menu, emergency question,
identity skipped, a spoken answer, the follow-ups and the outcome. Callers are paced as on a
real line: calls start over a few seconds, and between webhooks the caller listens to a prompt
(0.5-2 s), so all calls are in flight at once while each behaves like a person. One warm-up
call runs first. Every request is timed on the client; the budgeted in-call assessment
(``/twilio/assess``) is reported apart.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from voicebot.simulator import TWILIO_API_VERSION, CallDriver, RecordingServer, new_sid

BUDGETED = "/twilio/assess"
SCRIPT = "Minulla on ollut kuumetta ja yskää kaksi päivää."
DIGITS = ["1", "2", "#", "1", "1", "1", "1", "1", "1"]
THINK_S = (0.5, 2.0)
"""Seconds a caller listens to a prompt before the next webhook."""
RAMP_S = 5.0
"""Calls start within this many seconds of each other."""


@dataclass(frozen=True)
class PathFigures:
    path: str
    count: int
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]


def figures(timings: list[tuple[str, float]]) -> list[PathFigures]:
    by_path: dict[str, list[float]] = {}
    for path, seconds in timings:
        by_path.setdefault(path, []).append(seconds * 1000)
    rows = [
        PathFigures(
            path,
            len(v),
            round(statistics.median(v), 1),
            round(_percentile(v, 0.95), 1),
            round(_percentile(v, 0.99), 1),
            round(max(v), 1),
        )
        for path, v in sorted(by_path.items())
    ]
    other = [s for p, s in timings if p != BUDGETED]
    if other:
        ms = [s * 1000 for s in other]
        rows.append(
            PathFigures(
                "all but /twilio/assess",
                len(ms),
                round(statistics.median(ms), 1),
                round(_percentile(ms, 0.95), 1),
                round(_percentile(ms, 0.99), 1),
                round(max(ms), 1),
            )
        )
    return rows


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _serve(data_dir: Path, env: dict[str, str]) -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    log = (data_dir / "serve.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "esitieto.cli", "serve", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while True:
        try:
            if httpx.get(f"{url}/healthz", timeout=2).status_code in (200, 503):
                return proc, url
        except httpx.HTTPError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.terminate()
            raise RuntimeError("the app did not start; see " + str(data_dir / "serve.log"))
        time.sleep(0.2)


def _stt_servers(count: int, data_dir: Path, env: dict[str, str]) -> list[tuple[Any, str]]:
    """``count`` ``esitieto stt-serve`` processes sharing the machine's cores."""
    threads = str(max(1, (os.cpu_count() or 1) // count))
    servers = []
    for i in range(count):
        port = _free_port()
        log = (data_dir / f"stt-{i}.log").open("w")
        proc = subprocess.Popen(
            [sys.executable, "-m", "esitieto.cli", "stt-serve", "--port", str(port)],
            env={**env, "ESITIETO_ASR__CPU_THREADS": threads},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        servers.append((proc, f"http://127.0.0.1:{port}"))
    for proc, url in servers:
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"stt-serve did not start; see {data_dir}")
            time.sleep(0.2)
    return servers


def _heard_in_budget(data_dir: Path, database_url: str) -> tuple[int, int]:
    """(calls whose answer was heard within the in-call budget, calls assessed), the warm-up
    call (the first) left out."""
    from sqlalchemy import select

    from esitieto.db import Database
    from esitieto.settings import Settings
    from models import Call

    db = Database(database_url, keyring=Settings(data_dir=data_dir).keyring)
    try:
        with db.session() as s:
            in_order = select(Call.dialogue).order_by(Call.started_at)
            dialogues = [d or {} for d in s.scalars(in_order)][1:]
    finally:
        db.dispose()
    assessed = [d for d in dialogues if d.get("assessed")]
    return sum(1 for d in assessed if d.get("heard") is not None), len(assessed)


def run(
    calls: int = 50,
    *,
    budget_s: float = 8.0,
    database_url: str | None = None,
    stt_servers: int = 0,
) -> dict[str, Any]:
    """Play ``calls`` simultaneous calls; per-webhook latency figures, and how many in-call
    answers were heard within the budget (``stt_servers``: that many ``stt-serve`` processes
    do the transcription; 0: the web process itself)."""
    from sqlalchemy import create_engine, text

    with tempfile.TemporaryDirectory(prefix="esitieto-bench-") as tmp:
        data_dir = Path(tmp)
        env = {k: v for k, v in os.environ.items() if not k.startswith("ESITIETO_")}
        env.update(
            ESITIETO_DATA_DIR=str(data_dir),
            ESITIETO_WORKER__MODE="external",
            ESITIETO_DATABASE__URL=database_url or f"sqlite:///{data_dir / 'esitieto.sqlite3'}",
            ESITIETO_VOICEBOT__IN_CALL_BUDGET_S=str(budget_s),
            ESITIETO_LOG_LEVEL="WARNING",
            ESITIETO_TWILIO__ALLOW_LOCAL_RECORDINGS="true",  # the simulator's recordings
            ESITIETO_DEMO__ENABLED="true",  # the demo station takes the calls
            ESITIETO_ASR__CPU_THREADS=os.environ.get("ESITIETO_ASR__CPU_THREADS", "1"),
        )
        audio = _synth(data_dir / "caller.wav")
        servers: list[tuple[Any, str]] = []
        if stt_servers:
            stt_env = {**env, "ESITIETO_ASR__REMOTE_API_KEY": "bench-stt-key"}
            servers = _stt_servers(stt_servers, data_dir, stt_env)
            env.update(
                ESITIETO_ASR__ENGINE="remote",
                ESITIETO_ASR__REMOTE_URLS=json.dumps([u for _, u in servers]),
                ESITIETO_ASR__REMOTE_API_KEY="bench-stt-key",
                ESITIETO_ASR__REMOTE_TIMEOUT_S=str(budget_s),
            )
        proc, url = _serve(data_dir, env)
        try:
            db = create_engine(env["ESITIETO_DATABASE__URL"])
            with db.begin() as conn:  # the nurses are in: every branch is reachable
                conn.execute(
                    text("UPDATE stations SET opening_hours = :h"),
                    {"h": '{"mon-sun": "00:00-24:00"}'},
                )
                to_number = conn.execute(text("SELECT phone_number FROM stations")).scalar_one()
            db.dispose()
            secrets = json.loads((data_dir / "secrets.json").read_text())
            token = secrets["twilio_auth_token"]
            timings: list[tuple[str, float]] = []
            errors: list[str] = []
            job = (url, token, to_number, str(audio))
            _callers(job, [calls], 0.0, record=False)  # warm-up: model loaded, caches filled
            groups = [list(range(calls))[i::CLIENT_PROCESSES] for i in range(CLIENT_PROCESSES)]
            ctx = mp.get_context("spawn")
            with ctx.Pool(CLIENT_PROCESSES) as pool:
                # every client process is up and imported before the first call starts
                pool.map(time.sleep, [0.1] * CLIENT_PROCESSES)
                start_at = time.time() + 1.0
                started = time.monotonic()
                results = pool.starmap(_callers, [(job, g, start_at) for g in groups if g])
            for got_timings, got_errors in results:
                timings.extend(got_timings)
                errors.extend(got_errors)
            wall = time.monotonic() - started
            heard, assessed = _heard_in_budget(data_dir, env["ESITIETO_DATABASE__URL"])
        finally:
            proc.terminate()
            proc.wait(timeout=30)
            for server, _ in servers:
                server.terminate()
                server.wait(timeout=30)
    rows = figures(timings)
    return {
        "calls": calls,
        "stt_servers": stt_servers,
        "in_call_heard_within_budget": heard,
        "in_call_assessed": assessed,
        "requests": len(timings),
        "errors": errors[:5],
        "error_count": len(errors),
        "wall_s": round(wall, 1),
        "paths": [r.__dict__ for r in rows],
    }


CLIENT_PROCESSES = 5
"""The simulated callers run in several processes, so the client's own interpreter lock does
not add to the latencies it measures."""


def _callers(
    job: tuple[str, str, str, str], indices: list[int], start_at: float, *, record: bool = True
) -> tuple[list[tuple[str, float]], list[str]]:
    """Play calls ``indices`` at once (threads), paced like people, from ``start_at`` (wall
    clock, shared by all client processes); their timings."""
    url, token, to_number, audio = job
    time.sleep(max(0.0, start_at - time.time()))
    timings: list[tuple[str, float]] = []
    errors: list[str] = []
    lock = threading.Lock()

    def caller(i: int) -> None:
        pace = random.Random(i)
        params = {
            "CallSid": new_sid("CA"),
            "AccountSid": "AC00000000000000000000000000000000",
            "From": f"+35840{i:07d}",
            "To": to_number,
            "Called": to_number,
            "Direction": "inbound",
            "ApiVersion": TWILIO_API_VERSION,
            "CallStatus": "in-progress",
        }
        with RecordingServer(params["AccountSid"], token) as media:
            driver = CallDriver(
                base_url=url,
                auth_token=token,
                media=media,
                call_params=params,
                audio=deque([Path(audio)]),
                digits=deque(DIGITS),
            )
            driver.pause = lambda: time.sleep(pace.uniform(*THINK_S))
            time.sleep(pace.uniform(0, RAMP_S) if record else 0)
            try:
                driver.run("/twilio/voice")
                driver.call_params["CallStatus"] = "completed"
                driver.post("/twilio/status", {"CallStatus": "completed"})
            except Exception as exc:
                with lock:
                    errors.append(f"{type(exc).__name__}: {exc}")
            if record:
                with lock:
                    timings.extend(driver.timings)

    threads = [threading.Thread(target=caller, args=(i,)) for i in indices]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return timings, errors


def _synth(out: Path) -> Path:
    wide = out.with_suffix(".22k.wav")
    subprocess.run(["espeak-ng", "-v", "fi", "-w", str(wide), SCRIPT], check=True)
    subprocess.run(
        ["sox", "-R", str(wide), "-r", "8000", "-c", "1", "-e", "u-law", str(out)], check=True
    )
    return out


def table(result: dict[str, Any]) -> str:
    lines = [
        "| webhook | requests | p50 ms | p95 ms | p99 ms | max ms |",
        "|---|---|---|---|---|---|",
    ]
    for r in result["paths"]:
        lines.append(
            f"| {r['path']} | {r['count']} | {r['p50_ms']} | {r['p95_ms']} | "
            f"{r['p99_ms']} | {r['max_ms']} |"
        )
    return "\n".join(lines)
