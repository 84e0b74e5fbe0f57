"""One immutable settings object, built once at start-up from config.json and the environment.

Every key of the original project's config.json keeps its name and meaning. Each key can be
overridden by an environment variable named after its path, upper-cased and joined by ``_``
(``redis.host`` -> ``REDIS_HOST``, ``refresh_ToAccess.enableOai`` -> ``REFRESH_TOACCESS_ENABLEOAI``).
Booleans are accepted as JSON ``true`` or as the original's strings ``"true"``/``"false"``.
A bad value raises ConfigError naming the key and what is wrong; main.py prints it as one line.
"""
from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from typing import Any, Iterator, Mapping, Optional

DEFAULT_DALLE_PREFIX = (
    "请严格按照我接下来的要求完成绘图任务，如果我没有明确给出绘图指令，请根据我的文字描述绘制对应的图片："
)


class ConfigError(ValueError):
    """A configuration value is missing or invalid; the message names the key."""


class ConfigObject(Mapping):
    """A JSON object of the config, read-only (and hashable, so it can be a field's default)."""

    def __init__(self, data: Optional[Mapping[str, Any]] = None) -> None:
        self._data = dict(data or {})

    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __hash__(self) -> int:
        return hash(json.dumps(self._data, sort_keys=True, default=str))


def _key(name: str, default: Any, **meta: Any) -> Any:
    """A settings field whose config.json key is ``name`` (the original's spelling)."""
    return field(default=default, metadata={"key": name, **meta})


@dataclass(frozen=True)
class BotMode:
    enabled: bool = _key("enabled", False)
    markdown_image_output: bool = _key("enabled_markdown_image_output", False)
    plain_image_url_output: bool = _key("enabled_plain_image_url_output", False)
    bing_reference_output: bool = _key("enabled_bing_reference_output", False)
    plugin_output: bool = _key("enabled_plugin_output", False)


@dataclass(frozen=True)
class RefreshSettings:
    stream_sleep_time: float = _key("stream_sleep_time", 0.0, min=0)
    enable_oai: bool = _key("enableOai", False)
    xyhelper_url: str = _key("xyhelper_refreshToAccess_Url", "https://demo.xyhelper.cn/applelogin")
    oai_url: str = _key("oai_refreshToAccess_Url", "https://auth0.openai.com/oauth/token")
    oai_client_id: str = _key("oai_client_id", "pdlLIX2Y72MIl2rhLhTE9VV9bN905kBh")
    oai_redirect_uri: str = _key(
        "oai_redirect_uri", "com.openai.chat://auth0.openai.com/ios/com.openai.chat/callback"
    )
    # Seconds before the JWT's exp at which a cached access token is considered stale.
    expiry_margin: int = _key("access_token_expiry_margin", 600, min=0)
    daily_refresh_hour: int = _key("daily_refresh_hour", 3, min=0, max=23)
    # The daily jobs at daily_refresh_hour (renew known refresh tokens, then the configured GPTs'
    # info); false schedules neither (GPT info is then fetched again when its 2-day entry expires).
    daily_refresh: bool = _key("daily_refresh", True)
    # Keep each refresh token seen (in clear, in Redis as b2a:rt:*) so the daily job can renew it;
    # false stores none, and the daily refresh then has nothing to renew.
    remember_refresh_tokens: bool = _key("remember_refresh_tokens", True)


@dataclass(frozen=True)
class RedisSettings:
    host: str = _key("host", "redis")
    port: int = _key("port", 6379, min=1, max=65535)
    password: str = _key("password", "")
    db: int = _key("db", 0, min=0)
    pool_size: int = _key("pool_size", 50, min=1)
    # Longest wait for a free pooled connection (pool_timeout), and for Redis to accept a connection
    # or answer one call (timeout): a Redis that stopped answering costs a request about this much,
    # then the in-process store serves until Redis answers again (failover_store.py).
    pool_timeout: float = _key("pool_timeout", 0.5, min=0)
    timeout: float = _key("timeout", 0.5, min=0.01)


@dataclass(frozen=True)
class Settings:
    log_level: str = _key("log_level", "INFO", upper=True, choices=("DEBUG", "INFO", "WARNING", "ERROR"))
    need_log_to_file: bool = _key("need_log_to_file", True)
    log_dir: str = _key("log_dir", "./log")
    process_workers: int = _key("process_workers", 2, min=1)
    process_threads: int = _key("process_threads", 2, min=1)
    worker_class: str = _key("worker_class", "gevent", choices=("gevent", "gthread"))
    worker_connections: int = _key("worker_connections", 2000, min=1)
    proxy: str = _key("proxy", "")
    upstream_base_url: str = _key("upstream_base_url", "https://demo.xyhelper.cn")
    upstream_api_prefix: str = _key("upstream_api_prefix", "")
    upstream_connect_timeout: float = _key("upstream_connect_timeout", 10.0, min=0.1)
    # How the conversation is posted (upstream/conduit.py): "mirror" the plain POST a mirror takes;
    # "conduit" prepare x3 then POST /f/conversation; "auto" mirror until the upstream refuses it
    # asking for the newer flow. conduit_prepare_timeout bounds one turn's prepare calls in all.
    conversation_flow: str = _key("conversation_flow", "mirror", choices=("mirror", "conduit", "auto"))
    conduit_prepare_timeout: float = _key("conduit_prepare_timeout", 15.0, min=0.1)
    # Longest silence tolerated from the upstream (one socket read) before answering 504.
    upstream_read_timeout: float = _key("upstream_read_timeout", 300.0, min=0.1)
    keep_alive_interval: float = _key("keep_alive_interval", 5.0, min=0.1)
    # How often a reply handed off to the upstream's WebSocket pings it while waiting (the web page:
    # 25 s; proxies drop sockets idle for longer).
    handoff_ping_interval: float = _key("handoff_ping_interval", 25.0, min=0.05)
    # The whole of a non-stream reply, from the request's arrival (beyond it: 504).
    non_stream_deadline: float = _key("non_stream_deadline", 300.0, min=1)
    # An image that arrives after its turn (picture_v2 async task, spec 3.7) is looked for in the
    # stored conversation this often, for this long in all (beyond it: 504); within non_stream_deadline.
    image_poll_interval: float = _key("image_poll_interval", 2.0, min=0.05)
    image_poll_timeout: float = _key("image_poll_timeout", 90.0, min=0)
    # Largest request body accepted (beyond it: 413); images arrive base64-encoded inside it.
    max_request_bytes: int = _key("max_request_bytes", 50 * 1024 * 1024, min=1024)
    # Images and files in one request (beyond it: 400).
    max_files_per_request: int = _key("max_files_per_request", 10, min=0)
    # How long a stored Responses API response (store: true) can be read back or continued with
    # previous_response_id (OpenAI keeps them 30 days; here they hold whole conversations in Redis).
    responses_ttl: float = _key("responses_ttl", 7 * 24 * 3600.0, min=1)
    # Longest wait for the upstream's first event before stream headers are sent anyway: errors the
    # upstream reports sooner become HTTP errors; a longer silence is bridged with keep-alives
    # (NextChat gives up on a stream without headers after 60 s).
    first_event_timeout: float = _key("first_event_timeout", 5.0, min=0.1)
    # Images and files a client sends by URL or data: URI (issue 3 item 8): the largest accepted
    # (OpenAI's own image limit is 20 MB), the per-connect/per-read and whole-download timeout, and
    # how many redirects a fetch may follow.
    input_file_max_bytes: int = _key("input_file_max_bytes", 20 * 1024 * 1024, min=1)
    input_file_fetch_timeout: float = _key("input_file_fetch_timeout", 15.0, min=0.1)
    input_file_max_redirects: int = _key("input_file_max_redirects", 3, min=0, max=20)
    # Client image/file URLs, and the download/upload links the upstream hands back, never reach
    # loopback, private, link-local or metadata addresses, except hosts or CIDRs listed here
    # (comma-separated), e.g. "files.intranet.example,10.1.0.0/16"; the upstream's own host is
    # always allowed for its links (upstream/guarded_fetch.py).
    url_fetch_allowlist: str = _key("url_fetch_allowlist", "")
    # Our own limit per upstream token (xyhelper allows ~30/min); 0 turns it off.
    rate_limit_per_minute: int = _key("rate_limit_per_minute", 30, min=0)
    # A request over the limit waits up to this long for a slot before it is answered 429.
    rate_limit_max_wait: float = _key("rate_limit_max_wait", 5.0, min=0)
    # The service's own keys (comma-separated). Set: clients present one of these, and requests are
    # served with the tokens of token_pool. Empty: the Bearer is the client's own ChatGPT token.
    api_keys: str = _key("api_keys", "")
    # Refresh or access tokens (comma-separated; "token:account_id" for a Team account) used with api_keys.
    token_pool: str = _key("token_pool", "")
    backend_container_url: str = _key("backend_container_url", "")
    backend_container_api_prefix: str = _key("backend_container_api_prefix", "")
    key_for_gpts_info: str = _key("key_for_gpts_info", "")
    gpt_4_s_new_name: str = _key("gpt_4_s_new_name", "gpt-4-s")
    gpt_4_mobile_new_name: str = _key("gpt_4_mobile_new_name", "gpt-4-mobile")
    gpt_3_5_new_name: str = _key("gpt_3_5_new_name", "gpt-3.5-turbo")
    gpt_4_o_new_name: str = _key("gpt_4_o_new_name", "gpt-4o")
    gpt_4_o_mini_new_name: str = _key("gpt_4_o_mini_new_name", "gpt-4o-mini")
    o1_preview_new_name: str = _key("o1_preview_new_name", "o1-preview")
    o1_mini_new_name: str = _key("o1_mini_new_name", "o1-mini")
    # The model table over the built-in one (models.py): {"name": {"slug", "aliases", "hints",
    # "thinking_effort", "thinking", "reasoning", "tokenizer"}, "built-in name": null removes it}.
    models: ConfigObject = _key("models", ConfigObject())
    need_delete_conversation_after_response: bool = _key(
        "need_delete_conversation_after_response", False
    )
    use_oaiusercontent_url: bool = _key("use_oaiusercontent_url", False)
    use_pandora_file_server: bool = _key("use_pandora_file_server", False)
    custom_arkose_url: bool = _key("custom_arkose_url", False)
    arkose_urls: str = _key("arkose_urls", "")
    dalle_prompt_prefix: str = _key("dalle_prompt_prefix", DEFAULT_DALLE_PREFIX)
    bot_mode: BotMode = _key("bot_mode", BotMode())
    refresh: RefreshSettings = _key("refresh_ToAccess", RefreshSettings())
    redis: RedisSettings = _key("redis", RedisSettings())
    # Not in config.json: where the process listens and which files it read.
    host: str = _key("HOST", "0.0.0.0", env_only=True)
    port: int = _key("PORT", 33333, min=1, max=65535, env_only=True)
    config_file: str = _key("CONFIG_FILE", "./config.json", env_only=True)
    gpts_file: str = _key("GPTS_FILE", "./gpts.json", env_only=True)
    # Where tool output is saved and served from (/images/<name>, /files/<name>).
    images_dir: str = _key("IMAGES_DIR", "./images", env_only=True)
    files_dir: str = _key("FILES_DIR", "./files", env_only=True)

    @property
    def api_prefix(self) -> str:
        """URL prefix of the /v1 routes: "" or "/<backend_container_api_prefix>"."""
        prefix = self.backend_container_api_prefix.strip("/")
        return f"/{prefix}" if prefix else ""

    @property
    def upstream_root(self) -> str:
        """``upstream_base_url`` + ``upstream_api_prefix``: every backend-api path hangs off it."""
        prefix = self.upstream_api_prefix.strip("/")
        base = self.upstream_base_url.rstrip("/")
        return f"{base}/{prefix}" if prefix else base


def load_settings(
    environ: Optional[Mapping[str, str]] = None, overrides: Optional[Mapping[str, Any]] = None
) -> Settings:
    """Read CONFIG_FILE (default ./config.json), apply environment overrides, validate.

    ``overrides`` (a nested dict in config.json shape) is applied last; tests use it.
    """
    environ = os.environ if environ is None else environ
    config_file = environ.get("CONFIG_FILE", "./config.json")
    raw = read_json_object(config_file, "config file")
    raw["CONFIG_FILE"] = config_file
    _merge(raw, _environment_values(Settings, environ, ""))
    _merge(raw, dict(overrides or {}))
    return _build(Settings, raw, "")


def read_json_object(path: str, what: str) -> dict:
    """A JSON object from ``path`` ({} when the file is absent); anything else is a ConfigError."""
    if not os.path.exists(path):
        return {}
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{what} {path}: not readable JSON ({exc})") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{what} {path}: the top level must be a JSON object")
    return data


def _env_name(prefix: str, key: str) -> str:
    return f"{prefix}{key}".upper() if not prefix else f"{prefix}_{key}".upper()


def _environment_values(cls: type, environ: Mapping[str, str], prefix: str) -> dict:
    """The subset of ``environ`` that names a settings key, in config.json shape."""
    found: dict = {}
    for item in dataclasses.fields(cls):
        key = item.metadata["key"]
        env_name = key.upper() if item.metadata.get("env_only") else _env_name(prefix, key)
        if dataclasses.is_dataclass(item.default):
            nested = _environment_values(type(item.default), environ, env_name)
            if nested:
                found[key] = nested
        elif env_name in environ:
            found[key] = environ[env_name]
    return found


def _merge(target: dict, source: Mapping[str, Any]) -> None:
    for key, value in source.items():
        if isinstance(value, Mapping) and isinstance(target.get(key), dict):
            _merge(target[key], value)
        else:
            target[key] = dict(value) if isinstance(value, Mapping) else value


def _build(cls: type, raw: Mapping[str, Any], path: str) -> Any:
    values = {}
    for item in dataclasses.fields(cls):
        key = item.metadata["key"]
        where = f"{path}.{key}" if path else key
        if dataclasses.is_dataclass(item.default):
            section = raw.get(key, {})
            if not isinstance(section, Mapping):
                raise ConfigError(f"config key {where}: expected an object, got {section!r}")
            values[item.name] = _build(type(item.default), section, where)
        elif key in raw:
            values[item.name] = _coerce(raw[key], item, where)
    return cls(**values)


def _coerce(value: Any, item: dataclasses.Field, where: str) -> Any:
    kind = type(item.default)
    try:
        result = _COERCERS[kind](value)
    except (TypeError, ValueError):
        raise ConfigError(
            f"config key {where} (env {where.replace('.', '_').upper()}): "
            f"expected {_KIND_NAMES[kind]}, got {value!r}"
        ) from None
    if item.metadata.get("upper"):
        result = result.strip().upper()
    _check_range(result, item.metadata, where)
    return result


def _check_range(value: Any, meta: Mapping[str, Any], where: str) -> None:
    if "min" in meta and value < meta["min"]:
        raise ConfigError(f"config key {where}: must be at least {meta['min']}, got {value!r}")
    if "max" in meta and value > meta["max"]:
        raise ConfigError(f"config key {where}: must be at most {meta['max']}, got {value!r}")
    if "choices" in meta and value not in meta["choices"]:
        raise ConfigError(f"config key {where}: must be one of {', '.join(meta['choices'])}, got {value!r}")


def _to_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise ValueError(value)


def _to_int(value: Any) -> int:
    if isinstance(value, bool) or isinstance(value, float) and not value.is_integer():
        raise ValueError(value)
    return int(str(value).strip()) if isinstance(value, str) else int(value)


def _to_float(value: Any) -> float:
    if isinstance(value, bool):
        raise ValueError(value)
    return float(value)


def _to_str(value: Any) -> str:
    if isinstance(value, (dict, list)):
        raise ValueError(value)
    return "" if value is None else str(value)


def _to_object(value: Any) -> ConfigObject:
    """A JSON object from config.json, or the text of one from the environment."""
    if isinstance(value, str):
        value = json.loads(value) if value.strip() else {}
    if not isinstance(value, Mapping):
        raise ValueError(value)
    return ConfigObject(value)


_COERCERS = {bool: _to_bool, int: _to_int, float: _to_float, str: _to_str, ConfigObject: _to_object}
_KIND_NAMES = {bool: "true or false", int: "an integer", float: "a number", str: "a string",
               ConfigObject: "a JSON object"}
