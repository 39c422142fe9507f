from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness.core.errors import StreamProtocolError
from harness.core.sse import SSEComment, SSEEvent, SSEParser, parse_sse


def test_fields_comments_multiline_and_done() -> None:
    text = ": keep-alive\n\nevent: update\nid: 7\nretry: 500\ndata: a\ndata: b\n\ndata: [DONE]\n\n"
    assert parse_sse([text]) == [
        SSEComment("keep-alive"),
        SSEEvent(data="a\nb", event="update", id="7", retry=500),
        SSEEvent(data="[DONE]", id="7"),
    ]
    assert parse_sse([text])[-1].is_done  # type: ignore[union-attr]


@pytest.mark.parametrize("eol", ["\n", "\r\n", "\r"])
def test_line_endings(eol: str) -> None:
    assert parse_sse([f"data: x{eol}{eol}data: y{eol}{eol}"]) == [SSEEvent("x"), SSEEvent("y")]


def test_crlf_split_between_chunks_is_one_line_break() -> None:
    p = SSEParser()
    assert p.feed("data: x\r") == []
    assert p.feed("\n\r\n") == [SSEEvent("x")]


def test_event_without_data_is_not_dispatched_and_value_space_stripped_once() -> None:
    assert parse_sse(["event: ping\n\ndata:  two spaces\n\n"]) == [SSEEvent(" two spaces")]


def test_unterminated_last_event_is_dispatched_and_flagged() -> None:
    p = SSEParser()
    assert p.feed("data: tail") == []
    assert p.finish() == [SSEEvent("tail")]
    assert p.truncated


def test_huge_line_without_newline_is_an_error_not_an_oom() -> None:
    p = SSEParser(max_line=1000)
    p.feed("data: " + "x" * 900)
    with pytest.raises(StreamProtocolError):
        p.feed("x" * 200)


def test_long_lines_that_do_end_are_fine() -> None:
    p = SSEParser(max_line=1000)
    for _ in range(50):
        assert p.feed("data: " + "x" * 900 + "\n\n") == [SSEEvent("x" * 900)]


stream_texts = st.lists(
    st.tuples(st.sampled_from(["data", "event", "id", ":", "retry"]), st.text(alphabet="ab c:é", max_size=8)),
    max_size=12,
).map(lambda fields: "".join(f"{k}: {v}\n" + ("\n" if i % 3 == 2 else "") for i, (k, v) in enumerate(fields)))


@given(stream_texts, st.sampled_from(["\n", "\r\n", "\r"]), st.lists(st.integers(0, 400), max_size=8))
def test_any_chunking_gives_the_same_events(text: str, eol: str, cuts: list[int]) -> None:
    text = text.replace("\n", eol) + eol
    whole = parse_sse([text])
    bounds = sorted({min(c, len(text)) for c in cuts})
    pieces = [text[a:b] for a, b in zip([0, *bounds], [*bounds, len(text)], strict=True)]
    assert parse_sse(pieces) == whole
