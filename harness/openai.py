"""Async client for OpenAI-compatible servers (vllm serve, LM Studio, Ollama, llama.cpp, RunPod's
/openai/v1 passthrough), streaming and not, with a timing record per request.

Field report 003 is the user story: a stream that hangs after "start" while a model loads for 12
minutes, with no feedback and errors without codes. So a stream here has two clocks: no bytes for
``stall_timeout_s`` -> StreamStalled (keep-alive comments count as bytes), and no *content* by
``ttft_timeout_s`` -> StreamStalled even if keep-alives keep coming. An error event raises
StreamErrorEvent with its code; a stream that ends without [DONE] or a finish_reason raises
StreamTruncated.
"""

from __future__ import annotations

import asyncio
import codecs
import json
import random
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

from harness.clock import Clock, SystemClock
from harness.errors import (
    ProtocolError,
    ShapeError,
    StreamErrorEvent,
    StreamProtocolError,
    StreamStalled,
    StreamTruncated,
    WorkerError,
)
from harness.findings import Finding, Severity
from harness.polling import RetryPolicy
from harness.shapes import Usage, extract, worker_error
from harness.sse import SSEComment, SSEEvent, SSEParser
from harness.timing import RequestTiming
from harness.transport import ClientLifecycle, HTTPCore, map_httpx_errors

__all__ = ["WARMUP_PATHS", "Completion", "OpenAIClient", "record_event"]

# Where servers put a warm-up hook: ours (mock), and the seed 003 proxy's /api/models/warmup.
WARMUP_PATHS = ("warmup", "../warmup", "../api/models/warmup")


@dataclass(slots=True)
class Completion:
    text: str
    choices: tuple[str, ...]
    reasoning: tuple[str, ...]
    finish_reason: str | None
    usage: Usage | None
    model: str | None
    timing: RequestTiming
    findings: list[Finding] = field(default_factory=list)
    ids: tuple[str, ...] = ()  # distinct chunk/response ids, in order of arrival


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
        headers = {"User-Agent": "devai-harness"}
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        self.base_url = base_url.rstrip("/")
        self.stall_timeout_s = stall_timeout_s
        self.ttft_timeout_s = ttft_timeout_s
        self.stream_options = stream_options
        self.clock: Clock = clock or SystemClock()
        self._core = HTTPCore(
            self.base_url,
            headers=headers,
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
            raise self._core.status_error("GET", "/models", resp)
        data = self._core.json("GET", "/models", resp)
        try:
            return list(extract(data).models)
        except (ShapeError, WorkerError) as exc:
            raise ProtocolError(f"GET /models: {exc}") from None

    async def warmup(self, paths: tuple[str, ...] = ()) -> dict[str, int]:
        """POST each known warm-up path (relative to the base URL; '../' climbs above /v1); status per path."""
        found: dict[str, int] = {}
        for path in paths or WARMUP_PATHS:
            url = httpx.URL(self.base_url + "/").join(path)
            resp = await self._core.send("POST", str(url), idempotent=False, json_body={})
            found[path] = resp.status_code
        return found

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
        body: dict[str, Any] = {"model": model, "messages": messages, **(extra or {})}
        if max_tokens is not None:
            body["max_tokens"] = max_tokens
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
        body: dict[str, Any] = {"model": model, "prompt": prompt, **(extra or {})}
        if max_tokens is not None:
            body["max_tokens"] = max_tokens
        return await self._complete("/completions", body, stream=stream, name=name, on_delta=None)

    async def _complete(
        self, path: str, body: dict[str, Any], *, stream: bool, name: str, on_delta: Callable[[str], None] | None
    ) -> Completion:
        timing = RequestTiming(name=name)
        t0 = self.clock.now()
        try:
            if not stream:
                resp = await self._core.send("POST", path, idempotent=False, json_body=body)
                timing.tt_headers = timing.tt_ack = timing.e2e = self.clock.now() - t0
                if resp.status_code >= 400:
                    raise self._error_reply("POST", path, resp)
                timing.ttft = timing.last_content = timing.e2e
                reply = self._core.json("POST", path, resp)
                done = self._finish(extract(reply), timing, body.get("model"), [])
                done.ids = (str(reply["id"]),) if isinstance(reply, dict) and "id" in reply else ()
                timing.request_id = done.ids[0] if done.ids else None
                return done
            findings: list[Finding] = []
            if self.stream_options:
                body = {**body, "stream": True, "stream_options": {"include_usage": True}}
            else:
                body = {**body, "stream": True}
            try:
                return await self._stream(path, body, timing, t0, findings, on_delta)
            except StatusError400 as rejected:
                if "stream_options" not in rejected.text or not self.stream_options:
                    raise rejected.error from None
                # A strict server refused the vendor extra (guidellm #603): say so, and go on without it.
                findings.append(
                    Finding(
                        "stream-options-rejected",
                        "server rejects stream_options",
                        "usage will be missing from streams",
                        Severity.WARNING,
                    )
                )
                body.pop("stream_options")
                timing = RequestTiming(name=name)
                return await self._stream(path, body, timing, self.clock.now(), findings, on_delta)
        except BaseException as exc:
            timing.status, timing.error = "error", type(exc).__name__
            timing.e2e = self.clock.now() - t0
            exc.add_note(f"timing: {timing.to_json()}")
            raise

    def _error_reply(self, method: str, path: str, resp: httpx.Response) -> Exception:
        try:
            data = resp.json()
        except ValueError:
            data = None
        if isinstance(data, dict) and "error" in data and resp.status_code not in (429, 503):
            err = worker_error(data)
            return StreamErrorEvent(
                f"HTTP {resp.status_code}: {err.message}", code=err.code or resp.status_code, raw=data
            )
        return self._core.status_error(method, path, resp)

    async def _stream(
        self,
        path: str,
        body: dict[str, Any],
        timing: RequestTiming,
        t0: float,
        findings: list[Finding],
        on_delta: Callable[[str], None] | None,
    ) -> Completion:
        chunks: list[dict[str, Any]] = []
        done = False
        with map_httpx_errors("POST", path, self._core.redact):
            async with self._core.http.stream("POST", path, json=body) as resp:
                timing.tt_headers = self.clock.now() - t0
                if resp.status_code >= 400:
                    await resp.aread()
                    if resp.status_code == 400:
                        raise StatusError400(resp.text, self._error_reply("POST", path, resp))
                    raise self._error_reply("POST", path, resp)
                parser = SSEParser()
                decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
                raw = resp.aiter_raw()
                last_content: float | None = None
                head, records = b"", 0
                while True:
                    data = await self._next(raw, timing, t0)
                    if data is None:
                        break
                    now = self.clock.now() - t0
                    if timing.tt_ack is None:
                        timing.tt_ack = now
                    head = head or data[:80]
                    parsed = parser.feed(decoder.decode(data))
                    records += len(parsed)
                    for rec in parsed:
                        if isinstance(rec, SSEComment):
                            timing.keepalives.append(now)
                            continue
                        if rec.is_done:
                            done = True
                            timing.e2e = now  # the answer ends at [DONE], not when the server closes the body
                            continue
                        last_content = record_event(rec, chunks, timing, now, last_content, on_delta)
                for rec in parser.finish():
                    if isinstance(rec, SSEEvent) and not rec.is_done:
                        last_content = record_event(rec, chunks, timing, self.clock.now() - t0, last_content, on_delta)
        if timing.e2e is None:
            timing.e2e = self.clock.now() - t0
        if head and not records:
            raise StreamProtocolError(f"POST {path}: the reply is not an SSE stream (starts {head!r})")
        if not chunks:
            raise StreamTruncated(f"POST {path}: the stream ended without any chunk" + ("" if done else " or [DONE]"))
        got = extract(chunks)
        if not done and got.finish_reason is None:
            raise StreamTruncated(
                f"POST {path}: the stream ended without [DONE] or a finish_reason after {len(chunks)} chunk(s)"
            )
        if not done:
            findings.append(Finding("sse-no-done", "stream ended without data: [DONE]", "", Severity.WARNING))
        result = self._finish(got, timing, body.get("model"), findings)
        result.ids = tuple(dict.fromkeys(str(c["id"]) for c in chunks if "id" in c))
        return result

    async def _next(self, raw: AsyncIterator[bytes], timing: RequestTiming, t0: float) -> bytes | None:
        """The next bytes, or None at the end; StreamStalled when the stall or TTFT budget runs out."""
        limit = self.stall_timeout_s
        ttft_left = None
        if self.ttft_timeout_s is not None and timing.ttft is None:
            ttft_left = self.ttft_timeout_s - (self.clock.now() - t0)
            limit = min(limit, max(0.0, ttft_left))
        try:
            return await asyncio.wait_for(anext(raw), timeout=limit)
        except StopAsyncIteration:
            return None
        except TimeoutError:
            waited = self.clock.now() - t0
            if ttft_left is not None and ttft_left <= self.stall_timeout_s:
                raise StreamStalled(
                    f"no content within the TTFT budget of {self.ttft_timeout_s:g} s "
                    f"({len(timing.keepalives)} keep-alive(s) meanwhile)",
                    waited_s=waited,
                ) from None
            raise StreamStalled(
                f"no bytes for {self.stall_timeout_s:g} s (after {waited:.1f} s, "
                f"{timing.content_chunks} content chunk(s))",
                waited_s=waited,
            ) from None

    @staticmethod
    def _finish(got: Any, timing: RequestTiming, model: Any, findings: list[Finding]) -> Completion:
        timing.finish_reason = got.finish_reason
        if got.usage is not None:
            timing.input_tokens, timing.output_tokens = got.usage.input_tokens, got.usage.output_tokens
        return Completion(
            text=got.text,
            choices=got.choices,
            reasoning=got.reasoning,
            finish_reason=got.finish_reason,
            usage=got.usage,
            model=model if isinstance(model, str) else None,
            timing=timing,
            findings=[*findings, *got.findings],
        )


class StatusError400(Exception):
    """Internal: a 400 on a stream, kept with its text so a stream_options rejection can be retried."""

    def __init__(self, text: str, error: Exception) -> None:
        super().__init__(text)
        self.text = text
        self.error = error


def record_event(
    rec: SSEEvent,
    chunks: list[dict[str, Any]],
    timing: RequestTiming,
    now: float,
    last_content: float | None,
    on_delta: Callable[[str], None] | None,
) -> float | None:
    """Apply one SSE event to the timing record; return the time of the last content chunk.
    Shared by the async client and the sync (locust) driver."""
    try:
        data = json.loads(rec.data)
    except ValueError:
        raise ProtocolError(f"SSE event is not JSON: {rec.data[:80]!r}") from None
    if not isinstance(data, dict):
        raise ProtocolError(f"SSE event is not an object: {rec.data[:80]!r}")
    if rec.event == "error" or data.get("type") == "error" or ("error" in data and "choices" not in data):
        err = worker_error(data)
        raise StreamErrorEvent(err.message, code=err.code, raw=data)
    if "choices" not in data:
        timing.signals.append((now, str(data.get("type") or data.get("object") or "event")))
        return last_content
    chunks.append(data)
    if timing.request_id is None and isinstance(data.get("id"), str):
        timing.request_id = data["id"]
    content = reasoning = ""
    for c in data.get("choices") or ():
        part = c.get("delta") if isinstance(c, dict) and isinstance(c.get("delta"), dict) else c
        if isinstance(part, dict):
            content += str(part.get("content") or part.get("text") or "")
            reasoning += str(part.get("reasoning_content") or part.get("reasoning") or "")
    if reasoning and timing.first_reasoning is None:
        timing.first_reasoning = now
    if content:
        timing.content_chunks += 1
        if timing.ttft is None:
            timing.ttft = now
        if last_content is not None:
            timing.gaps.append(now - last_content)
        timing.last_content = now
        if on_delta is not None:
            on_delta(content)
        return now
    return last_content
