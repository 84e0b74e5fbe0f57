"""A virtualenv holding requirements.txt and nothing else, as a new user's `pip install -r
requirements.txt` leaves it: the product must run from exactly that (issue 13 item 1).

Building one takes a minute or so on a fresh machine, so it is kept under
``${XDG_CACHE_HOME:-~/.cache}/backend-to-api/venvs/`` by the sha256 of requirements.txt and the
interpreter's version: a changed pin gets a new venv, an unchanged one is reused.

A venv cannot be moved once built (its scripts' shebangs name its path), so it is built in a
directory of its own that never moves, and published by atomically replacing a symlink named after
the key. A build that crashed half-way is never linked, hence never reused; its directory is
removed by the next build. A lock file keeps two test runs from building the same venv at once.
"""
from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict

PIP_INSTALL_TIMEOUT = 900  # seconds; a fresh machine downloads ~30 wheels from PyPI
# A venv is ~90 MB and every change of requirements.txt makes a new one: those of pins no checkout
# has tested with for a week go.
UNUSED_FOR = 7 * 24 * 3600


def cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "backend-to-api" / "venvs"


def venv_key(requirements: Path) -> str:
    """sha256 of the file, plus the interpreter: a venv only runs on the Python it was made with."""
    digest = hashlib.sha256(requirements.read_bytes()).hexdigest()
    version = ".".join(str(part) for part in sys.version_info[:3])
    return f"{digest}-py{version}"


def clean_venv(requirements: Path) -> Path:
    """The cached venv for ``requirements`` (built first if missing or broken)."""
    root = cache_root()
    root.mkdir(parents=True, exist_ok=True)
    key = venv_key(requirements)
    link = root / key
    with open(root / f"{key}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # a second run waits for the first one's build
        if not _usable(link):
            built = _build(root, key, requirements)
            _publish(link, built)
            _remove_unpublished(root, key, built)
        os.utime(link, follow_symlinks=False)  # last used: see _prune_unused
    _prune_unused(root)
    return link


def venv_environ(venv: Path) -> Dict[str, str]:
    """The environment of a shell in which the venv is activated (what `source bin/activate`
    does), without anything that would let the test's own packages leak in."""
    env = {name: value for name, value in os.environ.items()
           if not name.startswith(("PYTHON", "PIP_USER")) and name not in ("VIRTUAL_ENV", "__PYVENV_LAUNCHER__")}
    env["VIRTUAL_ENV"] = str(venv)
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}"
    return env


def _usable(venv: Path) -> bool:
    python = venv / "bin" / "python"
    if not python.exists():
        return False
    # The interpreter it was made from may have gone (pyenv, an upgraded system Python).
    return subprocess.run([str(python), "-c", "import flask, gunicorn"], capture_output=True,
                          env=venv_environ(venv), timeout=60).returncode == 0


def _build(root: Path, key: str, requirements: Path) -> Path:
    target = Path(tempfile.mkdtemp(prefix=f"{key}.build-", dir=root))
    _run([sys.executable, "-m", "venv", str(target)], "python -m venv (on Debian: apt-get install python3-venv)")
    # The README's steps: activate the venv, then `pip install -r requirements.txt`.
    _run(["pip", "install", "-q", "-r", str(requirements)], "pip install -r requirements.txt",
         env=venv_environ(target))
    return target


def _run(command, what: str, env=None) -> None:
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=PIP_INSTALL_TIMEOUT)
    if result.returncode != 0:
        raise RuntimeError(f"{what} failed ({result.returncode}):\n{result.stdout[-4000:]}{result.stderr[-4000:]}")


def _publish(link: Path, built: Path) -> None:
    staged = link.with_name(f"{link.name}.link-{os.getpid()}")
    if staged.is_symlink():
        staged.unlink()
    staged.symlink_to(built.name)
    os.replace(staged, link)  # atomic: readers see the old venv or the new one, never half of one


def _remove_unpublished(root: Path, key: str, keep: Path) -> None:
    for stale in root.glob(f"{key}.build-*"):
        if stale != keep:
            shutil.rmtree(stale, ignore_errors=True)


def _prune_unused(root: Path) -> None:
    now = time.time()
    for link in root.glob("*-py*"):
        if link.is_symlink() and now - link.lstat().st_mtime > UNUSED_FOR:
            target = root / os.readlink(link)
            link.unlink()
            shutil.rmtree(target, ignore_errors=True)
            (root / f"{link.name}.lock").unlink(missing_ok=True)
