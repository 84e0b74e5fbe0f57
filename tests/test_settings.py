"""config.json keys, environment overrides, and the one-line start-up error."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from backend_to_api.settings import ConfigError, load_settings

from .conftest import ROOT


def write_config(tmp_path, data: dict) -> str:
    path = tmp_path / "config.json"
    path.write_text(json.dumps(data))
    return str(path)


def test_original_config_keys_and_string_booleans(tmp_path):
    path = write_config(tmp_path, {
        "log_level": "debug", "need_log_to_file": "false", "process_workers": 3, "process_threads": 4,
        "upstream_base_url": "https://demo.xyhelper.cn", "upstream_api_prefix": "",
        "backend_container_api_prefix": "666", "gpt_4_s_new_name": "gpt-4-s,dall-e-3",
        "need_delete_conversation_after_response": "true", "use_oaiusercontent_url": "false",
        "bot_mode": {"enabled": "true", "enabled_plugin_output": True},
        "refresh_ToAccess": {"stream_sleep_time": 0, "enableOai": "false",
                             "xyhelper_refreshToAccess_Url": "https://demo.xyhelper.cn/applelogin"},
        "redis": {"host": "redis", "port": 6379, "password": "", "db": 0, "pool_size": 10, "pool_timeout": 60000},
    })
    settings = load_settings({"CONFIG_FILE": path})
    assert settings.log_level == "DEBUG" and settings.need_log_to_file is False
    assert settings.process_workers == 3 and settings.api_prefix == "/666"
    assert settings.need_delete_conversation_after_response is True
    assert settings.bot_mode.enabled is True and settings.bot_mode.plugin_output is True
    assert settings.refresh.enable_oai is False and settings.redis.pool_size == 10


def test_environment_overrides_every_path(tmp_path):
    path = write_config(tmp_path, {"redis": {"host": "redis"}})
    settings = load_settings({
        "CONFIG_FILE": path, "UPSTREAM_BASE_URL": "http://up", "REDIS_HOST": "10.0.0.9", "REDIS_PORT": "7000",
        "BOT_MODE_ENABLED": "true", "REFRESH_TOACCESS_XYHELPER_REFRESHTOACCESS_URL": "http://refresh",
        "HOST": "127.0.0.1", "PORT": "8080", "GPTS_FILE": "/etc/gpts.json",
    })
    assert settings.upstream_base_url == "http://up"
    assert (settings.redis.host, settings.redis.port) == ("10.0.0.9", 7000)
    assert settings.bot_mode.enabled is True and settings.refresh.xyhelper_url == "http://refresh"
    assert (settings.host, settings.port, settings.gpts_file) == ("127.0.0.1", 8080, "/etc/gpts.json")


@pytest.mark.parametrize("env,fragment", [
    ({"REDIS_PORT": "abc"}, "redis.port"),
    ({"BOT_MODE_ENABLED": "yes"}, "bot_mode.enabled"),
    ({"PROCESS_WORKERS": "0"}, "process_workers"),
    ({"LOG_LEVEL": "chatty"}, "log_level"),
    ({"PORT": "70000"}, "PORT"),
])
def test_bad_values_name_the_key(tmp_path, env, fragment):
    with pytest.raises(ConfigError) as info:
        load_settings({"CONFIG_FILE": write_config(tmp_path, {}), **env})
    assert fragment in str(info.value)


def test_bad_config_stops_start_up_with_one_line(tmp_path):
    env = {**os.environ, "CONFIG_FILE": write_config(tmp_path, {"redis": {"port": "not-a-port"}})}
    result = subprocess.run([sys.executable, "main.py"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=30)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "redis.port" in lines[0] and "REDIS_PORT" in lines[0]


def test_duplicate_model_names_are_a_config_error(tmp_path):
    env = {**os.environ, "CONFIG_FILE": write_config(tmp_path, {"gpt_4_s_new_name": "gpt-4o"})}
    result = subprocess.run([sys.executable, "main.py"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=30)
    assert result.returncode == 2 and "gpt-4o" in result.stderr


def test_shipped_config_is_valid():
    settings = load_settings({"CONFIG_FILE": os.path.join(ROOT, "config.json")})
    assert settings.port == 33333 and settings.host == "0.0.0.0"
