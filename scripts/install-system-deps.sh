#!/usr/bin/env bash
# Debian packages the tests need: espeak-ng (synthetic callers), sox and ffmpeg (telephone
# audio), PostgreSQL (database tests run on it too), Chromium (browser tests of the staff pages;
# Playwright drives Debian's binary, nothing is downloaded), Node.js and npm (the sign-in tests'
# OpenID provider). Installs only what is missing.
set -euo pipefail
declare -A need=([espeak-ng]=espeak-ng [sox]=sox [ffmpeg]=ffmpeg [pg_ctlcluster]=postgresql [chromium]=chromium [node]=nodejs [npm]=npm)
missing=()
for cmd in "${!need[@]}"; do
  command -v "$cmd" >/dev/null 2>&1 || missing+=("${need[$cmd]}")
done
[ ${#missing[@]} -eq 0 ] && exit 0
sudo=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then sudo="sudo"; else
    echo "install-system-deps: need root to install: ${missing[*]}" >&2; exit 1
  fi
fi
echo "installing Debian packages: ${missing[*]}"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
