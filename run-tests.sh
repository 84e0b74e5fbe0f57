#!/usr/bin/env bash
# The whole test suite, on a fresh machine: installs what it needs (redis-server from the system
# packages, the pinned Python packages), then runs pytest. CI (.ci/run) calls exactly this.
set -euo pipefail
cd "$(dirname "$0")"

if ! command -v redis-server >/dev/null 2>&1; then
  echo "installing redis-server from the system packages"
  if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq redis-server >/dev/null
fi

python3 -m pip install -q --disable-pip-version-check -r requirements-dev.txt
python3 -m pytest -q -p no:cacheprovider tests "$@"
