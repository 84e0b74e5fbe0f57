"""How an image link reads in a reply, per the original's strings and bot-mode matrix
(original-behaviour.md §10.6, §10.9): markdown plus a download link, or ``图片链接：URL``, or nothing."""
from __future__ import annotations

from typing import Optional

from ..settings import BotMode

UNAVAILABLE = "\n[image could not be downloaded]\n"


def image_style(bot_mode: BotMode) -> Optional[str]:
    """"markdown", "plain" or None (show nothing, so don't even download)."""
    if not bot_mode.enabled:
        return "markdown"
    if bot_mode.plain_image_url_output:  # wins over markdown, as in the original
        return "plain"
    return "markdown" if bot_mode.markdown_image_output else None


def image_text(url: Optional[str], style: str, text_before: bool) -> str:
    if url is None:
        return UNAVAILABLE
    if style == "plain":
        return f"\n图片链接：{url}\n" if text_before else f"图片链接：{url}\n"
    return f"\n![image]({url})\n[下载链接]({url})\n"
