"""The conduit flow (issue 14 item 7, spec backend-api-2026.md 2.5-2.7), end to end: three prepares
carrying the conduit token chain, then ``POST /backend-api/f/conversation``, when config.json selects
it, or (``auto``) after the upstream refused the plain POST asking for it. Through the real proxy,
with the openai SDK and with raw SSE read the way NextChat reads it; the emulator
(tests/emulator/conduit.py) checks the states, the token chain and the trace id."""
from __future__ import annotations

import openai
import pytest
import requests

from .conftest import directive
from .emulator.tokens import mint_access_token
from .test_thinking_2026_e2e import nextchat_stream

PLAIN = "/backend-api/conversation"
PREPARE = "/backend-api/f/conversation/prepare"
CONDUIT = "/backend-api/f/conversation"
ANSWER = "Through the conduit, 你好 🙂"


@pytest.fixture
def fresh(emulator):
    emulator.reset()
    yield emulator
    emulator.reset()  # the refusal switches must not outlive the test


@pytest.fixture(scope="module")
def conduit_proxy(start_proxy):
    return start_proxy({"CONVERSATION_FLOW": "conduit"})


def ask(client, text=ANSWER, **kwargs):
    return client.chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": directive(text=text)}], **kwargs)


def assert_one_conduit_turn(prepares, posts):
    """Three prepares none -> sent -> success, each carrying the token the previous one got, all
    with the post's trace id; the post carries the last token."""
    assert [p["json"]["client_prepare_state"] for p in prepares] == ["none", "sent", "success"]
    assert prepares[0]["headers"].get("X-Conduit-Token", "") == ""
    assert all(p["headers"]["X-Conduit-Token"].startswith("ct_") for p in prepares[1:])
    assert len({p["headers"]["X-Conduit-Token"] for p in prepares}) == 3
    [post] = posts
    trace = post["headers"]["X-Oai-Turn-Trace-Id"]
    assert trace and all(p["headers"]["X-Oai-Turn-Trace-Id"] == trace for p in prepares)
    assert post["headers"]["X-Conduit-Token"].startswith("ct_")
    assert post["json"]["client_prepare_state"] == "success"
    assert prepares[1]["json"]["partial_query"]["content"]["parts"] == ['{"emu']  # first 5 characters
    assert prepares[0]["json"]["model"] == post["json"]["model"] == "gpt-4o"
    assert prepares[0]["json"]["parent_message_id"] == post["json"]["parent_message_id"]


def test_conduit_selected_by_config_answers_through_f_conversation(conduit_proxy, fresh):
    fresh.configure(plain_conversation_refused="*")  # the plain path would fail the chat
    reply = ask(conduit_proxy.client("rt-conduit"))
    assert reply.choices[0].message.content == ANSWER
    assert fresh.requests(PLAIN) == []
    assert_one_conduit_turn(fresh.requests(PREPARE), fresh.requests(CONDUIT))
    # The refusal switch itself works (so the test above could have failed):
    failed = requests.post(fresh.url + PLAIN, json={}, timeout=5,
                           headers={"Authorization": "Bearer " + mint_access_token("rt-conduit", 600)})
    assert failed.status_code == 404 and "/f/conversation" in failed.json()["detail"]


def test_conduit_stream_with_the_sdk_and_as_nextchat_reads_it(conduit_proxy, fresh):
    chunks = list(ask(conduit_proxy.client("rt-conduit-stream"), stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == ANSWER
    parsed, datas = nextchat_stream(conduit_proxy, {
        "model": "gpt-4o", "messages": [{"role": "user", "content": directive(text=ANSWER)}]})
    assert "".join(c["choices"][0]["delta"].get("content") or "" for c in parsed if c["choices"]) == ANSWER
    assert datas[-1] == "[DONE]"
    assert len(fresh.requests(CONDUIT)) == 2 and len(fresh.requests(PREPARE)) == 6
    assert fresh.requests(PLAIN) == []


def test_auto_switches_after_a_refusal_and_stays_switched(start_proxy, fresh):
    # One worker: the decision is remembered per worker.
    proxy = start_proxy({"CONVERSATION_FLOW": "auto", "PROCESS_WORKERS": "1"})
    client = proxy.client("rt-conduit-auto")
    assert ask(client, "before").choices[0].message.content == "before"  # not refused yet: mirror
    assert len(fresh.requests(PLAIN)) == 1 and fresh.requests(PREPARE) == []
    fresh.configure(plain_conversation_refused="rt-conduit-auto")
    streams_before = len(fresh.streams())

    assert ask(client).choices[0].message.content == ANSWER
    assert len(fresh.requests(PLAIN)) == 2  # the refused POST, once, and never again
    # The refused POST created no message: one stream only, the conduit one.
    assert len(fresh.streams()) == streams_before + 1
    assert_one_conduit_turn(fresh.requests(PREPARE), fresh.requests(CONDUIT))

    parsed, _ = nextchat_stream(proxy, {"model": "gpt-4o",
                                        "messages": [{"role": "user", "content": directive(text="next")}]})
    assert "".join(c["choices"][0]["delta"].get("content") or "" for c in parsed if c["choices"]) == "next"
    assert len(fresh.requests(PLAIN)) == 2, "the next chat must go straight to the conduit flow"
    assert len(fresh.requests(CONDUIT)) == 2


def test_auto_does_not_switch_on_other_refusals(start_proxy, fresh):
    proxy = start_proxy({"CONVERSATION_FLOW": "auto", "PROCESS_WORKERS": "1"})
    content = directive(emu="http_error", status=500)
    with pytest.raises(openai.APIStatusError) as failure:
        proxy.client("rt-conduit-500").chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": content}])
    assert failure.value.status_code == 502
    assert len(fresh.requests(PLAIN)) == 1 and fresh.requests(PREPARE) == [] and fresh.requests(CONDUIT) == []


def test_a_failing_prepare_is_a_502_without_any_conversation_post(conduit_proxy, fresh):
    fresh.configure(fail_prepare="*")
    for stream in (False, True):
        with pytest.raises(openai.APIStatusError) as failure:
            reply = ask(conduit_proxy.client("rt-conduit-fail"), stream=stream)
            list(reply)
        assert failure.value.status_code == 502
        assert failure.value.body["code"] == "upstream_prepare_failed", failure.value.body
    assert len(fresh.requests(PREPARE)) == 4  # each turn: the first prepare, tried twice
    assert fresh.requests(CONDUIT) == [] and fresh.requests(PLAIN) == []


def test_a_rejected_token_on_prepare_is_refreshed_once(conduit_proxy, fresh):
    client = conduit_proxy.client("rt-conduit-refresh")
    assert ask(client, "one").choices[0].message.content == "one"
    token = fresh.requests(PREPARE)[0]["headers"]["Authorization"].split()[1]
    fresh.revoke(token)
    assert ask(client, "two").choices[0].message.content == "two"
    prepares = fresh.requests(PREPARE)
    assert len(prepares) == 3 + 1 + 3  # the 401 is on the first prepare: no message was posted
    assert len(fresh.requests(CONDUIT)) == 2
    assert_one_conduit_turn(prepares[4:], fresh.requests(CONDUIT)[1:])


def test_mirror_stays_the_default(proxy, fresh):
    assert ask(proxy.client("rt-conduit-mirror")).choices[0].message.content == ANSWER
    [post] = fresh.requests(PLAIN)
    assert "X-Conduit-Token" not in post["headers"] and "client_prepare_state" not in post["json"]
    assert fresh.requests(PREPARE) == [] and fresh.requests(CONDUIT) == []


def test_the_emulator_catches_a_broken_token_chain(fresh):
    """What proves the proxy carries the tokens right: the emulator refuses any other chain."""
    session = requests.Session()
    session.headers["Authorization"] = "Bearer " + mint_access_token("rt-chain", 600)

    def prepare(state, token, trace="t-1"):
        return session.post(fresh.url + PREPARE, json={"client_prepare_state": state}, timeout=5,
                            headers={"X-Conduit-Token": token, "X-Oai-Turn-Trace-Id": trace})

    def post(token, trace="t-1"):
        return session.post(fresh.url + CONDUIT, json={"client_prepare_state": "success"}, timeout=5,
                            headers={"X-Conduit-Token": token, "X-Oai-Turn-Trace-Id": trace})

    assert prepare("sent", "").status_code == 403  # out of order
    first = prepare("none", "").json()["conduit_token"]
    assert prepare("sent", "ct_forged").status_code == 403  # not the last token
    second = prepare("sent", first).json()["conduit_token"]
    assert post(second).status_code == 403  # prepared twice, not three times
    third = prepare("success", second).json()["conduit_token"]
    assert post(first).status_code == 403  # an older token
    assert post(third, trace="t-other").status_code == 403  # another turn's trace
    assert prepare("success", third).status_code == 403  # a fourth prepare
    answered = post(third)
    assert answered.status_code == 422  # the chain held: it got to the (empty) body's checks
    assert post(third).status_code == 403  # a token is spent once
