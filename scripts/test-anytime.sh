#!/usr/bin/env bash
# Proof that the suite does not depend on the wall clock or the CPU: runs it with the clock
# of every Python process pinned (tests/anytime/sitecustomize.py) to a Sunday 30 seconds before
# midnight in Helsinki and to a Wednesday morning, each on one CPU only (taskset -c 0).
#   scripts/test-anytime.sh [pytest arguments]     (default: the whole suite)
set -euo pipefail
cd "$(dirname "$0")/.."
unset PYTHONDONTWRITEBYTECODE
export PYTHONPATH="$PWD/tests/anytime${PYTHONPATH:+:$PYTHONPATH}"
status=0
for now in "2026-11-29T23:59:30+02:00" "2026-12-02T09:15:00+02:00"; do
  echo "== the clock at $now (Europe/Helsinki), one CPU"
  TEST_NOW="$now" taskset -c 0 .venv/bin/python -m pytest -q -p no:cacheprovider "$@" \
    || status=1
done
exit $status
