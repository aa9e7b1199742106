"""The fault run: simulated calls while the job worker is killed with SIGKILL at random
points (and restarted at once), the web server is killed once (and restarted), and one or
more calls lose their final status callback; afterwards every call must be one READY case,
nothing stored twice, each case ready soon after the restart that followed its last kill.

``python -m esitieto.bench.faults [--calls 120] [--kills 100]`` (``scripts/faults.sh``).

Set-up: ``esitieto serve`` with ``ESITIETO_WORKER__MODE=external`` and one ``esitieto
worker``, child processes of this one, on a throwaway data dir and the database given
(``scripts/faults.sh`` makes a PostgreSQL database of its own). One recording server plays
Twilio for every call: it serves the recordings and answers the Calls API, which the worker
asks about calls still in progress (``ESITIETO_TWILIO__API_BASE_URL``), so a call whose
final ``completed`` callback never reaches the server is still ended by reconciliation.

Callers: most answer with given words (a tone served as the recording, the words stored for
it, as ``simulate-call --as-heard`` does), every ``--audio-every``-th speaks real audio
(espeak-ng, 8 kHz μ-law) heard by the configured Whisper model. A webhook that cannot reach
the server, or whose connection drops, is posted again (Twilio's retrying connection
policy), so the web server's kill also tests that a repeated webhook changes nothing.

The worker is killed ``--kills`` times at least, each ``--kill-delay`` seconds (uniform)
after its previous restart, while calls are played and afterwards until the count is
reached; then it runs undisturbed and the run waits for every case. Figures: calls played,
cases READY, lost (no case, or not READY), duplicated rows, and for every case the time from
the restart that followed its last kill to READY (required: within 60 s). Only synthetic
callers and words are used.
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import secrets
import signal
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from esitieto.bench.harness import (
    ACCOUNT_SID,
    SPOKEN,
    Caller,
    CallResult,
    CaseState,
    Spawner,
    Stack,
    duplicates,
    job_summary,
    make_engine,
    new_key_spec,
    open_station_all_day,
    settings_given,
    synth_phone_audio,
    tone,
    twilio_env,
    wait_until_ready,
)
from models import CallState
from voicebot.simulator import RecordingServer

DEFAULT_DATABASE_URL = "postgresql+psycopg://postgres@127.0.0.1/faults"
READY_WITHIN_S = 60.0


@dataclass(frozen=True)
class Kill:
    """One SIGKILL and the restart that followed it (wall times)."""

    target: str
    """``worker`` or ``serve``."""
    killed_at: float
    restarted_at: float
    up_at: float | None = None
    """When the restarted web server answered again (``serve`` only)."""


@dataclass(frozen=True)
class CaseTiming:
    call_sid: str
    kills_during: int
    """Worker kills between the call's start and its case being READY."""
    last_kill_at: float | None
    ready_after_restart_s: float | None
    """From the restart that followed the case's last worker kill to READY; None when no
    kill fell in the case's life (or it never became READY)."""
    hangup_to_ready_s: float | None


def case_timing(
    started: float, ready_at: float | None, ended_at: float | None, kills: list[Kill]
) -> tuple[int, float | None, float | None, float | None]:
    """(kills during the case, the last kill's time, READY after the restart that followed
    that kill, hang-up to READY), from wall times: the call's start, its case READY, the
    caller's hang-up. A case not READY counts every kill after its start."""
    end = ready_at if ready_at is not None else float("inf")
    during = [k for k in kills if k.target == "worker" and started <= k.killed_at < end]
    hangup = ready_at - ended_at if ready_at is not None and ended_at is not None else None
    if not during:
        return 0, None, None, hangup
    last = max(during, key=lambda k: k.killed_at)
    after = ready_at - last.restarted_at if ready_at is not None else None
    return len(during), last.killed_at, after, hangup


def time_figures(values: list[float]) -> dict[str, Any]:
    if not values:
        return {"count": 0}
    ordered = sorted(values)
    return {
        "count": len(ordered),
        "median_s": round(ordered[len(ordered) // 2], 2),
        "max_s": round(ordered[-1], 2),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m esitieto.bench.faults", description=__doc__)
    ap.add_argument("--calls", type=int, default=120)
    ap.add_argument("--kills", type=int, default=100, help="worker SIGKILLs, at least")
    ap.add_argument("--call-every-s", type=float, default=6.0, help="a call starts this often")
    ap.add_argument(
        "--kill-delay",
        type=float,
        nargs=2,
        default=(0.5, 14.0),
        metavar=("MIN", "MAX"),
        help="seconds from a worker's restart to its next kill (uniform)",
    )
    ap.add_argument("--audio-every", type=int, default=5, help="every Nth call speaks audio")
    ap.add_argument(
        "--lose-final",
        type=int,
        nargs="*",
        default=None,
        help="indices of calls whose final status callback is lost (default: two)",
    )
    ap.add_argument("--serve-kill-at", type=float, default=0.4, help="share of calls started")
    ap.add_argument("--reconcile-every-s", type=float, default=30.0)
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--database-url", default=DEFAULT_DATABASE_URL)
    ap.add_argument("--data-dir", type=Path, default=None)
    ap.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="ESITIETO_NAME=VALUE",
        help="a setting for serve and worker (e.g. ESITIETO_WORKER__ENGINE=procrastinate)",
    )
    ap.add_argument("--wait-s", type=float, default=400.0, help="for the cases at the end")
    args = ap.parse_args(argv)

    seed = args.seed if args.seed is not None else secrets.randbelow(2**31)
    rng = random.Random(seed)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    data_dir: Path = args.data_dir or Path(tempfile.mkdtemp(prefix=f"esitieto-faults-{stamp}-"))
    data_dir.mkdir(parents=True, exist_ok=True)
    lose_final = set(
        args.lose_final if args.lose_final is not None else [3, max(4, args.calls * 3 // 5)]
    )
    print(f"faults: data dir {data_dir}, seed {seed}", flush=True)

    def _term(*_: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _term)

    token = secrets.token_hex(16)
    key_spec = new_key_spec()
    media = RecordingServer(ACCOUNT_SID, token)
    stack = Stack(
        data_dir,
        args.database_url,
        {
            "ESITIETO_LOG_LEVEL": "INFO",
            "ESITIETO_DEMO__NURSE_PASSWORD": secrets.token_urlsafe(16),
            "ESITIETO_WORKER__RECONCILE_EVERY_S": str(args.reconcile_every_s),
            "ESITIETO_ENCRYPTION__KEYS": key_spec,
            **twilio_env(media, token),
            **settings_given(args.set),
        },
    )
    engine = make_engine(args.database_url, key_spec)
    spawner = Spawner()
    kills: list[Kill] = []
    kills_lock = threading.Lock()
    calls_done = threading.Event()
    stop_killing = threading.Event()
    info: dict[str, Any] = {
        "started_utc": stamp,
        "seed": seed,
        "database": args.database_url.split("@")[-1],
        "data_dir": str(data_dir),
        "calls_planned": args.calls,
        "kills_planned": args.kills,
        "kill_delay_s": list(args.kill_delay),
        "call_every_s": args.call_every_s,
        "lose_final_indices": sorted(lose_final),
    }

    def killer() -> None:
        """SIGKILL the worker at random points and restart it at once."""
        while not stop_killing.is_set():
            if stop_killing.wait(rng.uniform(*args.kill_delay)):
                return
            with kills_lock:
                killed = time.time()
                stack.kill_worker(signal.SIGKILL)
                restarted = stack.start_worker()
                kills.append(Kill("worker", killed, restarted))
                worker_kills = sum(1 for k in kills if k.target == "worker")
            if worker_kills % 10 == 0:
                print(
                    f"  {worker_kills} worker kills, {len(spawner.results)} calls played",
                    flush=True,
                )
            if calls_done.is_set() and worker_kills >= args.kills:
                return

    try:
        stack.start_serve()
        to_number = open_station_all_day(engine)
        stack.start_worker()
        audio = synth_phone_audio(SPOKEN, data_dir / "caller.wav") if args.audio_every else None
        tone_path = tone(data_dir / "tone.wav")
        with media:
            caller = Caller(
                url=stack.url,
                auth_token=token,
                to_number=to_number,
                media=media,
                engine=engine,
                tone_path=tone_path,
                audio_path=audio,
            )
            warm = caller.play(0, audio=False)  # not counted: the stack works at all
            warm_state = wait_until_ready(engine, [warm.call_sid], 120)[warm.call_sid]
            if warm.error or warm_state.state != CallState.READY:
                raise RuntimeError(f"the warm-up call failed: {warm.error or warm_state.state}")

            kill_thread = threading.Thread(target=killer, daemon=True)
            t0 = time.time()
            kill_thread.start()
            serve_kill_index = int(args.calls * args.serve_kill_at)
            for i in range(args.calls):
                time.sleep(max(0.0, t0 + i * args.call_every_s - time.time()))
                if i == serve_kill_index:
                    killed = time.time()
                    stack.kill_serve(signal.SIGKILL)
                    restarted = time.time()
                    up = stack.start_serve()
                    with kills_lock:
                        kills.append(Kill("serve", killed, restarted, up))
                    print(f"  web server killed and back in {up - killed:.1f}s", flush=True)
                index = i + 1
                speak = audio is not None and args.audio_every > 0 and i % args.audio_every == 0

                def play(
                    index: int = index, speak: bool = speak, final: bool = i not in lose_final
                ) -> CallResult:
                    return caller.play(index, audio=speak, final_status=final)

                spawner.start(play)
            spawner.join(900)
            calls_done.set()
            print(f"  all {len(spawner.results)} calls played; killing on", flush=True)
            while kill_thread.is_alive():
                kill_thread.join(1)
            stop_killing.set()
            last_restart = max(k.restarted_at for k in kills) if kills else t0
            print(
                f"  kills done ({len(kills)}); waiting for the cases (up to {args.wait_s:.0f}s)",
                flush=True,
            )
            sids = [r.call_sid for r in spawner.results]
            states = wait_until_ready(engine, sids, args.wait_s)
            waited_s = time.time() - last_restart
    except KeyboardInterrupt:
        stop_killing.set()
        print("faults: interrupted", flush=True)
        stack.stop()
        return 1
    finally:
        stop_killing.set()
        with kills_lock:
            stack.stop()

    info["finished_utc"] = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    figures = evaluate(info, spawner.results, states, kills, last_restart, waited_s)
    figures["duplicated"] = duplicates(engine, sids)
    figures["jobs"] = job_summary(engine)
    figures["pids_started"] = len(stack.pids)
    engine.dispose()
    write_files(data_dir, spawner.results, states, kills)
    (data_dir / "faults-result.json").write_text(json.dumps(figures, indent=1))
    print(json.dumps(figures, indent=1), flush=True)
    print(report(figures), flush=True)
    return 0 if figures["passed"] else 1


def evaluate(
    info: dict[str, Any],
    results: list[CallResult],
    states: dict[str, CaseState],
    kills: list[Kill],
    last_restart: float,
    waited_s: float,
) -> dict[str, Any]:
    worker_kills = [k for k in kills if k.target == "worker"]
    serve_kills = [k for k in kills if k.target == "serve"]
    timings: list[CaseTiming] = []
    by_sid = {r.call_sid: r for r in results}
    for sid, st in states.items():
        r = by_sid[sid]
        n, last, since, hangup = case_timing(r.started, st.ready_at, r.ended, worker_kills)
        timings.append(CaseTiming(sid, n, last, since, hangup))
    lost_final = [r.call_sid for r in results if not r.final_status_sent]
    normal = [t for t in timings if t.call_sid not in lost_final]
    after = [t.ready_after_restart_s for t in normal if t.ready_after_restart_s is not None]
    over = [t.call_sid for t in normal if (t.ready_after_restart_s or 0.0) > READY_WITHIN_S]
    ready = sum(1 for s in states.values() if s.state == CallState.READY)
    failed = sum(1 for s in states.values() if s.state == CallState.FAILED)
    not_ready = {sid: s.state for sid, s in states.items() if s.state != CallState.READY}
    serve_affected = []
    for k in serve_kills:
        for r in results:
            if r.started <= k.killed_at <= r.ended:
                st = states[r.call_sid]
                serve_affected.append(
                    {
                        "state": st.state,
                        "error": r.error,
                        "retries": r.retries,
                        "ready_after_serve_up_s": round(st.ready_at - (k.up_at or 0.0), 2)
                        if st.ready_at
                        else None,
                    }
                )
    lost_final_cases = [
        {
            "state": states[sid].state,
            "hangup_to_ready_s": round(t.hangup_to_ready_s, 1)
            if t.hangup_to_ready_s is not None
            else None,
        }
        for sid in lost_final
        for t in timings
        if t.call_sid == sid
    ]
    untouched = [t.hangup_to_ready_s for t in normal if t.kills_during == 0 and t.hangup_to_ready_s]
    figures = {
        **info,
        "calls": len(results),
        "calls_with_audio": sum(1 for r in results if r.mode == "audio"),
        "call_errors": sum(1 for r in results if r.error),
        "call_error_examples": [r.error for r in results if r.error][:5],
        "webhook_retries": sum(r.retries for r in results),
        "worker_kills": len(worker_kills),
        "serve_kills": len(serve_kills),
        "serve_back_in_s": [round((k.up_at or 0) - k.killed_at, 2) for k in serve_kills],
        "cases_ready": ready,
        "cases_failed": failed,
        "lost": len(results) - ready,
        "not_ready": dict(list(not_ready.items())[:10]),
        "cases_hit_by_kills": sum(1 for t in normal if t.kills_during),
        "kills_per_case_max": max((t.kills_during for t in timings), default=0),
        "ready_after_restart": time_figures(after),
        "ready_after_restart_over_60s": len(over),
        "hangup_to_ready_untouched": time_figures([u for u in untouched if u is not None]),
        "hangup_to_ready_all": time_figures(
            [t.hangup_to_ready_s for t in normal if t.hangup_to_ready_s is not None]
        ),
        "serve_kill_calls_in_flight": serve_affected,
        "lost_final_callback": lost_final_cases,
        "waited_after_last_restart_s": round(waited_s, 1),
        "last_restart_utc": datetime.fromtimestamp(last_restart, UTC).isoformat(),
    }
    figures["passed"] = (
        figures["lost"] == 0
        and figures["call_errors"] == 0
        and len(worker_kills) >= info["kills_planned"]
        and not over
        and all(c["state"] == CallState.READY for c in lost_final_cases)
    )
    return figures


def write_files(
    data_dir: Path, results: list[CallResult], states: dict[str, CaseState], kills: list[Kill]
) -> None:
    def iso(t: float | None) -> str:
        return datetime.fromtimestamp(t, UTC).isoformat(timespec="milliseconds") if t else ""

    with (data_dir / "kills.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["target", "killed_utc", "restarted_utc", "up_utc"])
        for k in kills:
            w.writerow([k.target, iso(k.killed_at), iso(k.restarted_at), iso(k.up_at)])
    worker_kills = [k for k in kills if k.target == "worker"]
    with (data_dir / "cases.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(
            [
                "call_sid",
                "mode",
                "final_status_sent",
                "started_utc",
                "ended_utc",
                "ready_utc",
                "state",
                "kills_during",
                "ready_after_restart_s",
                "retries",
                "error",
            ]
        )
        for r in results:
            st = states[r.call_sid]
            n, _last, after, _h = case_timing(r.started, st.ready_at, r.ended, worker_kills)
            w.writerow(
                [
                    r.call_sid,
                    r.mode,
                    r.final_status_sent,
                    iso(r.started),
                    iso(st.ended_at),
                    iso(st.ready_at),
                    st.state,
                    n,
                    "" if after is None else round(after, 2),
                    r.retries,
                    r.error or "",
                ]
            )


def report(f: dict[str, Any]) -> str:
    lines = [
        f"faults run (seed {f['seed']}) on {f['database']}: "
        + ("PASSED" if f["passed"] else "FAILED"),
        f"calls played {f['calls']} (audio {f['calls_with_audio']}), call errors "
        f"{f['call_errors']}, webhooks posted again {f['webhook_retries']}",
        f"worker kill -9: {f['worker_kills']}; web server kill -9: {f['serve_kills']} "
        f"(back in {f['serve_back_in_s']} s)",
        f"cases READY {f['cases_ready']}, failed {f['cases_failed']}, lost {f['lost']}",
        f"duplicated: {f['duplicated']}",
        f"cases hit by kills {f['cases_hit_by_kills']} (at most {f['kills_per_case_max']} "
        f"kills in one case's life)",
        f"READY after the restart that followed the case's last kill: "
        f"{f['ready_after_restart']} (over 60 s: {f['ready_after_restart_over_60s']})",
        f"hang-up to READY, cases no kill touched: {f['hangup_to_ready_untouched']}",
        f"calls in flight at the web server's kill: {f['serve_kill_calls_in_flight']}",
        f"lost final status callback: {f['lost_final_callback']}",
        f"jobs: {f['jobs']}",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
