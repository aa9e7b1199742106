"""The app as a user meets it: ``esitieto serve`` in its own process, on a free port."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.servers import free_port, wait_until_answers

ESITIETO = [sys.executable, "-m", "esitieto.cli"]


def app_environment(data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ESITIETO_")}
    env.update(
        ESITIETO_DATA_DIR=str(data_dir),
        ESITIETO_DEMO__NURSE_PASSWORD="e2e-password",
        ESITIETO_WORKER__POLL_INTERVAL_S="0.1",
        # the simulator serves the callers' recordings on loopback
        ESITIETO_TWILIO__ALLOW_LOCAL_RECORDINGS="true",
        ESITIETO_DEMO__ENABLED="true",
    )
    return env


@contextmanager
def running_app(env: dict[str, str], log_path: Path, port: int | None = None) -> Iterator[str]:
    """``esitieto serve`` until the block ends; yields its base URL once it answers."""
    port = port or free_port()
    log = log_path.open("w")
    proc = subprocess.Popen(
        [*ESITIETO, "serve", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_answers(f"{url}/healthz", proc, log_path)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()


@pytest.fixture
def app_env(tmp_path: Path) -> dict[str, str]:
    return app_environment(tmp_path / "var")


@pytest.fixture
def server(app_env: dict[str, str], tmp_path: Path) -> Iterator[str]:
    with running_app(app_env, tmp_path / "serve.log") as url:
        yield url


CHROMIUM_ARGS = [
    # As root in a container, and with no network beyond localhost: no sandbox, no GPU, no
    # background calls home (they would be refused, many at a time).
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Debian's headless Chromium, driven by Playwright (nothing is downloaded)."""
    from playwright.sync_api import sync_playwright

    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(chromium).exists():
        pytest.skip("Debian's chromium is not installed (make system-deps installs it)")
    with sync_playwright() as pw:
        instance = pw.chromium.launch(executable_path=chromium, headless=True, args=CHROMIUM_ARGS)
        yield instance
        instance.close()
