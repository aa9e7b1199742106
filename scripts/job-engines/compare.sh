#!/usr/bin/env bash
# Compare procrastinate (PostgreSQL) and Dramatiq (RabbitMQ) on this machine, in a throwaway
# venv: enqueue → start latency and throughput of no-op jobs (see compare.py).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
venv="${TMPDIR:-/tmp}/esitieto-job-engines"
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/pip" install --quiet "procrastinate==3.10.0" "dramatiq[rabbitmq]==2.2.1" "psycopg[binary]>=3.1"
createdb -h 127.0.0.1 -U postgres jobengines 2>/dev/null || true
for engine in procrastinate dramatiq; do
  for rate in 50 200; do
    RATE=$rate JOBS=${JOBS:-1000} "$venv/bin/python" "$here/compare.py" "$engine" 2>/dev/null | tail -1
  done
done
