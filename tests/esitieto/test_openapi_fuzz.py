"""The running app fuzzed against its own OpenAPI description: a short, seeded
``scripts/schemathesis.sh`` (the full run is ten minutes: ``scripts/schemathesis.sh 600``)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_no_server_error_and_no_undocumented_answer() -> None:
    # A number of examples, not a time budget: the same cases however fast the machine.
    options = ["--max-examples", "15", "--seed", "20261130", "--workers", "1"]
    run = subprocess.run(
        ["scripts/schemathesis.sh", "0", *options],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    report = run.stdout[-6000:] + run.stderr[-6000:]
    assert run.returncode == 0, report
    sent = re.search(r"schemathesis\.sh: (\d+) requests", run.stdout)
    assert sent is not None and int(sent.group(1)) > 200, report
    assert "no failures" in run.stdout
