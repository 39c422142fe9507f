"""A loopback OpenAI-compatible server with the stream behaviours seen in the field (made by us).

The request's ``model`` picks the mode, so one server serves every scenario:

normal            TTFT ``ttft_s``, then ``tokens`` chunks ``itl_s`` apart, usage, [DONE]
slow-first-token  TTFT ``slow_ttft_s`` of silence (no keep-alives)
loading           field report 003 fixed: a ``model_loading`` event, keep-alives every ``keepalive_s``
                  for ``loading_s``, then normal tokens
loading-silent    field report 003 as reported: ``loading_s`` of silence after the headers
loading-503       HTTP 503 with Retry-After while the model loads
server-timeout    loading longer than the server's own ``server_timeout_s``: the server sends a coded
                  error event (MODEL_LOAD_TIMEOUT) and ends the stream
stall             ``stall_after`` tokens, then ``stall_s`` of silence, then the rest
truncated         ``stall_after`` tokens, then the connection ends without finish_reason or [DONE]
error-event       an error event without a code, mid-stream (the seed's "errors without codes")
error-coded       an error event with a code
garbage           bytes that are not SSE
lmstudio          LM Studio-like: no usage, no ``id``, ``system_fingerprint``, errors as plain strings

Every chunk the server writes is logged with its send time (``app.state.sent``): ground truth for
timing-accuracy benchmarks. Also /v1/models (every mode is a model), /health and /v1/warmup.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from harness.emulator.bodies import read_json
from harness.emulator.engines import pieces

__all__ = ["MODES", "MockConfig", "create_mock_openai"]

MODES = (
    "normal",
    "slow-first-token",
    "loading",
    "loading-silent",
    "loading-503",
    "server-timeout",
    "stall",
    "truncated",
    "error-event",
    "error-coded",
    "garbage",
    "lmstudio",
)
DEFAULT_TEXT = "def reverse(s: str) -> str:\n    return s[::-1]\n"


@dataclass(frozen=True, slots=True)
class MockConfig:
    ttft_s: float = 0.02
    itl_s: float = 0.005
    slow_ttft_s: float = 2.0
    loading_s: float = 2.0
    keepalive_s: float = 0.5
    server_timeout_s: float = 1.0
    stall_after: int = 3
    stall_s: float = 2.0
    text: str = DEFAULT_TEXT


def _echo(body: dict[str, Any]) -> str:
    """A prompt containing ``echo:WORDS`` is answered with WORDS (for the concurrent-streams check)."""
    messages = body.get("messages") or []
    last = messages[-1].get("content", "") if messages and isinstance(messages[-1], dict) else ""
    return last.split("echo:", 1)[1].strip() if isinstance(last, str) and "echo:" in last else ""


def create_mock_openai(config: MockConfig | None = None) -> Starlette:
    cfg = config or MockConfig()
    sent: list[tuple[str, int, float]] = []  # (request id, chunk index, time.perf_counter() when written)

    def chunk(rid: str, model: str, delta: dict[str, Any], finish: str | None, lm: bool) -> dict[str, Any]:
        c: dict[str, Any] = {
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        }
        if lm:
            c["system_fingerprint"] = model
        else:
            c["id"] = rid
        return c

    async def stream(rid: str, model: str, max_tokens: int, usage: bool, text: str) -> AsyncIterator[bytes]:
        mode = model if model in MODES else "normal"
        n = 0

        def out(text: str) -> bytes:
            nonlocal n
            sent.append((rid, n, time.perf_counter()))
            n += 1
            return text.encode()

        if mode == "garbage":
            yield out("\x00\x01 this is not an event stream {{{\n\n")
            return
        if mode in ("loading", "server-timeout"):
            yield out(f"data: {json.dumps({'type': 'model_loading', 'message': 'loading the model'})}\n\n")
            waited = 0.0
            limit = cfg.server_timeout_s if mode == "server-timeout" else cfg.loading_s
            while waited < limit:
                step = min(cfg.keepalive_s, limit - waited)
                await asyncio.sleep(step)
                waited += step
                yield out(": keep-alive\n\n")
            if mode == "server-timeout":
                timeout_event = {
                    "type": "error",
                    "message": f"model loading timeout ({cfg.server_timeout_s:g}s)",
                    "code": "MODEL_LOAD_TIMEOUT",
                }
                yield out(f"data: {json.dumps(timeout_event)}\n\n")
                return
        elif mode == "loading-silent":
            await asyncio.sleep(cfg.loading_s)
        await asyncio.sleep(cfg.slow_ttft_s if mode == "slow-first-token" else cfg.ttft_s)
        toks = pieces(text)[:max_tokens]
        finish = "length" if len(pieces(text)) > max_tokens else "stop"
        lm = mode == "lmstudio"
        yield out(f"data: {json.dumps(chunk(rid, model, {'role': 'assistant', 'content': ''}, None, lm))}\n\n")
        for i, tok in enumerate(toks):
            if i and cfg.itl_s:
                await asyncio.sleep(cfg.itl_s)
            if i == cfg.stall_after:
                if mode == "stall":
                    await asyncio.sleep(cfg.stall_s)
                elif mode == "truncated":
                    return
                elif mode in ("error-event", "error-coded"):
                    err: dict[str, Any] = {"message": "CUDA out of memory", "type": "server_error"}
                    if mode == "error-coded":
                        err["code"] = 503
                    yield out(f"event: error\ndata: {json.dumps({'error': err})}\n\n")
                    return
            last = i == len(toks) - 1
            yield out(f"data: {json.dumps(chunk(rid, model, {'content': tok}, finish if last else None, lm))}\n\n")
        if usage and not lm:
            u = {"prompt_tokens": 12, "completion_tokens": len(toks), "total_tokens": 12 + len(toks)}
            yield out(f"data: {json.dumps({'object': 'chat.completion.chunk', 'choices': [], 'usage': u})}\n\n")
        yield out("data: [DONE]\n\n")

    async def chat(request: Request) -> Response:
        body = await read_json(request, openai=True)
        if isinstance(body, JSONResponse):
            return body
        model = str(body.get("model", "normal"))
        if model == "loading-503":
            return JSONResponse(
                {"error": {"message": "model is loading", "code": 503}}, status_code=503, headers={"Retry-After": "2"}
            )
        if model == "lmstudio" and "stream_options" in body:  # strict about vendor extras
            return JSONResponse({"error": "Unrecognized key: stream_options"}, status_code=400)
        max_tokens = int(body.get("max_tokens") or 4096)
        rid = f"chatcmpl-{uuid.uuid4().hex[:16]}"
        text = _echo(body) or cfg.text
        if not body.get("stream"):
            toks = pieces(text)[:max_tokens]
            await asyncio.sleep(cfg.ttft_s + cfg.itl_s * max(0, len(toks) - 1))
            return JSONResponse(
                {
                    "id": rid,
                    "object": "chat.completion",
                    "model": model,
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": "".join(toks)},
                            "finish_reason": "length" if len(pieces(text)) > max_tokens else "stop",
                        }
                    ],
                    "usage": {"prompt_tokens": 12, "completion_tokens": len(toks), "total_tokens": 12 + len(toks)},
                }
            )
        usage = bool((body.get("stream_options") or {}).get("include_usage"))
        return StreamingResponse(
            stream(rid, model, max_tokens, usage, text),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Request-Id": rid},
        )

    async def models(request: Request) -> Response:
        return JSONResponse(
            {"object": "list", "data": [{"id": m, "object": "model", "owned_by": "devai-mock"} for m in MODES]}
        )

    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok", "models": list(MODES)})

    async def warmup(request: Request) -> Response:
        return JSONResponse({"status": "warm"})

    async def sent_log(request: Request) -> Response:
        """Mock-only: the send log (ground truth for timing benchmarks run in another process)."""
        return JSONResponse([list(entry) for entry in sent])

    app = Starlette(
        routes=[
            Route("/v1/chat/completions", chat, methods=["POST"]),
            Route("/v1/models", models, methods=["GET"]),
            Route("/health", health, methods=["GET"]),
            Route("/v1/warmup", warmup, methods=["POST"]),
            Route("/v1/_sent", sent_log, methods=["GET"]),
        ]
    )
    app.state.sent = sent
    app.state.config = cfg
    return app
