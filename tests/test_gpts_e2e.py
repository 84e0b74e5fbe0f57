"""GPTs end to end: gpts.json names and gpt-4-gizmo-<id> go out in GPT mode with the fetched info."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import uuid
from concurrent.futures import ThreadPoolExecutor

import openai
import pytest

from backend_to_api.scheduler import run_daily_gizmo_refresh
from backend_to_api.services import build_services
from backend_to_api.settings import load_settings
from backend_to_api.store import RedisStore, redis_client

from .conftest import ROOT, directive, wait_until
from .emulator.actions import ACTION_ANSWER
from .emulator.scenarios import ACTION_OPERATION_HASH
from .emulator.tokens import decode_payload

KEY = "rt-gpts-key"


def gizmo_id(kind: str = "g") -> str:
    # Unique per test: the session's proxies share one Redis, where GPT info is cached.
    return f"{kind}-{uuid.uuid4().hex[:8]}-emu-gpt"


def gpts_file(entries: dict) -> str:
    handle = tempfile.NamedTemporaryFile("w", suffix=".json", delete=False)
    json.dump({name: {"id": gid} for name, gid in entries.items()}, handle)
    handle.close()
    return handle.name


def ask(proxy, model: str, **kwargs):
    return proxy.client(**kwargs).chat.completions.create(
        model=model, messages=[{"role": "user", "content": "hi"}])


@pytest.fixture(scope="module")
def gpts():
    return {"my-gpt": gizmo_id(), "gone-gpt": gizmo_id("g-missing")}


@pytest.fixture(scope="module")
def gpt_proxy(start_proxy, gpts):
    return start_proxy({"GPTS_FILE": gpts_file(gpts), "KEY_FOR_GPTS_INFO": KEY})


def test_gpt_payload_carries_gizmo_id_and_kind(gpt_proxy, emulator, gpts):
    reply = ask(gpt_proxy, "my-gpt")
    assert reply.choices[0].message.content == "Echo: hi"
    assert reply.model == "my-gpt"
    payload = emulator.conversations()[-1]["json"]
    assert payload["model"] == "gpt-4-gizmo"
    mode = payload["conversation_mode"]
    assert mode["kind"] == "gizmo_interaction"
    assert mode["gizmo_id"] == gpts["my-gpt"]
    assert mode["gizmo"]["gizmo"]["id"] == gpts["my-gpt"]
    assert mode["gizmo"]["gizmo"]["display"]["name"] == "Emu GPT"


def test_gizmo_info_is_fetched_once_for_all_workers(gpt_proxy, emulator, redis_server, gpts):
    path = f"/backend-api/gizmos/{gpts['my-gpt']}"
    # The workers fetch configured GPTs at start, off the request path.
    wait_until(lambda: emulator.requests(path), timeout=10, what="start-up GPT fetch")
    with ThreadPoolExecutor(8) as pool:  # enough at once that both workers serve some
        replies = list(pool.map(lambda _: ask(gpt_proxy, "my-gpt", api_key=f"rt-{uuid.uuid4().hex[:6]}"), range(8)))
    assert all(r.choices[0].message.content == "Echo: hi" for r in replies)
    calls = emulator.requests(path)
    assert len(calls) == 1
    # fetched with key_for_gpts_info's token, not a caller's
    token = calls[0]["headers"]["Authorization"].split()[1]
    assert decode_payload(token)["sub"] == KEY
    cached = json.loads(redis_server.command("GET", f"b2a:gizmo:{gpts['my-gpt']}").split(b"\r\n")[1])
    assert cached["info"]["gizmo"]["id"] == gpts["my-gpt"]


def test_gpt_names_are_listed(gpt_proxy, gpts):
    listed = [model.id for model in gpt_proxy.client().models.list()]
    assert {"my-gpt", "gone-gpt", "gpt-4o"} <= set(listed)
    assert gpt_proxy.client().models.retrieve("my-gpt").id == "my-gpt"


def test_gizmo_by_id_without_configuration(proxy, emulator):
    gid = gizmo_id()
    stream = proxy.client("rt-gizmo-caller").chat.completions.create(
        model=f"gpt-4-gizmo-{gid}", messages=[{"role": "user", "content": "hi"}], stream=True)
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == "Echo: hi"
    payload = emulator.conversations()[-1]["json"]
    assert payload["model"] == "gpt-4-gizmo"
    assert payload["conversation_mode"]["gizmo_id"] == gid
    # no key_for_gpts_info here: the caller's own key fetched the info
    call = emulator.requests(f"/backend-api/gizmos/{gid}")[0]
    assert decode_payload(call["headers"]["Authorization"].split()[1])["sub"] == "rt-gizmo-caller"


@pytest.mark.parametrize("model", ["gone-gpt", "gpt-4-gizmo-g-missing-nothing-here", "gpt-4-gizmo-g-x/../../me"])
def test_missing_gizmo_is_404_model_not_found(gpt_proxy, emulator, model):
    before = len(emulator.requests())
    with pytest.raises(openai.NotFoundError) as info:
        ask(gpt_proxy, model)
    assert info.value.body["code"] == "model_not_found"
    # never a fallback conversation; an id that is not a GPT id never reaches the upstream at all
    assert not [r for r in emulator.requests()[before:] if r["path"] == "/backend-api/conversation"
                or ".." in r["path"] or r["path"].endswith("/me")]


def test_gizmo_fetch_failure_is_502_not_401(start_proxy, emulator):
    # key_for_gpts_info is dead: that is this server's problem, not the caller's key
    proxy = start_proxy({"KEY_FOR_GPTS_INFO": "bad-gpts-key"})
    with pytest.raises(openai.InternalServerError) as info:
        ask(proxy, f"gpt-4-gizmo-{gizmo_id()}")
    assert info.value.status_code == 502
    assert "key_for_gpts_info" in info.value.body["message"]


def test_bad_gpts_file_stops_start_up(tmp_path):
    bad = tmp_path / "gpts.json"
    bad.write_text('{"gpt-4o": {"id": "g-x"}}')
    result = subprocess.run([sys.executable, "main.py"], cwd=ROOT, capture_output=True, text=True, timeout=30,
                            env={**os.environ, "GPTS_FILE": str(bad), "CONFIG_FILE": os.path.join(ROOT, "config.json")})
    assert result.returncode == 2
    assert "'gpt-4o' is already a built-in model" in result.stderr


def test_daily_gizmo_refresh_runs_once(emulator, redis_server):
    gid = gizmo_id()
    settings = load_settings({}, overrides={
        "upstream_base_url": emulator.url, "key_for_gpts_info": KEY, "GPTS_FILE": gpts_file({"daily-gpt": gid}),
        "refresh_ToAccess": {"xyhelper_refreshToAccess_Url": emulator.url + "/applelogin"},
        "redis": {"host": "127.0.0.1", "port": redis_server.port, "db": 4},
    })
    store = RedisStore(redis_client(settings.redis))
    store.client.flushdb()
    day = "2026-01-01"  # fixed: a run across midnight would claim a second day
    assert run_daily_gizmo_refresh(build_services(settings, store), day) == 1
    # another worker (or instance) the same day does nothing
    assert run_daily_gizmo_refresh(build_services(settings, RedisStore(redis_client(settings.redis))), day) == 0
    assert len(emulator.requests(f"/backend-api/gizmos/{gid}")) == 1
    assert store.get_json(f"gizmo:{gid}")["info"]["gizmo"]["id"] == gid


@pytest.mark.parametrize("encoding", ["cumulative", "v1"])
def test_gpt_action_confirmation_is_answered_automatically(gpt_proxy, emulator, gpts, encoding):
    before = len(emulator.conversations())
    chunks = list(gpt_proxy.client().chat.completions.create(
        model="my-gpt", stream=True,
        messages=[{"role": "user", "content": directive(emu="gpt_action", encoding=encoding)}]))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices).endswith(ACTION_ANSWER)
    assert chunks[-1].choices[0].finish_reason == "stop"
    # the emulator answers 422 unless the answer quotes the question exactly; check the essentials too
    asked, answered = [c["json"] for c in emulator.conversations()[before:]]
    streams = emulator.streams()[-2:]
    assert [s["scenario"] for s in streams] == ["gpt_action", "action_result"]
    assert answered["conversation_id"] == streams[0]["conversation_id"]
    assert answered["conversation_mode"]["gizmo_id"] == gpts["my-gpt"]
    action = answered["messages"][0]["metadata"]["jit_plugin_data"]["from_client"]["user_action"]
    assert action["data"] == {"type": "always_allow", "operation_hash": ACTION_OPERATION_HASH}
    assert answered["parent_message_id"] == action["target_message_id"]


def test_gpt_action_in_a_non_stream_reply(gpt_proxy, emulator):
    reply = gpt_proxy.client().chat.completions.create(
        model="my-gpt", messages=[{"role": "user", "content": directive(emu="gpt_action")}])
    assert reply.choices[0].message.content.endswith(ACTION_ANSWER)
    assert emulator.streams()[-1]["scenario"] == "action_result"


def test_start_up_check_imports_nothing_heavy():
    # main.py validates gpts.json in the gunicorn master; requests or redis imported there would be
    # unpatched in the gevent workers, whose shared connection pool then breaks under concurrency.
    code = ("import sys, main; from backend_to_api.settings import load_settings; main._check(load_settings()); "
            "print(sorted(m for m in ('requests', 'urllib3', 'redis') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=30)
    assert result.stdout.strip() == "[]", result.stderr
