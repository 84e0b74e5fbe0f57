"""What the tool-output scenarios say, shared with the tests that check the proxy's rendering."""
from __future__ import annotations

# Markers in both spellings and the newer `N:M` form; 9 has no citation (must be dropped).
BROWSING_TEXT = "据报道【11†source】，明天晴【3:0†source】。See also【7†来源】 and【9†source】 (end)."
CITED = {11: "https://news.example/weather?a=1&b=2", 3: "https://example.org/forecast", 7: "https://例子.cn/天气"}
DALLE_PROMPT = {"size": "1024x1024", "prompt": "A small red fox in the snow"}


def citation(index: int, url: str) -> dict:
    return {"start_ix": 0, "end_ix": 0, "citation_format_type": "tether_og",
            "metadata": {"type": "webpage", "title": f"Source {index}", "url": url, "text": "",
                         "pub_date": None, "extra": {"cited_message_idx": index, "evidence_text": "source"}}}

# picture_v2 (pictures.py): the prompt the image tool reports, the conversation title, a refusal.
PICTURE_PROMPT = "A watercolour lighthouse at dawn"
PICTURE_TITLE = "Lighthouse at dawn"
PICTURE_REFUSAL = "I can't create that image because the request violates our content policies."
