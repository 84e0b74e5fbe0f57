#!/usr/bin/env bash
# The whole test suite, on a fresh machine: installs what it needs (redis-server and python3-venv
# from the system packages, the pinned Python packages), then runs pytest. CI (.ci/run) calls exactly this.
set -euo pipefail
cd "$(dirname "$0")"

if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
apt_install() {
  echo "installing $1 from the system packages"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "$1" >/dev/null
}

command -v redis-server >/dev/null 2>&1 || apt_install redis-server
# tests/test_clean_install.py makes a virtualenv from requirements.txt alone; Debian's python3
# has no ensurepip (so no `python3 -m venv`) without python3-venv.
python3 -c "import ensurepip" >/dev/null 2>&1 || apt_install python3-venv

python3 -m pip install -q --disable-pip-version-check -r requirements-dev.txt
python3 -m pytest -q -p no:cacheprovider tests "$@"
