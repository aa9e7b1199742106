"""The endurance run: ``esitieto serve`` and one ``esitieto worker`` on PostgreSQL for an hour
(``--minutes``), taking simulated calls at a steady rate (10 a minute), while the server's and
the worker's resident memory is sampled every 30 s and every webhook's response time is kept.

``python -m esitieto.bench.soak [--minutes 60] [--out samples.csv]`` (``scripts/soak.sh``).
At the end it waits for every case, then prints: calls, cases READY, lost, webhook
p50/p99/max (all but the budgeted ``/twilio/assess``, which is reported apart), and each
process's RSS at the start, middle and end of the run. Files in the data dir: the samples
(``soak-samples.csv`` unless ``--out``), every webhook (``webhooks.csv``), the figures so far
(``soak-result.json``, rewritten at every sample, so a run stopped early still has them), and
``serve.log`` / ``worker.log``. Only synthetic callers and words are used.

``python -m esitieto.bench.soak reread DIR/webhooks.csv --exclude START/END`` gives the webhook
figures again without the responses of a window (another load on the machine).
"""

from __future__ import annotations

import argparse
import csv
import json
import secrets
import signal
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from esitieto.bench.harness import (
    ACCOUNT_SID,
    BUDGETED,
    SPOKEN,
    Caller,
    CallResult,
    Spawner,
    Stack,
    duplicates,
    job_summary,
    latency_figures,
    make_engine,
    new_key_spec,
    open_station_all_day,
    rss_kb,
    settings_given,
    synth_phone_audio,
    tone,
    twilio_env,
    wait_until_ready,
)
from models import Call, CallState
from voicebot.simulator import RecordingServer

DEFAULT_DATABASE_URL = "postgresql+psycopg://postgres@127.0.0.1/soak"
SAMPLE_FIELDS = [
    "t_s",
    "wall_utc",
    "serve_rss_kb",
    "worker_rss_kb",
    "calls_started",
    "calls_played",
    "cases_ready",
    "webhooks",
    "in_flight",
]


def rss_points(samples: list[dict[str, Any]], key: str) -> dict[str, Any]:
    """A process's RSS at the first, middle and last sample, its peak, and the growth over
    the second half of the run (the part after every model and cache is loaded)."""
    values = [(s["t_s"], s[key]) for s in samples if s.get(key) is not None]
    if not values:
        return {}
    start, end = values[0], values[-1]
    half_t = (start[0] + end[0]) / 2
    middle = min(values, key=lambda v: abs(v[0] - half_t))
    second = [v for v in values if v[0] >= middle[0]]
    minutes = (end[0] - middle[0]) / 60 or 1.0
    return {
        "start_kb": start[1],
        "middle_kb": middle[1],
        "end_kb": end[1],
        "peak_kb": max(v for _, v in values),
        "second_half_growth_kb": end[1] - middle[1],
        "second_half_growth_kb_per_min": round((end[1] - middle[1]) / minutes, 1),
        "second_half_min_max_kb": [min(v for _, v in second), max(v for _, v in second)],
    }


def webhook_figures(results: list[CallResult]) -> dict[str, Any]:
    by_path: dict[str, list[float]] = {}
    for r in results:
        for w in r.webhooks:
            by_path.setdefault(w.path, []).append(w.ms)
    other = [ms for p, v in by_path.items() if p != BUDGETED for ms in v]
    return {
        "all_but_assess": latency_figures(other),
        "over_100ms_all_but_assess": sum(1 for ms in other if ms >= 100.0),
        "paths": {p: latency_figures(v) for p, v in sorted(by_path.items())},
    }


def reread(webhooks_csv: Path, exclude: list[str]) -> dict[str, Any]:
    """Webhook figures from a finished run's ``webhooks.csv``, leaving out the responses that
    arrived within the given windows (``START/END``, ISO times in UTC): e.g. while another
    load (a fault run, a test suite) shared the machine."""
    windows = []
    for w in exclude:
        start, end = (datetime.fromisoformat(x) for x in w.split("/", 1))
        windows.append(
            (start.replace(tzinfo=start.tzinfo or UTC), end.replace(tzinfo=end.tzinfo or UTC))
        )
    kept: list[float] = []
    left_out = 0
    assess: list[float] = []
    with webhooks_csv.open(newline="") as f:
        for row in csv.DictReader(f):
            at = datetime.fromisoformat(row["wall_utc"])
            if any(start <= at <= end for start, end in windows):
                left_out += 1
                continue
            (assess if row["path"] == BUDGETED else kept).append(float(row["ms"]))
    return {
        "excluded_windows": exclude,
        "left_out": left_out,
        "all_but_assess": latency_figures(kept),
        "over_100ms_all_but_assess": sum(1 for ms in kept if ms >= 100.0),
        "assess": latency_figures(assess),
    }


def main(argv: list[str] | None = None) -> int:
    if argv is None:
        argv = sys.argv[1:]
    if argv[:1] == ["reread"]:
        rp = argparse.ArgumentParser(prog="python -m esitieto.bench.soak reread")
        rp.add_argument("webhooks_csv", type=Path)
        rp.add_argument("--exclude", action="append", default=[], metavar="START/END")
        ra = rp.parse_args(argv[1:])
        print(json.dumps(reread(ra.webhooks_csv, ra.exclude), indent=1))
        return 0
    ap = argparse.ArgumentParser(prog="python -m esitieto.bench.soak", description=__doc__)
    ap.add_argument("--minutes", type=float, default=60.0)
    ap.add_argument("--rate", type=float, default=10.0, help="calls a minute")
    ap.add_argument("--database-url", default=DEFAULT_DATABASE_URL)
    ap.add_argument("--data-dir", type=Path, default=None)
    ap.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="ESITIETO_NAME=VALUE",
        help="a setting for serve and worker (e.g. ESITIETO_WORKER__ENGINE=procrastinate)",
    )
    ap.add_argument("--out", type=Path, default=None, help="CSV of the samples")
    ap.add_argument("--sample-s", type=float, default=30.0)
    ap.add_argument(
        "--audio-every",
        type=int,
        default=5,
        help="every Nth call speaks real audio, heard by Whisper (0: words only)",
    )
    args = ap.parse_args(argv)

    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    data_dir: Path = args.data_dir or Path(tempfile.mkdtemp(prefix=f"esitieto-soak-{stamp}-"))
    data_dir.mkdir(parents=True, exist_ok=True)
    out_csv: Path = args.out or data_dir / "soak-samples.csv"
    result_path = data_dir / "soak-result.json"
    print(f"soak: data dir {data_dir}, samples {out_csv}", flush=True)

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
            "ESITIETO_LOG_LEVEL": "WARNING",
            "ESITIETO_DEMO__NURSE_PASSWORD": secrets.token_urlsafe(16),
            "ESITIETO_ENCRYPTION__KEYS": key_spec,
            **twilio_env(media, token),
            **settings_given(args.set),
        },
    )
    engine = make_engine(args.database_url, key_spec)
    spawner = Spawner()
    samples: list[dict[str, Any]] = []
    info: dict[str, Any] = {
        "started_utc": stamp,
        "minutes": args.minutes,
        "rate_per_min": args.rate,
        "database": args.database_url.split("@")[-1],
        "data_dir": str(data_dir),
        "samples_csv": str(out_csv),
    }
    try:
        stack.start_serve()
        to_number = open_station_all_day(engine)
        stack.start_worker()
        audio = synth_phone_audio(SPOKEN, data_dir / "caller.wav") if args.audio_every else None
        tone_path = tone(data_dir / "tone.wav")
        with media:
            caller = Caller(
                url=stack.url,
                auth_token=stack.auth_token(),
                to_number=to_number,
                media=media,
                engine=engine,
                tone_path=tone_path,
                audio_path=audio,
            )
            # Warm-up, not counted: models loaded in both processes, caches filled.
            warm = [caller.play(0, audio=audio is not None), caller.play(1, audio=False)]
            wait_until_ready(engine, [w.call_sid for w in warm], 300)
            info["warmup_errors"] = [w.error for w in warm if w.error]

            pids = {"serve": stack.serve.pid, "worker": stack.worker.pid}  # type: ignore[union-attr]
            info["pids"] = pids
            period = 60.0 / args.rate
            total = round(args.minutes * args.rate)
            t0 = time.time()
            stop_sampling = threading.Event()
            started = [0]

            def sample() -> None:
                with Session(engine) as s:
                    ready = s.scalar(
                        select(func.count()).select_from(Call).where(Call.state == CallState.READY)
                    )
                results = list(spawner.results)
                row = {
                    "t_s": round(time.time() - t0, 1),
                    "wall_utc": datetime.now(UTC).isoformat(timespec="seconds"),
                    "serve_rss_kb": rss_kb(pids["serve"]),
                    "worker_rss_kb": rss_kb(pids["worker"]),
                    "calls_started": started[0],
                    "calls_played": len(results),
                    "cases_ready": int(ready or 0) - len(warm),
                    "webhooks": sum(len(r.webhooks) for r in results),
                    "in_flight": spawner.in_flight(),
                }
                samples.append(row)
                with out_csv.open("w", newline="") as f:
                    w = csv.DictWriter(f, fieldnames=SAMPLE_FIELDS)
                    w.writeheader()
                    w.writerows(samples)
                partial = {
                    **info,
                    "partial": True,
                    "elapsed_s": row["t_s"],
                    "calls_played": len(results),
                    "call_errors": sum(1 for r in results if r.error),
                    "webhooks": webhook_figures(results),
                    "rss": {
                        "serve": rss_points(samples, "serve_rss_kb"),
                        "worker": rss_points(samples, "worker_rss_kb"),
                    },
                }
                result_path.write_text(json.dumps(partial, indent=1))
                print(
                    f"[{row['wall_utc']}] t={row['t_s']}s started={row['calls_started']} "
                    f"played={row['calls_played']} ready={row['cases_ready']} "
                    f"serve_rss={row['serve_rss_kb']}kB worker_rss={row['worker_rss_kb']}kB "
                    f"p99={partial['webhooks']['all_but_assess'].get('p99_ms')}ms",
                    flush=True,
                )

            def sampler() -> None:
                while True:
                    try:
                        sample()
                    except Exception as exc:  # a sample lost is not the run lost
                        print(f"sample failed: {type(exc).__name__}: {exc}", flush=True)
                    if stop_sampling.wait(args.sample_s):
                        return

            sampling = threading.Thread(target=sampler, daemon=True)
            sampling.start()
            for i in range(total):
                time.sleep(max(0.0, t0 + i * period - time.time()))
                index = i + 2
                speak = audio is not None and args.audio_every > 0 and i % args.audio_every == 0

                def play(index: int = index, speak: bool = speak) -> CallResult:
                    return caller.play(index, audio=speak)

                spawner.start(play)
                started[0] += 1
            spawner.join(600)
            played_s = time.time() - t0
            sids = [r.call_sid for r in spawner.results]
            states = wait_until_ready(engine, sids, 300)
            stop_sampling.set()
            sampling.join(60)
            sample()  # the last sample, after every case is in
    except KeyboardInterrupt:
        info["interrupted"] = True
        print("soak: interrupted; figures so far follow", flush=True)
        sids = [r.call_sid for r in spawner.results]
        states = wait_until_ready(engine, sids, 5)
        played_s = time.time() - (t0 if "t0" in locals() else time.time())
    finally:
        stack.stop()

    results = list(spawner.results)
    ready = sum(1 for c in states.values() if c.state == CallState.READY)
    failed = sum(1 for c in states.values() if c.state == CallState.FAILED)
    hangup_to_ready = [
        c.ready_at - c.ended_at
        for c in states.values()
        if c.ready_at is not None and c.ended_at is not None
    ]
    with (data_dir / "webhooks.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["wall_utc", "call_sid", "path", "ms"])
        for r in results:
            for h in r.webhooks:
                w.writerow(
                    [
                        datetime.fromtimestamp(h.at, UTC).isoformat(timespec="milliseconds"),
                        h.call_sid,
                        h.path,
                        round(h.ms, 2),
                    ]
                )
    figures = {
        **info,
        "partial": False,
        "played_s": round(played_s, 1),
        "calls": len(results),
        "calls_with_audio": sum(1 for r in results if r.mode == "audio"),
        "call_errors": sum(1 for r in results if r.error),
        "call_error_examples": [r.error for r in results if r.error][:5],
        "cases_ready": ready,
        "cases_failed": failed,
        "lost": len(results) - ready - failed,
        "duplicated": duplicates(engine, [r.call_sid for r in results]),
        "hangup_to_ready_s": latency_figures([s * 1000 for s in hangup_to_ready]),
        "webhooks": webhook_figures(results),
        "rss": {
            "serve": rss_points(samples, "serve_rss_kb"),
            "worker": rss_points(samples, "worker_rss_kb"),
        },
        "jobs": job_summary(engine),
        "samples": len(samples),
    }
    engine.dispose()
    result_path.write_text(json.dumps(figures, indent=1))
    print(json.dumps(figures, indent=1), flush=True)
    print(report(figures), flush=True)
    return 0


def report(f: dict[str, Any]) -> str:
    wh = f["webhooks"]["all_but_assess"]
    lines = [
        f"soak {f['minutes']} min at {f['rate_per_min']}/min on {f['database']}",
        f"calls {f['calls']} (audio {f['calls_with_audio']}), cases READY {f['cases_ready']}, "
        f"failed {f['cases_failed']}, lost {f['lost']}, call errors {f['call_errors']}",
        f"webhooks (all but /twilio/assess): n={wh.get('count')} p50 {wh.get('p50_ms')} ms, "
        f"p99 {wh.get('p99_ms')} ms, max {wh.get('max_ms')} ms "
        f"(>=100 ms: {f['webhooks']['over_100ms_all_but_assess']})",
        f"/twilio/assess: {f['webhooks']['paths'].get(BUDGETED)}",
        f"hang-up to READY (ms): {f['hangup_to_ready_s']}",
    ]
    for proc in ("serve", "worker"):
        r = f["rss"].get(proc) or {}
        lines.append(
            f"RSS {proc}: start {r.get('start_kb')} kB, middle {r.get('middle_kb')} kB, "
            f"end {r.get('end_kb')} kB, peak {r.get('peak_kb')} kB, second half "
            f"{r.get('second_half_growth_kb_per_min')} kB/min"
        )
    lines.append(f"duplicated: {f['duplicated']}")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
