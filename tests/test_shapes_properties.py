"""Property tests: any text, wrapped in any era's shape and cut into any batches, comes back exactly;
arbitrary JSON never raises anything but ShapeError / WorkerError."""

from __future__ import annotations

import contextlib
import itertools
import json
from typing import Any

from hypothesis import assume, given
from hypothesis import strategies as st

from harness.core.errors import ShapeError, WorkerError
from harness.core.shapes import extract, looks_like_sse

texts = st.text(max_size=60)
choice_lists = st.lists(texts, min_size=1, max_size=3)


@st.composite
def split(draw: st.DrawFn, text: str, min_parts: int = 1) -> list[str]:
    """Cut ``text`` into pieces at arbitrary points; empty pieces allowed (worker-vllm sends "" deltas)."""
    cuts = sorted(draw(st.lists(st.integers(0, len(text)), max_size=6)))
    bounds = [0, *cuts, len(text)]
    parts = [text[a:b] for a, b in itertools.pairwise(bounds)]
    return parts if len(parts) >= min_parts else [*parts, ""]


@st.composite
def batched(draw: st.DrawFn, choices: list[str]) -> list[list[str]]:
    """Per choice, a list of deltas; all choices padded to the same number of items."""
    per = [draw(split(c)) for c in choices]
    n = max(len(p) for p in per)
    return [p + [""] * (n - len(p)) for p in per]


def _chunk(delta: str, index: int, kind: str) -> dict[str, Any]:
    if kind == "chat":
        return {"object": "chat.completion.chunk", "choices": [{"index": index, "delta": {"content": delta}}]}
    return {"object": "text_completion", "choices": [{"index": index, "text": delta}]}


@given(choice_lists, st.data())
def test_native_tokens_any_batches(choices: list[str], data: st.DataObject) -> None:
    deltas = data.draw(batched(choices))
    items = [
        {"choices": [{"tokens": [deltas[c][i]]} for c in range(len(choices))], "usage": {"input": 5, "output": i + 1}}
        for i in range(len(deltas[0]))
    ]
    got = extract({"id": "j", "status": "COMPLETED", "output": items})
    assert got.choices == tuple(choices)
    assert got.shape == "vllm-native-tokens"
    assert got.usage is not None and got.usage.output_tokens == len(items)


@given(texts, st.data())
def test_era_a_b_c(text: str, data: st.DataObject) -> None:
    parts = data.draw(split(text))
    assert extract({"text": [text], "input_tokens": 1, "output_tokens": 2}).text == text
    assert extract([{"text": p, "usage": {"input": 1, "output": 1}} for p in parts]).text == text
    assert extract({"tokens": parts, "usage": {"input": 1, "output": 1}, "finished": True}).text == text


@given(choice_lists, st.sampled_from(["chat", "completion"]), st.data())
def test_openai_chunk_dicts_and_lists(choices: list[str], kind: str, data: st.DataObject) -> None:
    deltas = data.draw(batched(choices))
    chunks = [_chunk(deltas[c][i], c, kind) for i in range(len(deltas[0])) for c in range(len(choices))]
    assert extract(chunks).choices == tuple(choices)
    nested = [chunks[i : i + 2] for i in range(0, len(chunks), 2)]  # RAW_OPENAI_OUTPUT=0
    assert extract(nested).choices == tuple(choices)


@given(choice_lists, st.booleans(), st.data())
def test_sse_aligned_and_arbitrary_boundaries(choices: list[str], ascii_json: bool, data: st.DataObject) -> None:
    deltas = data.draw(batched(choices))
    events = [
        f"data: {json.dumps(_chunk(deltas[c][i], c, 'chat'), ensure_ascii=ascii_json)}\n\n"
        for i in range(len(deltas[0]))
        for c in range(len(choices))
    ]
    events.append("data: [DONE]\n\n")
    assert extract(events).choices == tuple(choices)  # era E: one item per event
    pieces = data.draw(split("".join(events), min_parts=2))  # era F: cut anywhere
    got = extract(pieces)
    assert got.choices == tuple(choices)
    assert got.findings == () or any(p.startswith("\ufffd") or p.endswith("\ufffd") for p in pieces)


@given(texts, st.data())
def test_era_f_byte_splits_recover_or_flag(text: str, data: st.DataObject) -> None:
    """Era F decodes byte chunks with errors='replace': exact text, or a text-corrupted finding."""
    raw = (f"data: {json.dumps(_chunk(text, 0, 'chat'), ensure_ascii=False)}\n\ndata: [DONE]\n\n").encode()
    cuts = sorted(data.draw(st.lists(st.integers(1, len(raw) - 1), max_size=5)))
    pieces = [raw[a:b].decode(errors="replace") for a, b in zip([0, *cuts], [*cuts, len(raw)], strict=True)]
    got = extract(pieces)
    at_edge = any(p.startswith("\ufffd") or p.endswith("\ufffd") for p in pieces[1:] + pieces[:-1])
    if got.text == text:
        assert at_edge or got.findings == ()  # U+FFFD the model sent itself is not a corruption
    else:
        assert "\ufffd" in got.text
        assert "text-corrupted" in [f.code for f in got.findings]


@given(texts, st.data())
def test_plain_strings_and_wrappers(text: str, data: st.DataObject) -> None:
    assume(not looks_like_sse(text))
    parts = data.draw(split(text))
    assert extract(text).text == text
    assert extract({"output": text}).text == text
    assert extract([{"output": p} for p in parts]).text == text
    assert extract({"generated_text": text}).text == text


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.sampled_from(
                [
                    "choices",
                    "tokens",
                    "text",
                    "usage",
                    "output",
                    "error",
                    "object",
                    "delta",
                    "message",
                    "content",
                    "index",
                    "status",
                    "id",
                    "data",
                    "finished",
                    "input",
                    "output_tokens",
                    "x",
                ]
            ),
            children,
            max_size=4,
        )
    ),
    max_leaves=20,
)


@given(json_values)
def test_arbitrary_json_raises_only_our_errors(value: Any) -> None:
    try:
        got = extract(value)
    except (ShapeError, WorkerError):
        return
    assert isinstance(got.text, str)
    assert all(isinstance(c, str) for c in got.choices)


@given(st.lists(st.text(alphabet='data: {}[]"\n\r:x,DONE', max_size=40), min_size=1, max_size=5))
def test_sse_like_garbage_raises_only_our_errors(items: list[str]) -> None:
    with contextlib.suppress(ShapeError, WorkerError):
        extract(items)
