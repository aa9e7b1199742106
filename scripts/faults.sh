#!/usr/bin/env bash
# Fault run: >= 100 worker kill -9s at random points over >= 100 simulated calls, one kill -9
# of the web server (restarted), and calls whose final status callback is lost; esitieto serve
# (ESITIETO_WORKER__MODE=external) + one esitieto worker on PostgreSQL (database "faults",
# recreated). Prints calls, READY, lost, duplicates and READY-after-restart for every case.
#   scripts/faults.sh [--calls 120] [--kills 100] [--data-dir DIR] [--database-url URL] ...
# (python -m esitieto.bench.faults --help lists them all). With --database-url the database
# is used as given (not recreated), e.g. sqlite:////tmp/faults/esitieto.sqlite3.
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ " $* " != *" --database-url "* ]]; then
  db=${FAULTS_DB:-faults}
  [[ $db == test ]] && { echo "faults.sh: the database 'test' belongs to the test suite" >&2; exit 2; }
  pg=(-h "${PGHOST:-127.0.0.1}" -U "${PGUSER:-postgres}")
  dropdb "${pg[@]}" --if-exists "$db"
  createdb "${pg[@]}" "$db"
  set -- --database-url "postgresql+psycopg://${PGUSER:-postgres}@${PGHOST:-127.0.0.1}/$db" "$@"
fi
# The code runs from a snapshot of the last commit (not the work tree): processes started
# during the run must not pick up someone's half-saved edits. FAULTS_SNAPSHOT=0 runs the work tree.
if [[ ${FAULTS_SNAPSHOT:-1} != 0 ]]; then
  commit=$(git rev-parse --short HEAD)
  snap=$(mktemp -d "/tmp/esitieto-faults-code-$commit-XXXX")
  git archive HEAD | tar -x -C "$snap"
  ln -s "$PWD/.venv" "$snap/.venv"
  echo "faults.sh: code of commit $commit in $snap"
  cd "$snap"
fi
exec .venv/bin/python -m esitieto.bench.faults "$@"
