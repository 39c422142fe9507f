"""Every known output shape, from the examples of each era in docs/reference/runpod-queue.md §5."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from harness.core.errors import ShapeError, WorkerError
from harness.core.shapes import NATIVE_USAGE, OPENAI_USAGE, SHAPES, extract


def chunk(
    content: str | None = None,
    *,
    index: int = 0,
    finish: str | None = None,
    reasoning: str | None = None,
    usage: dict[str, int] | None = None,
) -> dict[str, Any]:
    delta: dict[str, Any] = {}
    if content is not None:
        delta["content"] = content
    if reasoning is not None:
        delta["reasoning_content"] = reasoning
    c: dict[str, Any] = {
        "object": "chat.completion.chunk",
        "id": "chatcmpl-1",
        "model": "m",
        "choices": [{"index": index, "delta": delta, "finish_reason": finish}],
    }
    if usage is not None:
        c["usage"] = usage
    return c


def sse(*chunks: dict[str, Any], done: bool = True) -> list[str]:
    # vLLM writes UTF-8 JSON (pydantic), not \u escapes: that is what makes byte splits visible.
    events = [f"data: {json.dumps(c, ensure_ascii=False)}\n\n" for c in chunks]
    return events + (["data: [DONE]\n\n"] if done else [])


CHAT_COMPLETION = {
    "id": "chatcmpl-1",
    "object": "chat.completion",
    "model": "m",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "def f(): pass"}, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 12, "completion_tokens": 5, "total_tokens": 17},
}

CASES = [
    pytest.param(
        {
            "delayTime": 638,
            "executionTime": 3344,
            "id": "f0706ead-u1",
            "output": [{"choices": [{"tokens": ["CHAT_RESPONSE"]}], "usage": {"input": 3, "output": 100}}],
            "status": "COMPLETED",
            "workerId": "0e7o8fgmm9xgty",
        },
        "vllm-native-tokens",
        ("CHAT_RESPONSE",),
        (3, 100),
        None,
        id="native-whole-job",
    ),
    pytest.param(
        [
            {"choices": [{"tokens": ["He"]}, {"tokens": ["Ci"]}], "usage": {"input": 3, "output": 2}},
            {"choices": [{"tokens": ["", "llo", "!"]}, {"tokens": ["ao"]}], "usage": {"input": 3, "output": 6}},
        ],
        "vllm-native-tokens",
        ("Hello!", "Ciao"),
        (3, 6),
        None,
        id="native-stream-n2-empty-delta",
    ),
    pytest.param(
        {
            "delayTime": 31618,
            "executionTime": 1437,
            "id": "60902e6c-u1",
            "status": "COMPLETED",
            "output": {"input_tokens": 22, "output_tokens": 16, "text": ["Hello! How can I assist you today?"]},
        },
        "era-a-text",
        ("Hello! How can I assist you today?",),
        (22, 16),
        None,
        id="era-a",
    ),
    pytest.param(
        [
            {"metrics": {"x": 1}, "output": {"input_tokens": 2, "output_tokens": 1, "text": [" How"]}},
            {"metrics": {"x": 2}, "output": {"input_tokens": 2, "output_tokens": 2, "text": [" are"]}},
        ],
        "era-a-text",
        (" How are",),
        (2, 2),
        None,
        id="era-a-stream-items",
    ),
    pytest.param(
        [{"text": "Hel", "usage": {"input": 4, "output": 1}}, {"text": "lo", "usage": {"input": 4, "output": 2}}],
        "era-b-text-usage",
        ("Hello",),
        (4, 2),
        None,
        id="era-b",
    ),
    pytest.param(
        {"tokens": ["Hel", "lo"], "usage": {"input": 4, "output": 2}, "finished": True},
        "era-c-tokens",
        ("Hello",),
        (4, 2),
        "stop",
        id="era-c",
    ),
    pytest.param(
        [CHAT_COMPLETION], "openai-chat-completion", ("def f(): pass",), (12, 5), "stop", id="openai-route-chat"
    ),
    pytest.param(
        {
            "object": "text_completion",
            "choices": [{"index": 0, "text": "x = 1", "finish_reason": "length"}],
            "usage": {"prompt_tokens": 3, "completion_tokens": 16},
        },
        "openai-text-completion",
        ("x = 1",),
        (3, 16),
        "length",
        id="openai-text-completion",
    ),
    pytest.param(
        [
            chunk("Hel"),
            chunk("lo", finish="stop"),
            {**chunk(), "choices": [], "usage": {"prompt_tokens": 2, "completion_tokens": 2}},
        ],
        "openai-chat-chunks",
        ("Hello",),
        (2, 2),
        "stop",
        id="openai-chunks-include-usage",
    ),
    pytest.param(
        [[chunk("Hel")], [chunk("lo"), chunk(None, finish="stop")]],
        "openai-chunk-lists",
        ("Hello",),
        None,
        "stop",
        id="raw-openai-output-0",
    ),
    pytest.param(
        [{**chunk(), "choices": [{"index": 0, "delta": {"content": ["Hel", "lo"]}, "finish_reason": None}]}],
        "openai-chat-chunks",
        ("Hello",),
        None,
        None,
        id="era-d-use-openai-format-list-content",
    ),
    pytest.param(
        sse(chunk("Hel"), chunk("lo", finish="stop")),
        "openai-sse-events",
        ("Hello",),
        None,
        "stop",
        id="raw-openai-output-1",
    ),
    pytest.param(
        [{"output": "data: " + json.dumps(chunk("Hi")) + "\n\n"}, {"output": "data: [DONE]\n\n"}],
        "openai-sse-events",
        ("Hi",),
        None,
        None,
        id="stream-route-wrapped-sse",
    ),
    pytest.param("Here is your answer", "plain-text", ("Here is your answer",), None, None, id="plain-string"),
    pytest.param(["Here ", "is"], "text-chunks", ("Here is",), None, None, id="list-of-strings"),
    pytest.param({"generated_text": "ok"}, "text-dict", ("ok",), None, None, id="generated-text"),
    pytest.param({"output": {"text": "ok"}}, "text-dict", ("ok",), None, None, id="output-wrapper"),
    pytest.param(
        {"id": "x", "status": "IN_PROGRESS", "output": "discrete_diarization;None;None"},
        "plain-text",
        ("discrete_diarization;None;None",),
        None,
        None,
        id="progress-update-in-progress-job",
    ),
]


@pytest.mark.parametrize(("value", "shape", "choices", "usage", "finish"), CASES)
def test_extract_known_shapes(
    value: Any, shape: str, choices: tuple[str, ...], usage: tuple[int, int] | None, finish: str | None
) -> None:
    got = extract(value)
    assert got.shape == shape
    assert got.choices == choices
    assert got.text == choices[0]
    assert got.finish_reason == finish
    if usage is None:
        assert got.usage is None
    else:
        assert got.usage is not None
        assert (got.usage.input_tokens, got.usage.output_tokens) == usage
    assert got.findings == ()


def test_usage_conventions_are_named() -> None:
    native = extract([{"choices": [{"tokens": ["a"]}], "usage": {"input": 1, "output": 1}}]).usage
    openai = extract(CHAT_COMPLETION).usage
    assert native is not None and native.convention == NATIVE_USAGE
    assert openai is not None and openai.convention == OPENAI_USAGE


def test_reasoning_is_kept_apart_from_content() -> None:
    got = extract([chunk(reasoning="think "), chunk(reasoning="more"), chunk("answer", finish="stop")])
    assert got.text == "answer"
    assert got.reasoning == ("think more",)


def test_chunks_are_grouped_by_choice_index() -> None:
    got = extract([chunk("a", index=1), chunk("b", index=0), chunk("c", index=1, finish="stop")])
    assert got.choices == ("b", "ac")
    assert got.finish_reasons == (None, "stop")


def test_models_list() -> None:
    got = extract([{"object": "list", "data": [{"id": "Qwen/Qwen2.5-Coder-7B", "object": "model"}]}])
    assert got.shape == "openai-models"
    assert got.models == ("Qwen/Qwen2.5-Coder-7B",)


def test_era_f_split_mid_event_mid_json_mid_line() -> None:
    whole = "".join(sse(chunk("Hello "), chunk("world", finish="stop")))
    cuts = [3, 9, 40, len(whole) - 5]
    pieces = [whole[a:b] for a, b in zip([0, *cuts], [*cuts, len(whole)], strict=True)]
    got = extract(pieces)
    assert got.shape == "openai-sse-text"
    assert got.text == "Hello world"


def test_era_f_character_split_at_byte_boundary_is_flagged() -> None:
    raw = "".join(sse(chunk("città"), chunk(" è", finish="stop"))).encode()
    cut = raw.index("à".encode()) + 1  # inside the two UTF-8 bytes of 'à'
    pieces = [raw[:cut].decode(errors="replace"), raw[cut:].decode(errors="replace")]
    got = extract(pieces)
    assert "\ufffd" in got.text
    assert [f.code for f in got.findings] == ["text-corrupted"]


def test_sse_without_done_is_flagged_not_hidden() -> None:
    got = extract(sse(chunk("partial"), done=False))
    assert got.text == "partial"
    assert [f.code for f in got.findings] == ["sse-no-done"]


def test_keep_alive_comments_inside_sse_output_are_ignored() -> None:
    got = extract([": keep-alive\n\n", *sse(chunk("x", finish="stop"))])
    assert got.text == "x"


ERRORS = [
    pytest.param(
        {
            "id": "x",
            "status": "COMPLETED",
            "output": [
                {
                    "error": {
                        "object": "error",
                        "message": "bad temp",
                        "type": "BadRequestError",
                        "param": None,
                        "code": 400,
                    }
                }
            ],
        },
        "bad temp",
        "BadRequestError",
        400,
        id="completed-with-error-inside-worker-vllm-65",
    ),
    pytest.param(
        {
            "id": "x",
            "status": "FAILED",
            "error": json.dumps(
                {
                    "error_type": "<class 'ValueError'>",
                    "error_message": "boom",
                    "error_traceback": "Traceback...",
                    "hostname": "h",
                    "worker_id": "w",
                    "runpod_version": "1.12.0",
                }
            ),
        },
        "boom",
        "<class 'ValueError'>",
        None,
        id="failed-handler-exception-json",
    ),
    pytest.param(
        {
            "id": "x",
            "status": "FAILED",
            "error": str({"error": {"message": "CUDA out of memory", "type": "worker_error", "code": None}}),
        },
        "CUDA out of memory",
        "worker_error",
        None,
        id="failed-python-repr-v2.24",
    ),
    pytest.param(
        {
            "id": "x",
            "status": "FAILED",
            "error": str(
                {"object": "error", "message": "max_tokens too large", "type": "BadRequestError", "code": 400}
            ),
        },
        "max_tokens too large",
        "BadRequestError",
        400,
        id="failed-repr-runpod-1.7.7",
    ),
    pytest.param(
        {"id": "sync-a1-u1", "status": "FAILED", "error": "Invalid parameter: width must be divisible by 64"},
        "Invalid parameter: width must be divisible by 64",
        "FAILED",
        None,
        id="failed-plain-text",
    ),
    pytest.param({"id": "x", "status": "TIMED_OUT"}, "job TIMED_OUT", "TIMED_OUT", None, id="timed-out"),
    pytest.param(
        sse({"type": "error", "message": "Model loading timeout (120s)", "code": "MODEL_LOAD_TIMEOUT"}),
        "Model loading timeout (120s)",
        None,
        "MODEL_LOAD_TIMEOUT",
        id="sse-error-event-seed-003",
    ),
    pytest.param(
        sse({"error": {"message": "overloaded", "type": "server_error", "code": 503}}),
        "overloaded",
        "server_error",
        503,
        id="sse-openai-error",
    ),
]


@pytest.mark.parametrize(("value", "message", "error_type", "code"), ERRORS)
def test_worker_errors(value: Any, message: str, error_type: str | None, code: int | str | None) -> None:
    with pytest.raises(WorkerError) as info:
        extract(value)
    assert info.value.message == message
    assert info.value.error_type == error_type
    assert info.value.code == code


def test_failed_json_error_keeps_traceback() -> None:
    err = json.dumps({"error_type": "E", "error_message": "m", "error_traceback": "Traceback (most recent call last)"})
    with pytest.raises(WorkerError) as info:
        extract({"id": "x", "status": "FAILED", "error": err})
    assert info.value.traceback == "Traceback (most recent call last)"


UNKNOWN = [
    pytest.param({"foo": 1}, "$", id="unknown-dict"),
    pytest.param([{"choices": [{"tokens": ["a"]}]}, {"foo": 1}], "$[1]", id="second-item-unknown"),
    pytest.param([{"choices": [{"tokens": ["a", 3]}]}], "$[0].choices[0].tokens", id="token-not-string"),
    pytest.param({"id": "x", "status": "COMPLETED"}, "$.output", id="completed-without-output"),
    pytest.param([], "$", id="empty-list"),
    pytest.param(42, "$", id="number"),
    pytest.param([[1, 2]], "$[0][0]", id="nested-numbers"),
    pytest.param(["data: not json\n\n"], "$[0] (SSE event 0)", id="sse-data-not-json"),
    pytest.param([{"choices": [{"tokens": ["a"]}]}, {"text": "b", "usage": {}}], "$[1]", id="mixed-eras"),
    pytest.param(["a", {"text": "b"}], "$[1]", id="mixed-types"),
    pytest.param({"output": {"choices": [{"weird": 1}]}}, "$.output.choices", id="choices-unknown-form"),
]


@pytest.mark.parametrize(("value", "path"), UNKNOWN)
def test_unknown_shapes_name_the_path(value: Any, path: str) -> None:
    with pytest.raises(ShapeError) as info:
        extract(value)
    assert info.value.path == path


def test_shape_error_summary_is_bounded() -> None:
    with pytest.raises(ShapeError) as info:
        extract({f"key{i}": "x" * 10_000 for i in range(100)})
    assert len(str(info.value)) < 400


def test_huge_sse_line_is_a_shape_error_not_oom() -> None:
    with pytest.raises(ShapeError, match="longer than"):
        extract(["data: " + "x" * (1 << 20) + "y"])


def test_every_shape_is_documented() -> None:
    docs = (Path(__file__).parent.parent / "docs" / "internals.md").read_text(encoding="utf-8")
    for info in SHAPES:
        assert f"`{info.name}`" in docs, info.name
