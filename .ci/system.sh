#!/usr/bin/env bash
# The system stage: real third-party systems for the tests marked `system`.
#   bash .ci/system.sh install   install what the stage needs (Debian packages)
#   bash .ci/system.sh run       start the services, run `pytest -m system`, stop the services
# Each service that cannot be had on this machine is reported; the tests that need it say why they cannot run.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
STATE="$ROOT/.ci-state"  # venvs, models, logs of this stage (git-ignored)
mkdir -p "$STATE"

apt_install() {
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
    echo "not root or no apt-get: skipping Debian packages $*"
    return 0
  fi
  local missing=()
  for pkg in "$@"; do dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg"); done
  [ "${#missing[@]}" -eq 0 ] && return 0
  echo "installing Debian packages: ${missing[*]}"
  (timeout 900 apt-get update -qq && DEBIAN_FRONTEND=noninteractive timeout 1200 apt-get install -y -qq "${missing[@]}") \
    >"$STATE/apt.log" 2>&1 || { echo "apt-get failed (see .ci-state/apt.log):"; tail -n 5 "$STATE/apt.log"; }
}

install() {
  # chromium renders the reports for the screenshot tests.
  apt_install chromium
}

run() {
  local rc=0
  .venv/bin/python -m pytest -m system -n 0 -p no:cacheprovider -o addopts="" --strict-markers -p no:locust \
    -ra tests/ || rc=$?
  if [ "$rc" -eq 5 ]; then echo "the system stage collected no tests: failing on purpose"; rc=1; fi
  return "$rc"
}

case "${1:-}" in
  install) install ;;
  run) run ;;
  *) echo "usage: $0 install|run"; exit 2 ;;
esac
