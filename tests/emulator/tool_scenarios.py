"""Scenarios whose answer points at tool output: browsing citations, DALL-E and python images,
sandbox files. Registered in `scenarios.STREAM_SCENARIOS`; built from the same blocks.

Import it only through `scenarios` (which imports it last); tests read `tool_content`."""
from __future__ import annotations

import json

from . import messages
from .messages import LiveMessage
from .scenarios import ReplyContext, Steps, answer, closing, grow, preamble
from .tool_content import BROWSING_TEXT, CITED, DALLE_PROMPT, citation


def new_tool(ctx: ReplyContext, name: str, content: dict) -> LiveMessage:
    message = messages.tool_message(ctx.conversation_id, ctx.last_message_id, ctx.model_slug, name, content)
    ctx.last_message_id = message.id
    return message


def tool_call(ctx: ReplyContext, recipient: str, code: str) -> Steps:
    """An assistant code message addressed to a tool, grown, then handed over (no end of turn)."""
    message = ctx.new_assistant(messages.code_content(), recipient=recipient)
    yield message.update()
    yield from grow(ctx, message, ctx.prefixes(code))
    yield message.finish(end_turn=False, finish_type="stop")


def browsing(ctx: ReplyContext) -> Steps:
    """A search, a quote, then text whose markers arrive split; citations come only with the last
    event, as upstream often does."""
    yield from preamble(ctx)
    yield from tool_call(ctx, "browser", 'search("weather tomorrow")')
    quote = {"content_type": "tether_quote", "url": CITED[11], "domain": "news.example",
             "title": "Weather", "text": "Sunny tomorrow.", "tether_id": None}
    yield new_tool(ctx, "browser", quote).update()
    message = ctx.new_assistant(messages.text_content())
    yield message.update()
    yield from grow(ctx, message, ctx.prefixes(BROWSING_TEXT))
    message.message["metadata"]["citations"] = [citation(i, url) for i, url in CITED.items()]
    yield message.finish(True, ctx.directive.finish)
    yield from closing()


def dalle(ctx: ReplyContext) -> Steps:
    """The JSON prompt to dalle.text2im, its image (sent twice, as upstream repeats it), then text."""
    d = ctx.directive
    yield from preamble(ctx)
    yield from tool_call(ctx, "dalle.text2im", json.dumps(DALLE_PROMPT))
    pointer = {"content_type": "image_asset_pointer", "asset_pointer": f"file-service://{d.file_id}",
               "size_bytes": 1234, "width": 24, "height": 16, "fovea": None,
               "metadata": {"dalle": {"gen_id": "emu", "prompt": DALLE_PROMPT["prompt"], "seed": 1}}}
    image = new_tool(ctx, "dalle.text2im", {"content_type": "multimodal_text", "parts": [pointer]})
    yield image.update()
    yield image.update()
    yield from answer(ctx, d.after)
    yield from closing()


def python_image(ctx: ReplyContext) -> Steps:
    """Code that plots: the output is `<<ImageDisplayed>>` with the image in aggregate_result."""
    d = ctx.directive
    yield from preamble(ctx)
    yield from tool_call(ctx, "python", d.code)
    output = ctx.new_python_output(d.code, "<<ImageDisplayed>>")
    output.message["metadata"]["aggregate_result"]["messages"] = [
        {"message_type": "image", "time": 0, "sender": "server", "image_url": f"file-service://{d.file_id}",
         "width": 24, "height": 16}]
    yield output.update()
    yield from answer(ctx, d.after)
    yield from closing()


def sandbox(ctx: ReplyContext) -> Steps:
    """Code that writes a file, then text linking it as `sandbox:` (split across events by `chunk`)."""
    d = ctx.directive
    yield from preamble(ctx)
    yield from tool_call(ctx, "python", d.code)
    yield ctx.new_python_output(d.code, d.output).update()
    name = d.sandbox_path.rsplit("/", 1)[-1]

    def link_served(message: LiveMessage) -> None:  # interpreter/download answers for exactly this
        ctx.record.sandbox_files.append({"message_id": message.id, "path": d.sandbox_path})

    yield from answer(ctx, f"Saved: [{name}](sandbox:{d.sandbox_path}) (CSV). Done.", created=link_served)
    yield from closing()


TOOL_SCENARIOS = {"browsing": browsing, "dalle": dalle, "python_image": python_image, "sandbox": sandbox}
