"""ChunkFactory: the pre-serialized content chunk must be byte-for-byte what serializing it whole gives."""
import json

from hypothesis import given, settings
from hypothesis import strategies as st

from backend_to_api.render.chunks import MAX_DELTA_CHARS, ChunkFactory, sse


@settings(max_examples=300, deadline=None)
@given(model=st.sampled_from(["gpt-4o", 'we"ird "content":"" model', "模型\\name"]),
       include_usage=st.booleans(),
       text=st.one_of(st.text(), st.text(alphabet="a\"\\\n\u2028😀é\ud800", max_size=50)))
def test_a_content_chunk_is_the_chunk_serialized_whole(model, include_usage, text):
    factory = ChunkFactory(model, include_usage)
    pieces = list(factory.content(text))
    wanted = [sse(factory.chunk({"content": text[start:start + MAX_DELTA_CHARS]}))
              for start in range(0, len(text), MAX_DELTA_CHARS)]
    assert [json.loads(p[6:]) for p in pieces] == [json.loads(w[6:]) for w in wanted]
    if not any(0xD800 <= ord(c) <= 0xDFFF for c in text):  # a lone surrogate is escaped, either way valid
        assert pieces == wanted
    for piece in pieces:
        assert json.loads(piece[len(b"data: "):])["model"] == model


def test_long_text_is_split_and_joins_back():
    text = "字" * (2 * MAX_DELTA_CHARS + 5)
    pieces = list(ChunkFactory("gpt-4o").content(text))
    assert len(pieces) == 3
    assert "".join(json.loads(p[6:])["choices"][0]["delta"]["content"] for p in pieces) == text
