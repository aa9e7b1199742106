"""The scale run's pure helpers (the run itself needs haproxy and PostgreSQL:
``scripts/scale.sh``)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from esitieto.bench.scale import (
    haproxy_config,
    haproxy_servers,
    heard_in_budget,
    log_counts,
    lost_recordings,
    p50_p99,
    verdict,
)
from models import RecordingState


def test_haproxy_config_checks_healthz_and_lists_every_server() -> None:
    cfg = haproxy_config(8000, [("web1", 8001), ("web2", 8002)], stats_port=8003)
    assert "bind 127.0.0.1:8000" in cfg
    assert "option httpchk GET /healthz" in cfg
    assert "server web1 127.0.0.1:8001 check" in cfg
    assert "server web2 127.0.0.1:8002 check" in cfg
    assert "bind 127.0.0.1:8003" in cfg


@pytest.mark.skipif(shutil.which("haproxy") is None, reason="haproxy is not installed")
def test_haproxy_accepts_the_config(tmp_path: Path) -> None:
    cfg = tmp_path / "haproxy.cfg"
    cfg.write_text(haproxy_config(18000, [("web1", 18001)], stats_port=18002))
    subprocess.run(["haproxy", "-c", "-f", str(cfg)], check=True, capture_output=True)


def test_haproxy_servers_reads_the_stats_csv() -> None:
    stats = (
        "# pxname,svname,econ,eresp,wretr,wredis,status,chkdown,stot,\n"
        "twilio,FRONTEND,,,,,OPEN,,300,\n"
        "web,web1,2,1,3,4,UP,1,120,\n"
        "web,web2,0,0,0,0,UP,0,130,\n"
        "web,BACKEND,2,1,3,4,UP,0,250,\n"
    )
    servers = haproxy_servers(stats)
    assert set(servers) == {"web1", "web2"}
    assert servers["web1"] == {
        "requests": 120,
        "status": "UP",
        "marked_down": 1,
        "connection_errors": 2,
        "response_errors": 1,
        "retried": 3,
        "redispatched": 4,
    }


def test_a_recording_is_lost_without_a_row_or_when_never_heard() -> None:
    posted = {"CA1": {"RE1", "RE2"}, "CA2": {"RE3"}, "CA3": {"RE4"}}
    stored = {
        "RE1": RecordingState.TRANSCRIBED,
        "RE2": RecordingState.PENDING,
        "RE4": RecordingState.SILENT,
    }
    got = lost_recordings(posted, stored)
    assert got == {
        "posted": 4,
        "no_row": 1,
        "not_heard_by_state": {RecordingState.PENDING: 1},
        "lost": 2,
    }


def test_heard_in_budget_counts_assessed_calls_with_an_answer() -> None:
    dialogues: dict[str, dict[str, Any] | None] = {
        "CA1": {"assessed": True, "heard": "kuumetta"},
        "CA2": {"assessed": True, "heard": None},
        "CA3": {"assessed": False},
        "CA4": None,
    }
    assert heard_in_budget(dialogues) == {"calls": 4, "assessed": 2, "heard_within_budget": 1}


def test_p50_p99_is_nearest_rank() -> None:
    got = p50_p99([float(v) for v in range(1, 101)])
    assert got == {"count": 100, "p50": 50.0, "p99": 99.0, "max": 100.0}
    assert p50_p99([]) == {"count": 0}


def test_the_run_passes_only_with_nothing_lost_or_twice() -> None:
    good = {
        "calls_started": 10,
        "cases_lost": 0,
        "duplicates": {"cases": 0, "jobs": 0},
        "recordings": {"lost": 0},
        "call_errors": 0,
    }
    assert verdict(good)
    assert not verdict({**good, "cases_lost": 1})
    assert not verdict({**good, "duplicates": {"cases": 0, "jobs": 1}})
    assert not verdict({**good, "recordings": {"lost": 1}})
    assert not verdict({**good, "calls_started": 0})


def test_log_counts_finds_the_apps_own_signs() -> None:
    texts = [
        "WARNING speech-to-text server http://x failed: ConnectError\nINFO ok\n",
        "ERROR /twilio/assess failed (OperationalError): the caller goes to a nurse\n",
    ]
    got = log_counts(texts)
    assert got["stt_server_failed"] == 1
    assert got["live_webhook_to_nurse"] == 1
    assert got["worker_loop_error"] == 0
