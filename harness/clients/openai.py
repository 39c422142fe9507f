"""Async client for OpenAI-compatible servers (vllm serve, LM Studio, Ollama, llama.cpp, RunPod's
/openai/v1 passthrough), streaming and not, with a timing record per request: an I/O loop around
:class:`~harness.core.streaming.StreamAccumulator`.

Field report 003 is the user story: a stream that hangs after "start" while a model loads for 12
minutes, with no feedback and errors without codes. So a stream here has two clocks: no bytes for
``stall_timeout_s`` -> StreamStalled (keep-alive comments count as bytes), and no *content* by
``ttft_timeout_s`` -> StreamStalled even if keep-alives keep coming. An error event raises
StreamErrorEvent with its code; a stream that ends without [DONE] or a finish_reason raises
StreamTruncated. HTTP errors are StatusError (RateLimited for 429) as for every client, with the OpenAI
error envelope's type, code and param when the body carries one.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

import httpx

from harness.clients.transport import ClientLifecycle, HTTPCore, Reply, map_httpx_errors
from harness.core.clock import Clock, SystemClock
from harness.core.errors import ProtocolError, ShapeError, StatusError, WorkerError
from harness.core.findings import Finding, Severity
from harness.core.polling import RetryPolicy
from harness.core.shapes import extract
from harness.core.streaming import Completion, StreamAccumulator, reply_completion
from harness.core.timing import RequestTiming
from harness.core.wire import auth_headers, chat_body, completion_body

__all__ = ["WARMUP_PATHS", "Completion", "OpenAIClient"]

# Where servers put a warm-up hook: ours (mock), and the seed 003 proxy's /api/models/warmup.
WARMUP_PATHS = ("warmup", "../warmup", "../api/models/warmup")


class OpenAIClient(ClientLifecycle):
    """``async with OpenAIClient("http://127.0.0.1:8000/v1") as oa: c = await oa.chat([...], model=...)``"""

    def __init__(
        self,
        base_url: str,
        api_key: str | None = None,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        request_timeout: float = 600.0,
        stall_timeout_s: float = 30.0,
        ttft_timeout_s: float | None = None,
        stream_options: bool = True,
        retry: RetryPolicy | None = None,
        clock: Clock | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.stall_timeout_s = stall_timeout_s
        self.ttft_timeout_s = ttft_timeout_s
        self.stream_options = stream_options
        self.clock: Clock = clock or SystemClock()
        self._core = HTTPCore(
            self.base_url,
            headers=auth_headers(api_key),
            secrets=(api_key,),
            transport=transport,
            timeout=request_timeout,
            retry=retry or RetryPolicy(),
            clock=self.clock,
            rng=rng,
        )

    def __repr__(self) -> str:
        return f"OpenAIClient(base_url={self.base_url!r}, api_key=<redacted>)"

    async def models(self) -> list[str]:
        resp = await self._core.send("GET", "/models", idempotent=True)
        if resp.status_code >= 400:
            raise self._core.status_error("GET", resp)
        data = self._core.json("GET", resp)
        try:
            return list(extract(data).models)
        except (ShapeError, WorkerError) as exc:
            raise ProtocolError(f"GET {self._core.where('/models')}: {exc}") from None

    async def warmup(self, paths: tuple[str, ...] = ()) -> dict[str, int]:
        """POST each known warm-up path (relative to the base URL; '../' climbs above /v1); status per path."""
        found: dict[str, int] = {}
        for path in paths or WARMUP_PATHS:
            url = httpx.URL(self.base_url + "/").join(path)
            resp = await self._core.send("POST", str(url), idempotent=False, json_body={})
            found[path] = resp.status_code
        return found

    async def ready(self) -> bool | None:
        """GET /health beside the API (vLLM's, llama.cpp's): True on 200, False on another status, None when the
        server has no such route (404)."""
        resp = await self._core.send("GET", str(httpx.URL(self.base_url + "/").join("../health")), idempotent=True)
        return None if resp.status_code == 404 else resp.status_code == 200

    async def chat(
        self,
        messages: list[dict[str, Any]],
        *,
        model: str,
        stream: bool = True,
        max_tokens: int | None = None,
        extra: Mapping[str, Any] | None = None,
        name: str = "chat",
        on_delta: Callable[[str], None] | None = None,
    ) -> Completion:
        """``extra`` is merged into the body (sampling params; your own ``stream_options`` are kept)."""

        def body(usage: bool) -> dict[str, Any]:
            return chat_body(model, messages, max_tokens=max_tokens, stream=stream, include_usage=usage, extra=extra)

        return await self._complete("/chat/completions", body, stream=stream, name=name, on_delta=on_delta)

    async def complete(
        self,
        prompt: str,
        *,
        model: str,
        stream: bool = True,
        max_tokens: int | None = None,
        extra: Mapping[str, Any] | None = None,
        name: str = "completion",
    ) -> Completion:
        def body(usage: bool) -> dict[str, Any]:
            return completion_body(
                model, prompt, max_tokens=max_tokens, stream=stream, include_usage=usage, extra=extra
            )

        return await self._complete("/completions", body, stream=stream, name=name, on_delta=None)

    async def _complete(
        self,
        path: str,
        body: Callable[[bool], dict[str, Any]],
        *,
        stream: bool,
        name: str,
        on_delta: Callable[[str], None] | None,
    ) -> Completion:
        if not stream:
            return await self._whole(path, body(False), name)
        try:
            return await self._stream(path, body(self.stream_options), name, on_delta)
        except StatusError as exc:
            if exc.status_code != 400 or "stream_options" not in exc.body or not self.stream_options:
                raise
            if "stream_options" in body(False):
                raise  # the caller asked for these options: not ours to drop
        # A strict server refused the vendor extra (guidellm #603): say so, and go on without it.
        done = await self._stream(path, body(False), name, on_delta)
        done.findings.insert(
            0,
            Finding(
                "stream-options-rejected",
                "server rejects stream_options",
                "usage will be missing from streams",
                Severity.WARNING,
            ),
        )
        return done

    async def _whole(self, path: str, body: dict[str, Any], name: str) -> Completion:
        t0 = self.clock.now()
        timing = RequestTiming(name=name, streamed=False)
        try:
            resp = await self._core.send("POST", path, idempotent=False, json_body=body)
            timing.tt_headers = timing.tt_ack = timing.e2e = self.clock.now() - t0
            if resp.status_code >= 400:
                raise self._core.status_error("POST", resp)
            reply = self._core.json("POST", resp)
            model = body.get("model")
            return reply_completion(
                reply, timing, where=f"POST {self._core.where(path)}", model=model if isinstance(model, str) else None
            )
        except BaseException as exc:
            timing.failed(exc, self.clock.now() - t0)
            raise

    async def _stream(
        self, path: str, body: dict[str, Any], name: str, on_delta: Callable[[str], None] | None
    ) -> Completion:
        where = self._core.where(path)
        acc = StreamAccumulator(
            f"POST {where}",
            name=name,
            stall_timeout_s=self.stall_timeout_s,
            ttft_timeout_s=self.ttft_timeout_s,
            total_timeout_s=self._core.total(None),
            on_delta=on_delta,
            max_line=self._core.limits.line_bytes,
        )
        t0 = self.clock.now()
        try:
            with map_httpx_errors("POST", where, self._core.redact):
                async with self._core.http.stream("POST", path, json=body, timeout=acc.total_timeout_s) as resp:
                    acc.headers(self.clock.now() - t0)
                    self._core.refuse_redirect("POST", resp)
                    if resp.status_code >= 400:
                        content = await self._core.read_body(resp, self._core.limits.error_bytes, where, keep_head=True)
                        raise self._core.status_error("POST", Reply(resp.status_code, resp.headers, content, where))
                    raw = self._core.iter_body(resp, f"POST {where}")
                    while (data := await self._next(raw, acc, t0)) is not None:
                        acc.feed(data, self.clock.now() - t0)
            model = body.get("model")
            return acc.finish(self.clock.now() - t0, model=model if isinstance(model, str) else None)
        except BaseException as exc:
            acc.timing.failed(exc, self.clock.now() - t0)
            raise

    async def _next(self, raw: AsyncIterator[bytes], acc: StreamAccumulator, t0: float) -> bytes | None:
        """The next bytes, or None at the end; StreamStalled when the stall, TTFT or total budget runs out."""
        budget = acc.budget(self.clock.now() - t0)
        try:
            return await asyncio.wait_for(anext(raw), timeout=budget.seconds)
        except StopAsyncIteration:
            return None
        except TimeoutError:
            raise acc.stalled(budget, self.clock.now() - t0) from None
