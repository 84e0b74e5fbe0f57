"""Which refusals of the plain conversation POST may switch to the conduit flow, and for how long
(backend_to_api/upstream/conduit.py); the flow itself is tested end to end in test_conduit_e2e.py."""
import pytest

from backend_to_api.upstream.conduit import REMEMBER_SECONDS, FlowChoice, prepare_body, wants_conduit

NAMING = '{"detail": "This endpoint moved: use /backend-api/f/conversation"}'


@pytest.mark.parametrize("status, body, switch", [
    (404, '{"detail": "Not Found"}', True),  # the route is gone: nothing was taken
    (405, "", True),
    (410, "", True),
    (400, NAMING, True),
    (403, '{"detail": {"code": "conduit_required"}}', True),
    (400, '{"detail": "bad model"}', False),  # a refusal that says nothing of the flow
    (403, "<html>Cloudflare</html>", False),
    (401, NAMING, False),  # the token: refreshed instead
    (429, NAMING, False),
    (500, NAMING, False),  # the server may have started on the turn
    (502, "", False),
    (200, NAMING, False),
])
def test_only_a_refusal_that_took_nothing_switches(status, body, switch):
    assert wants_conduit(status, body) is switch


def test_auto_remembers_the_switch_for_a_while_then_tries_the_plain_post_again():
    now = [1000.0]
    choice = FlowChoice("auto", clock=lambda: now[0])
    assert not choice.use_conduit() and choice.may_switch(404, "")
    choice.switched()
    now[0] += REMEMBER_SECONDS - 1
    assert choice.use_conduit()
    now[0] += 2
    assert not choice.use_conduit()


@pytest.mark.parametrize("mode, conduit", [("mirror", False), ("conduit", True)])
def test_a_selected_flow_never_switches(mode, conduit):
    choice = FlowChoice(mode)
    assert choice.use_conduit() is conduit and not choice.may_switch(404, NAMING)


def test_prepare_body_follows_the_payload():
    payload = {"action": "next", "parent_message_id": "p-1", "model": "gpt-5", "conversation_id": "c-1",
               "system_hints": ["reason"], "messages": [
                   {"author": {"role": "user"}, "content": {"content_type": "text", "parts": ["Hello world"]}}]}
    first, second = prepare_body(payload, "none"), prepare_body(payload, "sent")
    assert first["client_prepare_state"] == "none" and "partial_query" not in first
    assert (first["model"], first["parent_message_id"], first["conversation_id"]) == ("gpt-5", "p-1", "c-1")
    assert first["system_hints"] == ["reason"]
    assert second["partial_query"]["content"]["parts"] == ["Hello"]
    assert prepare_body({**payload, "messages": []}, "success")["partial_query"]["content"]["parts"] == ["h"]
