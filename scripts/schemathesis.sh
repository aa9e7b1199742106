#!/usr/bin/env bash
# Fuzz the running app against its own OpenAPI description (/openapi.json) with schemathesis:
# no server error (5xx) and no status code the description does not list, on every route,
# the Twilio webhooks signed as Twilio signs them (tests/esitieto/schemathesis_hooks.py).
#   scripts/schemathesis.sh [SECONDS] [schemathesis run options...]    (default: 600 s)
# SECONDS 0: no time budget (the options then say when to stop, e.g. --max-examples 20).
# Starts `esitieto serve` on a free loopback port with a throwaway data directory (the demo
# station, fresh tokens), prints a summary and stops the server; exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
seconds="${1:-600}"
shift || true
py=.venv/bin/python

work=$(mktemp -d)
server=""
cleanup() {
  if [ -n "$server" ]; then
    kill "$server" 2>/dev/null || true
    wait "$server" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

secret() { "$py" -c 'import secrets; print(secrets.token_hex(16))'; }
port=$("$py" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
base="http://127.0.0.1:$port"
export ESITIETO_DATA_DIR="$work/data" ESITIETO_DEMO__ENABLED=1 ESITIETO_WORKER__MODE=inprocess
export ESITIETO_TWILIO__AUTH_TOKEN=$(secret) ESITIETO_WEB__API_TOKEN=$(secret)
export ESITIETO_DEMO__NURSE_PASSWORD=$(secret)
unset ESITIETO_DATABASE__URL ESITIETO_TWILIO__PUBLIC_BASE_URL

.venv/bin/esitieto serve --host 127.0.0.1 --port "$port" >"$work/serve.log" 2>&1 &
server=$!
for _ in $(seq 240); do
  if "$py" -c "import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=2)" \
    "$base/healthz" 2>/dev/null; then
    break
  fi
  if ! kill -0 "$server" 2>/dev/null; then
    cat "$work/serve.log" >&2
    echo "schemathesis.sh: esitieto serve did not start" >&2
    exit 2
  fi
  sleep 0.5
done
"$py" -m tests.esitieto.schemathesis_hooks "$base" >"$work/openapi.json"

budget=()
if [ "$seconds" != 0 ]; then
  budget=(--max-time "$seconds")
fi
# Run in the throwaway directory: schemathesis keeps a cache of past failures in its
# working directory, and a run is to depend on its seed alone.
status=0
(
  cd "$work"
  SCHEMATHESIS_HOOKS="$repo/tests/esitieto/schemathesis_hooks.py" "$repo/.venv/bin/schemathesis" \
    run openapi.json --url "$base" "${budget[@]}" \
    --checks not_a_server_error,status_code_conformance,content_type_conformance \
    --workers 2 --request-timeout 30 --no-color \
    --report ndjson --report-ndjson-path events.ndjson "$@"
) || status=$?

"$py" - "$work/events.ndjson" <<'EOF' || status=$?
import collections, json, sys
requests = cases = 0
failures: collections.Counter[str] = collections.Counter()
for line in open(sys.argv[1], encoding="utf-8"):
    scenario = json.loads(line).get("ScenarioFinished")
    if scenario is None:
        continue
    recorder = scenario["recorder"]
    cases += len(recorder.get("cases", {}))
    requests += len(recorder.get("interactions", {}))
    for checks in recorder.get("checks", {}).values():
        failures.update(c["name"] for c in checks if c["status"].lower() == "failure")
print(f"schemathesis.sh: {requests} requests, {cases} test cases")
for name, count in sorted(failures.items()):
    print(f"  failed {name}: {count}")
if not failures:
    print("  no failures")
sys.exit(1 if failures else 0)
EOF
# A live call's webhook never answers 500 (the caller is put through to a nurse and the
# failure logged), and a job's failure is logged with its traceback: server errors all the same.
if grep -qE '^Traceback|goes to a nurse|fallback either' "$work/serve.log"; then
  echo "schemathesis.sh: server errors in the log:" >&2
  grep -E 'ERROR .*(goes to a nurse|fallback either)' "$work/serve.log" \
    | sed -E 's/^[0-9-]+ [0-9:,]+ //' | sort | uniq -c >&2 || true
  # Each traceback, down to its exception's line.
  awk '/^Traceback/ { on = 1 } on { print } on && /^[^ T]/ { on = 0; print "" }' \
    "$work/serve.log" | grep -v '^ *[~^]*$' | head -200 >&2
  status=1
fi
exit "$status"
