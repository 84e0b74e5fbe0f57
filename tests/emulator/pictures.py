"""Today's image model (spec backend-api-2026.md 3.7): `picture_v2` turns, their results and downloads.

Scenarios (registered in `scenarios.STREAM_SCENARIOS`):
- `picture_v2`: a tool message (`multimodal_text`) first showing a partial preview
  (`metadata.generation.height` below `height`, its own pointer `<file_id>-preview`), then the
  finished image `<pointer>://<file_id>` with `metadata.dalle.prompt`; no assistant text.
- `picture_v2_async`: the turn ends with only a tool message carrying `metadata.image_gen_task_id`
  (`async_task_type: image_gen`); the image is found later in `GET /backend-api/conversation/<id>`,
  `async_delay` seconds after the turn (before that the stored conversation holds a partial preview).
- `picture_v2_refusal`: `refusal` = `object` (a tool message whose metadata holds an object of type
  `content_policy_violation`), `error_frame` (an error frame with code `content_policy_violation`),
  `text` (assistant text, no image) or `async` (the async task later fails with such an object).

Endpoints:
- `GET /backend-api/conversation/<id>` -> `{conversation_id, title, current_node, mapping}` of the
  messages stored so far (those whose time has come); unknown ids 404.
- `GET /backend-api/conversation/<id>/attachment/<file_id>/download` -> `{download_url}` for a
  `sediment://` file that this very conversation produced (404 otherwise: wrong conversation id).
"""
from __future__ import annotations

import time
import uuid

from flask import Blueprint, current_app, jsonify

from . import messages
from .downloads import link
from .scenarios import ReplyContext, Steps, closing, grow, preamble
from .state import EmulatorState
from .steps import DataFrame
from .tool_content import PICTURE_PROMPT, PICTURE_REFUSAL, PICTURE_TITLE

pictures_bp = Blueprint("pictures", __name__, url_prefix="/backend-api")

TOOL_NAME = "t2uay3k.sj1i4kz"  # the image tool's name as [C] saw it
SIZE = 1024
POLICY_ERROR = {"type": "content_policy_violation", "code": "content_policy_violation",
                "message": "This request violates our content policies."}


def image_part(ctx: ReplyContext, file_id: str, generated_height: int) -> dict:
    return {"content_type": "image_asset_pointer", "asset_pointer": f"{ctx.directive.pointer}://{file_id}",
            "size_bytes": 4321, "width": SIZE, "height": SIZE, "fovea": None,
            "metadata": {"dalle": {"gen_id": "emu-gen", "prompt": PICTURE_PROMPT, "seed": 7, "parent_gen_id": None},
                         "generation": {"gen_id": "emu-gen", "gen_size": "image", "height": generated_height,
                                        "width": SIZE, "transparent_background": False},
                         "gizmo": None, "sanitized": False}}


def new_image_tool(ctx: ReplyContext, content: dict) -> messages.LiveMessage:
    message = messages.tool_message(ctx.conversation_id, ctx.last_message_id, ctx.model_slug, TOOL_NAME, content)
    message.message["status"] = "in_progress"
    ctx.last_message_id = message.id
    return message


def store(ctx: ReplyContext, message: dict, delay: float = 0.0) -> None:
    """Keep a message in the conversation that GET /conversation/<id> shows (after ``delay``)."""
    ctx.state.store_message(ctx.conversation_id, message, time.time() + delay)


def picture_v2(ctx: ReplyContext) -> Steps:
    yield from preamble(ctx)
    store(ctx, ctx.user_message)
    file_id = ctx.directive.file_id
    tool = new_image_tool(ctx, {"content_type": "multimodal_text", "parts": [image_part(ctx, f"{file_id}-preview", 512)]})
    yield tool.update()
    tool.message["content"]["parts"] = [image_part(ctx, file_id, SIZE)]
    tool.message["metadata"]["image_gen_title"] = PICTURE_TITLE
    yield tool.finish(end_turn=None)
    store(ctx, tool.message)
    yield from closing()


def _task_message(ctx: ReplyContext, task_id: str) -> messages.LiveMessage:
    tool = new_image_tool(ctx, messages.text_content())
    tool.message["metadata"].update(image_gen_task_id=task_id, async_task_type="image_gen",
                                    async_task_title=PICTURE_TITLE)
    return tool


def picture_v2_async(ctx: ReplyContext) -> Steps:
    """The turn ends before the image exists; it shows up in the stored conversation later."""
    yield from preamble(ctx)
    store(ctx, ctx.user_message)
    task_id = f"task_{uuid.uuid4().hex[:12]}"
    tool = _task_message(ctx, task_id)
    yield tool.update()
    yield from grow(ctx, tool, ctx.prefixes("Processing image. This may take a moment."))
    yield tool.finish(end_turn=True)
    store(ctx, tool.message)
    result = new_image_tool(ctx, {"content_type": "multimodal_text", "parts": []})
    result.message["metadata"].update(async_task_type="image_gen", image_gen_task_id=task_id)
    preview = dict(result.message, content={"content_type": "multimodal_text",
                                            "parts": [image_part(ctx, f"{ctx.directive.file_id}-preview", 512)]})
    store(ctx, preview)  # what polling finds first: a partial preview, to be ignored
    result.message["status"] = "finished_successfully"
    if ctx.directive.refusal == "async":
        result.message["metadata"]["error"] = POLICY_ERROR
        result.message["content"]["parts"] = [PICTURE_REFUSAL]
    else:
        result.message["content"]["parts"] = [image_part(ctx, ctx.directive.file_id, SIZE)]
    store(ctx, result.message, ctx.directive.async_delay)
    yield from closing()


def picture_v2_refusal(ctx: ReplyContext) -> Steps:
    d = ctx.directive
    if d.refusal == "async":
        yield from picture_v2_async(ctx)
        return
    yield from preamble(ctx)
    if d.refusal == "error_frame":
        yield DataFrame({"message": None, "conversation_id": ctx.conversation_id,
                         "error": {"message": POLICY_ERROR["message"], "code": "content_policy_violation"}})
    elif d.refusal == "object":
        tool = new_image_tool(ctx, messages.text_content(PICTURE_REFUSAL))
        tool.message["metadata"]["error"] = POLICY_ERROR
        yield tool.finish(end_turn=None)
    else:
        answer = ctx.new_assistant(messages.text_content())
        yield answer.update()
        yield from grow(ctx, answer, ctx.prefixes(PICTURE_REFUSAL))
        yield answer.finish(True, "stop")
    yield from closing()


PICTURE_SCENARIOS = {"picture_v2": picture_v2, "picture_v2_async": picture_v2_async,
                     "picture_v2_refusal": picture_v2_refusal}


def _state() -> EmulatorState:
    return current_app.extensions["emulator"]


@pictures_bp.get("/conversation/<conversation_id>")
def stored_conversation(conversation_id: str):
    stored = _state().conversation_messages(conversation_id)
    if stored is None:
        return jsonify(detail="Conversation not found"), 404
    mapping, parent = {}, None
    for message in stored:
        node = {"id": message["id"], "message": message, "parent": parent, "children": []}
        if parent is not None:
            mapping[parent]["children"].append(message["id"])
        mapping[message["id"]], parent = node, message["id"]
    return jsonify(conversation_id=conversation_id, title=PICTURE_TITLE, current_node=parent, mapping=mapping)


@pictures_bp.get("/conversation/<conversation_id>/attachment/<file_id>/download")
def attachment_download(conversation_id: str, file_id: str):
    if not _state().conversation_has_file(conversation_id, f"sediment://{file_id}"):
        return jsonify(detail="File not found"), 404
    return jsonify(status="success", download_url=link("downloads.blob", name=file_id), file_name=f"{file_id}.png")
