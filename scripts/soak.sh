#!/usr/bin/env bash
# Endurance run: esitieto serve + one worker on PostgreSQL (database "soak", recreated), 10
# simulated calls a minute for MINUTES (default 60); RSS of both every 30 s, every webhook's
# response time. Prints calls, READY, lost, webhook p50/p99/max and RSS start/middle/end.
#   scripts/soak.sh [MINUTES] [--out samples.csv] [--data-dir DIR] [--database-url URL]
# With --database-url the database is used as given (not recreated). Never use "test".
set -euo pipefail
cd "$(dirname "$0")/.."
minutes=60
if [[ $# -gt 0 && $1 != -* ]]; then minutes=$1; shift; fi
if [[ " $* " != *" --database-url "* ]]; then
  db=${SOAK_DB:-soak}
  [[ $db == test ]] && { echo "soak.sh: the database 'test' belongs to the test suite" >&2; exit 2; }
  pg=(-h "${PGHOST:-127.0.0.1}" -U "${PGUSER:-postgres}")
  dropdb "${pg[@]}" --if-exists "$db"
  createdb "${pg[@]}" "$db"
  set -- --database-url "postgresql+psycopg://${PGUSER:-postgres}@${PGHOST:-127.0.0.1}/$db" "$@"
fi
# The code runs from a snapshot of the last commit (not the work tree): processes started
# during the run must not pick up someone's half-saved edits. SOAK_SNAPSHOT=0 runs the work tree.
if [[ ${SOAK_SNAPSHOT:-1} != 0 ]]; then
  commit=$(git rev-parse --short HEAD)
  snap=$(mktemp -d "/tmp/esitieto-soak-code-$commit-XXXX")
  git archive HEAD | tar -x -C "$snap"
  ln -s "$PWD/.venv" "$snap/.venv"
  echo "soak.sh: code of commit $commit in $snap"
  cd "$snap"
fi
exec .venv/bin/python -m esitieto.bench.soak --minutes "$minutes" "$@"
