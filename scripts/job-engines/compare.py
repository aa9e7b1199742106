"""Two job engines on this machine, the same way: enqueue → start latency and throughput.

procrastinate (PostgreSQL only: LISTEN/NOTIFY, no other service) against Dramatiq on the
RabbitMQ this machine runs. Each run defers N no-op jobs from one thread at a steady rate and
one worker process (4 threads) runs them; each job writes (sent, started) into PostgreSQL, the
same for both, so the latency is the engine's own. Run by ``compare.sh`` in a throwaway venv
(the engines are not the product's dependencies until one is chosen).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import psycopg

PG = os.environ.get("PG_URL", "postgresql://postgres@127.0.0.1:5432/jobengines")
AMQP = os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672")
N = int(os.environ.get("JOBS", "500"))
RATE = float(os.environ.get("RATE", "100"))  # jobs a second


def record(sent: float) -> None:
    with psycopg.connect(PG, autocommit=True) as conn:
        conn.execute("INSERT INTO bench_done (sent, started) VALUES (%s, %s)", (sent, time.time()))


# -- procrastinate -----------------------------------------------------------------------------


def procrastinate_app() -> tuple[Any, Any]:
    import procrastinate

    app = procrastinate.App(connector=procrastinate.PsycopgConnector(conninfo=PG))

    @app.task(name="noop", queue="bench")
    def noop(sent: float) -> None:
        record(sent)

    return app, noop


# -- Dramatiq ----------------------------------------------------------------------------------


def dramatiq_actor() -> Any:
    import dramatiq
    from dramatiq.brokers.rabbitmq import RabbitmqBroker

    dramatiq.set_broker(RabbitmqBroker(url=AMQP))

    @dramatiq.actor(queue_name="bench", max_retries=0)
    def noop(sent: float) -> None:
        record(sent)

    return noop


def reset() -> None:
    with psycopg.connect(PG, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS bench_done")
        conn.execute("CREATE TABLE bench_done (sent double precision, started double precision)")


def wait_done(n: int, timeout_s: float = 300) -> list[tuple[float, float]]:
    deadline = time.time() + timeout_s
    with psycopg.connect(PG, autocommit=True) as conn:
        while time.time() < deadline:
            rows = conn.execute("SELECT sent, started FROM bench_done").fetchall()
            if len(rows) >= n:
                return rows
            time.sleep(0.2)
    raise SystemExit(f"only {len(rows)} of {n} jobs ran")


def figures(name: str, rows: list[tuple[float, float]], wall_s: float) -> dict[str, object]:
    ms = sorted((b - a) * 1000 for a, b in rows)
    return {
        "engine": name,
        "jobs": len(rows),
        "p50_ms": round(statistics.median(ms), 1),
        "p99_ms": round(ms[min(len(ms) - 1, round(0.99 * len(ms)) - 1)], 1),
        "max_ms": round(ms[-1], 1),
        "throughput_per_s": round(len(rows) / wall_s, 1),
    }


def steady(defer: Callable[[float], object]) -> float:
    started = time.time()
    for i in range(N):
        time.sleep(max(0.0, started + i / RATE - time.time()))
        defer(time.time())
    return started


def main() -> None:
    which = sys.argv[1]
    reset()
    here = os.path.dirname(os.path.abspath(__file__))
    env = {**os.environ, "PYTHONPATH": here}
    if which == "procrastinate":
        app, noop = procrastinate_app()
        with app.open():
            app.schema_manager.apply_schema() if not _has_schema() else None
        worker = subprocess.Popen(
            [sys.executable, "-c", "import compare; a, _ = compare.procrastinate_app(); "
             "a.run_worker(queues=['bench'], concurrency=4)"], env=env, cwd=here)  # fmt: skip
        time.sleep(3)
        with app.open():
            t0 = steady(lambda sent: noop.defer(sent=sent))
    else:
        noop = dramatiq_actor()
        noop.broker.flush_all()  # nothing left over from an earlier run
        command = ["dramatiq", "dramatiq_worker", "--processes", "1", "--threads", "4"]
        worker = subprocess.Popen([sys.executable, "-m", *command], env=env, cwd=here)
        time.sleep(3)
        t0 = steady(lambda sent: noop.send(sent))
    rows = wait_done(N)
    wall = max(b for _, b in rows) - t0
    worker.terminate()
    worker.wait(timeout=30)
    print(json.dumps(figures(which, rows, wall)))


def _has_schema() -> bool:
    with psycopg.connect(PG, autocommit=True) as conn:
        row = conn.execute("SELECT to_regclass('procrastinate_jobs')").fetchone()
        return bool(row and row[0])


if __name__ == "__main__":
    main()
