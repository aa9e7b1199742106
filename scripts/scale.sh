#!/usr/bin/env bash
# Scale run on one machine: haproxy (health-checking /healthz) in front of two esitieto serve
# (ESITIETO_WORKER__MODE=external), two esitieto worker, two esitieto stt-serve (the app on
# ESITIETO_ASR__ENGINE=remote), PostgreSQL (database "scale", recreated). 200 simulated calls
# while a worker, an stt-serve and a web server are killed with -9 (and restarted) and
# PostgreSQL is restarted once. Prints a table; writes scale-result.json in the data dir.
#   scripts/scale.sh [--calls 200] [--no-pg-restart] [--data-dir DIR] [--out FILE] ...
# (python -m esitieto.bench.scale --help lists them all). With --database-url the database is
# used as given (not recreated). Never use "test".
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v haproxy >/dev/null; then
  echo "scale.sh: haproxy is needed: apt-get update && apt-get install -y haproxy" >&2
  exit 2
fi
if [[ " $* " != *" --database-url "* ]]; then
  db=${SCALE_DB:-scale}
  [[ $db == test ]] && { echo "scale.sh: the database 'test' belongs to the test suite" >&2; exit 2; }
  pg=(-h "${PGHOST:-127.0.0.1}" -U "${PGUSER:-postgres}")
  dropdb "${pg[@]}" --if-exists "$db"
  createdb "${pg[@]}" "$db"
  set -- --database-url "postgresql+psycopg://${PGUSER:-postgres}@${PGHOST:-127.0.0.1}/$db" "$@"
fi
# The code runs from a snapshot of the last commit (not the work tree): processes started
# during the run must not pick up someone's half-saved edits. SCALE_SNAPSHOT=0 runs the work tree.
if [[ ${SCALE_SNAPSHOT:-1} != 0 ]]; then
  commit=$(git rev-parse --short HEAD)
  snap=$(mktemp -d "/tmp/esitieto-scale-code-$commit-XXXX")
  git archive HEAD | tar -x -C "$snap"
  ln -s "$PWD/.venv" "$snap/.venv"
  echo "scale.sh: code of commit $commit in $snap"
  cd "$snap"
fi
exec .venv/bin/python -m esitieto.bench.scale "$@"
