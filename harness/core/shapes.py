"""Every known worker output shape -> one :class:`Extracted`.

worker-vllm changed its output format six times (eras A-F, see docs/reference/runpod-queue.md §5);
clients that parse one of them break on the next. :func:`extract` takes
a job's ``output`` (or the whole job dict), recognises the shape, and returns the text of every
choice, usage with the convention it was counted in, the finish reason and a stable shape name.

Errors a worker hid in its output (a COMPLETED job with ``{"error": ...}`` inside, worker-vllm #65)
and FAILED jobs raise :class:`~harness.core.errors.WorkerError`. Anything unknown raises
:class:`~harness.core.errors.ShapeError` naming the JSON path where recognition failed. Nothing else
escapes: a fuzz property test holds us to that.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from harness.core.errors import ShapeError, StreamProtocolError
from harness.core.findings import Finding, Severity
from harness.core.jobs import worker_error
from harness.core.sse import SSEEvent, SSEParser

__all__ = ["SHAPES", "Extracted", "ShapeInfo", "Usage", "extract", "looks_like_sse", "openai_usage"]
_JOB_STATUSES = frozenset({"IN_QUEUE", "IN_PROGRESS", "RUNNING", "COMPLETED", "FAILED", "CANCELLED", "TIMED_OUT"})
_FAILED_STATUSES = frozenset({"FAILED", "CANCELLED", "TIMED_OUT"})
_CONTENT_KEYS = frozenset({"choices", "text", "tokens", "object", "error", "generated_text"})
_SSE_PREFIXES = ("data:", "event:", "id:", "retry:", ":")

NATIVE_USAGE = "worker-vllm usage: input=prompt tokens, output=engine iterations x n (not tokenizer tokens)"
OPENAI_USAGE = "openai usage: prompt_tokens / completion_tokens as counted by the server"
ERA_A_USAGE = "worker-vllm era A: input_tokens / output_tokens"


@dataclass(frozen=True, slots=True)
class Usage:
    input_tokens: int | None
    output_tokens: int | None
    convention: str


@dataclass(frozen=True, slots=True)
class Extracted:
    """What a client needs from any output. ``text`` is the first choice's text."""

    text: str
    choices: tuple[str, ...]
    usage: Usage | None
    finish_reason: str | None
    shape: str
    finish_reasons: tuple[str | None, ...] = ()
    reasoning: tuple[str, ...] = ()
    models: tuple[str, ...] = ()
    findings: tuple[Finding, ...] = ()


@dataclass(frozen=True, slots=True)
class ShapeInfo:
    name: str
    example: str
    emitted_by: str


SHAPES: tuple[ShapeInfo, ...] = (
    ShapeInfo(
        "vllm-native-tokens",
        '[{"choices":[{"tokens":["Hi"]}],"usage":{"input":3,"output":1}}]',
        "worker-vllm 0.2.0 .. v2.23.0 (eras D/E), stream = many items of batched deltas",
    ),
    ShapeInfo("era-a-text", '{"text":["Hi"],"input_tokens":3,"output_tokens":1}', "worker-vllm 2023 (era A)"),
    ShapeInfo("era-b-text-usage", '[{"text":"Hi","usage":{"input":3,"output":1}}]', "worker-vllm Dec 2023 (era B)"),
    ShapeInfo(
        "era-c-tokens", '{"tokens":["Hi"],"usage":{"input":3,"output":1},"finished":true}', "worker-vllm 0.1.0 (era C)"
    ),
    ShapeInfo(
        "openai-chat-completion",
        '[{"object":"chat.completion","choices":[{"message":{"content":"Hi"}}]}]',
        "OpenAI route, non-stream (eras E, F); any OpenAI-compatible server",
    ),
    ShapeInfo(
        "openai-text-completion",
        '{"object":"text_completion","choices":[{"text":"Hi"}]}',
        "OpenAI /v1/completions route (eras E, F)",
    ),
    ShapeInfo(
        "openai-chat-chunks",
        '[{"object":"chat.completion.chunk","choices":[{"delta":{"content":"Hi"}}]}]',
        "stream chunks as dicts; era D use_openai_format (content may be a list)",
    ),
    ShapeInfo(
        "openai-chunk-lists",
        '[[{"object":"chat.completion.chunk",...}], [...]]',
        "OpenAI route stream with RAW_OPENAI_OUTPUT=0 (era E)",
    ),
    ShapeInfo(
        "openai-sse-events",
        '["data: {...}\\n\\n", "data: [DONE]\\n\\n"]',
        "OpenAI route stream with RAW_OPENAI_OUTPUT=1, one item per whole SSE event (era E)",
    ),
    ShapeInfo(
        "openai-sse-text",
        '["data: {\\"id\\":", "...}\\n\\ndata: [DONE]\\n\\n"]',
        "worker-vllm v2.24.0+ proxying vllm serve: SSE text cut at arbitrary byte boundaries (era F)",
    ),
    ShapeInfo("openai-models", '[{"object":"list","data":[{"id":"Qwen/Qwen2.5-Coder-7B"}]}]', "/v1/models route"),
    ShapeInfo("plain-text", '"Hi"', "custom handlers returning a string"),
    ShapeInfo("text-chunks", '["H", "i"]', "generator handlers yielding strings, aggregated"),
    ShapeInfo("text-dict", '{"generated_text":"Hi"} or {"text":"Hi"}', "custom / TGI-style handlers"),
)


def looks_like_sse(text: str) -> bool:
    """True when a string starts like an SSE stream (``data:``, a comment, ...)."""
    return text.lstrip(" \t\r\n\ufeff").startswith(_SSE_PREFIXES)


def extract(value: Any) -> Extracted:
    """Recognise ``value`` (a job dict or its ``output``) and extract text, choices and usage."""
    try:
        return _recognise(value)
    except RecursionError:
        raise ShapeError("the output is nested too deeply to be any known shape") from None


def _recognise(value: Any) -> Extracted:
    if _is_job(value):
        status = value["status"]
        if status in _FAILED_STATUSES or (value.get("error") and value.get("output") is None):
            raise worker_error(value.get("error") or f"job {status}", default_type=status)
        if value.get("output") is None:
            raise ShapeError("job has no output", path="$.output", summary=_summary(value))
        return _extract(value["output"], "$.output")
    return _extract(value, "$")


def _summary(value: Any) -> str:
    if isinstance(value, dict):
        keys = ", ".join(repr(k) for k in list(value)[:8])
        return f"object with keys {keys}" + (" ..." if len(value) > 8 else "")
    if isinstance(value, list):
        return f"list of {len(value)}"
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _is_job(value: Any) -> bool:
    return (
        isinstance(value, dict)
        and isinstance(value.get("status"), str)
        and value["status"] in _JOB_STATUSES
        and any(k in value for k in ("id", "output", "error", "delayTime", "executionTime"))
    )


@dataclass(slots=True)
class _Acc:
    """Accumulates text per choice index across items, chunks or events."""

    texts: dict[int, list[str]] = field(default_factory=dict)
    reasoning: dict[int, list[str]] = field(default_factory=dict)
    finish: dict[int, str | None] = field(default_factory=dict)
    usage: Usage | None = None
    models: list[str] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)

    def add(self, index: int, text: str | None = None, reasoning: str | None = None, finish: str | None = None) -> None:
        self.texts.setdefault(index, [])
        if text:
            self.texts[index].append(text)
        if reasoning:
            self.reasoning.setdefault(index, []).append(reasoning)
        if finish is not None or index not in self.finish:
            self.finish[index] = finish if finish is not None else self.finish.get(index)

    def result(self, shape: str) -> Extracted:
        n = max(self.texts, default=-1) + 1
        choices = tuple("".join(self.texts.get(i, ())) for i in range(n))
        reasons = tuple(self.finish.get(i) for i in range(n))
        findings = list(self.findings)
        return Extracted(
            text=choices[0] if choices else "",
            choices=choices,
            usage=self.usage,
            finish_reason=reasons[0] if reasons else None,
            shape=shape,
            finish_reasons=reasons,
            reasoning=tuple("".join(self.reasoning.get(i, ())) for i in range(n)) if self.reasoning else (),
            models=tuple(self.models),
            findings=tuple(findings),
        )


# --- single dict items -------------------------------------------------------------------

_KIND_SHAPE = {
    "native": "vllm-native-tokens",
    "era-a": "era-a-text",
    "era-b": "era-b-text-usage",
    "era-c": "era-c-tokens",
    "chat": "openai-chat-completion",
    "completion": "openai-text-completion",
    "chunk": "openai-chat-chunks",
    "models": "openai-models",
    "text-dict": "text-dict",
}


def _is_error_dict(d: dict[Any, Any]) -> bool:
    if "choices" in d:
        return False
    return bool(d.get("error")) or d.get("object") == "error" or d.get("type") == "error"


def _kind(d: dict[Any, Any], path: str) -> str:
    if _is_error_dict(d):
        raise worker_error(d)
    obj = d.get("object")
    choices = d.get("choices")
    if obj == "chat.completion":
        return "chat"
    if obj == "chat.completion.chunk":
        return "chunk"
    if obj == "text_completion":
        return "completion"
    if obj == "list" and isinstance(d.get("data"), list):
        return "models"
    if isinstance(choices, list):
        first = next((c for c in choices if isinstance(c, dict)), {})
        if "tokens" in first:
            return "native"
        if "message" in first:
            return "chat"
        if "delta" in first:
            return "chunk"
        if "text" in first:
            return "completion"
        if not choices and "usage" in d:  # a final include_usage chunk without "object"
            return "chunk"
        raise ShapeError("choices of no known form", path=f"{path}.choices", summary=_summary(choices))
    text = d.get("text")
    if isinstance(text, list) and all(isinstance(t, str) for t in text):
        return "era-a"
    if isinstance(d.get("tokens"), list):
        return "era-c"
    if isinstance(text, str):
        return "era-b" if "usage" in d else "text-dict"
    if isinstance(d.get("generated_text"), str):
        return "text-dict"
    raise ShapeError("no known output shape", path=path, summary=_summary(d))


_MAX_TOKENS = 1 << 30  # more tokens than any context holds: a count that means nothing


def _int(v: Any) -> int | None:
    """A count from an endpoint: a whole number in range, else unknown (None)."""
    return v if isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= _MAX_TOKENS else None


def _native_usage(u: Any) -> Usage | None:
    if not isinstance(u, dict):
        return None
    return Usage(_int(u.get("input")), _int(u.get("output")), NATIVE_USAGE)


def openai_usage(u: Any) -> Usage | None:
    """An OpenAI ``usage`` object as Usage (None when absent); counts that are not integers read as None."""
    if not isinstance(u, dict):
        return None
    return Usage(_int(u.get("prompt_tokens")), _int(u.get("completion_tokens")), OPENAI_USAGE)


def _strs(v: Any, path: str) -> list[str]:
    if not isinstance(v, list) or not all(isinstance(t, str) for t in v):
        raise ShapeError("expected a list of strings", path=path, summary=_summary(v))
    return v


def _content(v: Any, path: str) -> str | None:
    """Message/delta content: a string, null, or (era D use_openai_format) a list of strings."""
    if v is None or isinstance(v, str):
        return v
    return "".join(_strs(v, path))


def _contribute(acc: _Acc, kind: str, d: dict[Any, Any], path: str) -> None:
    if kind == "native":
        for i, c in enumerate(d["choices"]):
            if not isinstance(c, dict):
                raise ShapeError("choice is not an object", path=f"{path}.choices[{i}]", summary=_summary(c))
            acc.add(i, "".join(_strs(c.get("tokens"), f"{path}.choices[{i}].tokens")))
        acc.usage = _native_usage(d.get("usage")) or acc.usage
    elif kind in ("chat", "chunk", "completion"):
        for pos, c in enumerate(d.get("choices") or ()):
            cpath = f"{path}.choices[{pos}]"
            if not isinstance(c, dict):
                raise ShapeError("choice is not an object", path=cpath, summary=_summary(c))
            idx = _int(c.get("index"))
            idx = pos if idx is None or idx < 0 or idx > 1024 else idx
            part = c.get("message") if kind == "chat" else c.get("delta")
            finish = c.get("finish_reason") if isinstance(c.get("finish_reason"), str) else None
            if isinstance(part, dict):
                reasoning = part.get("reasoning_content", part.get("reasoning"))
                acc.add(
                    idx,
                    _content(part.get("content"), f"{cpath}.content"),
                    reasoning if isinstance(reasoning, str) else None,
                    finish,
                )
            elif isinstance(c.get("text"), str):
                acc.add(idx, c["text"], None, finish)
            elif part is None and "text" not in c:
                acc.add(idx, None, None, finish)
            else:
                raise ShapeError("choice has neither message, delta nor text", path=cpath, summary=_summary(c))
        acc.usage = openai_usage(d.get("usage")) or acc.usage
    elif kind == "era-a":
        for i, t in enumerate(d["text"]):
            acc.add(i, t)
        if "input_tokens" in d or "output_tokens" in d:
            acc.usage = Usage(_int(d.get("input_tokens")), _int(d.get("output_tokens")), ERA_A_USAGE)
    elif kind == "era-b":
        acc.add(0, d["text"])
        acc.usage = _native_usage(d.get("usage")) or acc.usage
    elif kind == "era-c":
        acc.add(0, "".join(_strs(d["tokens"], f"{path}.tokens")), finish="stop" if d.get("finished") is True else None)
        acc.usage = _native_usage(d.get("usage")) or acc.usage
    elif kind == "models":
        acc.models.extend(str(m.get("id")) for m in d["data"] if isinstance(m, dict) and "id" in m)
    else:  # text-dict
        text = d.get("generated_text", d.get("text"))
        acc.add(0, text if isinstance(text, str) else None)


# --- containers --------------------------------------------------------------------------


def _extract(value: Any, path: str) -> Extracted:
    if isinstance(value, str):
        return _from_strings([value], [path], single=True)
    if isinstance(value, list):
        return _from_list(value, path)
    if isinstance(value, dict):
        if _is_wrapper(value):
            return _extract(value["output"], f"{path}.output")
        return _from_dicts([value], [path])
    raise ShapeError("unsupported output type", path=path, summary=_summary(value))


def _is_wrapper(d: dict[Any, Any]) -> bool:
    """``{"output": x}`` as in /stream items and era A stream items ``{"metrics":..,"output":..}``."""
    return "output" in d and not (_CONTENT_KEYS & d.keys())


def _from_list(items: list[Any], path: str) -> Extracted:
    if not items:
        raise ShapeError("empty output list", path=path)
    flat: list[Any] = []
    paths: list[str] = []
    nested = False
    for i, item in enumerate(items):
        ipath = f"{path}[{i}]"
        while isinstance(item, dict) and _is_wrapper(item):
            item, ipath = item["output"], f"{ipath}.output"
        if isinstance(item, list):  # RAW_OPENAI_OUTPUT=0: each stream item is a list of chunk dicts
            nested = True
            for j, sub in enumerate(item):
                flat.append(sub)
                paths.append(f"{ipath}[{j}]")
        else:
            flat.append(item)
            paths.append(ipath)
    if not flat:
        raise ShapeError("output lists hold nothing", path=path)
    for x in flat:  # an error anywhere (e.g. after some chunks, legacy semantics) is the answer
        if isinstance(x, dict) and _is_error_dict(x):
            raise worker_error(x)
    if all(isinstance(x, str) for x in flat):
        return _from_strings(flat, paths, single=False)
    if all(isinstance(x, dict) for x in flat):
        result = _from_dicts(flat, paths)
        if nested and result.shape == "openai-chat-chunks":
            return _reshape(result, "openai-chunk-lists")
        return result
    if not isinstance(flat[0], (str, dict)):
        raise ShapeError("unsupported item type", path=paths[0], summary=_summary(flat[0]))
    bad = next(i for i, x in enumerate(flat) if not isinstance(x, type(flat[0])))
    raise ShapeError("items of mixed types", path=paths[bad], summary=_summary(flat[bad]))


def _reshape(e: Extracted, shape: str) -> Extracted:
    return Extracted(
        e.text, e.choices, e.usage, e.finish_reason, shape, e.finish_reasons, e.reasoning, e.models, e.findings
    )


def _from_dicts(items: list[dict[Any, Any]], paths: list[str]) -> Extracted:
    acc = _Acc()
    first_kind: str | None = None
    for item, path in zip(items, paths, strict=True):
        kind = _kind(item, path)
        if kind == "completion" and first_kind in ("chunk", "chat"):
            kind = first_kind  # never mixed in practice; keep the chat accumulation rules
        if first_kind is None:
            first_kind = kind
        elif kind != first_kind and {kind, first_kind} != {"chat", "chunk"}:
            raise ShapeError(
                f"mixed shapes: {_KIND_SHAPE[first_kind]} then {_KIND_SHAPE[kind]}", path=path, summary=_summary(item)
            )
        _contribute(acc, kind, item, path)
    assert first_kind is not None
    return acc.result(_KIND_SHAPE[first_kind])


def _from_strings(texts: list[str], paths: list[str], *, single: bool) -> Extracted:
    if looks_like_sse("".join(texts[:16])[:64]):  # era F may cut even "data:" across items
        return _from_sse(texts, paths)
    acc = _Acc()
    acc.add(0, "".join(texts))
    return acc.result("plain-text" if single else "text-chunks")


_REPLACEMENT = "\ufffd"


def _cut_characters(texts: list[str]) -> Finding | None:
    """Era F decodes each byte piece on its own with errors="replace": a character split across pieces turns
    into U+FFFD at the piece's edge. U+FFFD inside a piece was sent by the server (a small model emits it
    itself) and is not flagged."""
    edges = [i for i, t in enumerate(texts) if t and (t[-1] == _REPLACEMENT or (i > 0 and t[0] == _REPLACEMENT))]
    if not edges:
        return None
    return Finding(
        "text-corrupted",
        "replacement character U+FFFD at a byte boundary between output items",
        f"item {edges[0]}: the worker decoded a multi-byte character split across byte chunks with "
        "errors='replace' (worker-vllm era F)",
        Severity.WARNING,
    )


def _from_sse(texts: list[str], paths: list[str]) -> Extracted:
    parser = SSEParser()
    acc = _Acc()
    if len(texts) > 1 and (cut := _cut_characters(texts)) is not None:
        acc.findings.append(cut)
    done = False
    kind: str | None = None
    aligned = all(t.endswith(("\n\n", "\r\n\r\n", "\r\r")) for t in texts if t)
    n_event = 0
    for text, path in zip(texts, paths, strict=True):
        try:
            records = parser.feed(text)
        except StreamProtocolError as exc:
            raise ShapeError(str(exc), path=path) from None
        for rec in records:
            if not isinstance(rec, SSEEvent):
                continue  # keep-alive comments carry no content
            epath = f"{path} (SSE event {n_event})"
            n_event += 1
            if rec.is_done:
                done = True
                continue
            try:
                data = json.loads(rec.data)
            except ValueError:
                raise ShapeError("SSE event data is not JSON", path=epath, summary=_summary(rec.data)) from None
            if not isinstance(data, dict):
                raise ShapeError("SSE event data is not an object", path=epath, summary=_summary(data))
            k = _kind(data, epath)
            if k not in ("chunk", "completion", "chat"):
                raise ShapeError(f"SSE event holds {_KIND_SHAPE[k]}, not a stream chunk", path=epath)
            kind = kind or k
            _contribute(acc, k, data, epath)
    for rec in parser.finish():
        if isinstance(rec, SSEEvent) and rec.is_done:
            done = True
    if kind is None and not done:
        raise ShapeError("SSE text holds no data events", path=paths[0], summary=_summary(texts[0]))
    if not done:
        acc.findings.append(
            Finding(
                "sse-no-done",
                "SSE output ends without data: [DONE]",
                "the stream may have been cut short",
                Severity.WARNING,
            )
        )
    return acc.result("openai-sse-events" if aligned else "openai-sse-text")
