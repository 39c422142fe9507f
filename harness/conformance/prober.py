"""The raw OpenAI-compatible exchange the semantics checks read: the status, the content type and every SSE event
of a chat completion, asked under the harness's caps and deadlines (not through OpenAIClient, which smooths over
the details the contract is in)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import httpx

from harness.clients.transport import HTTPCore, map_httpx_errors
from harness.core.clock import SystemClock
from harness.core.errors import ProtocolError, RequestTimeout, TransportError
from harness.core.limits import parse_json
from harness.core.polling import RetryPolicy
from harness.core.sse import SSEEvent, SSEParser
from harness.core.wire import auth_headers

__all__ = ["GREEDY", "PROMPT", "TOKENS", "Prober", "Reply", "Unanswered", "Unsupported", "read_json"]

PROMPT = [{"role": "user", "content": "Count from one to twenty in words, separated by commas."}]
GREEDY: dict[str, Any] = {"temperature": 0.0}
TOKENS = 16


class Unsupported(Exception):
    """The server rejected a feature explicitly (a 4xx naming it): a limitation a client can handle."""


@dataclass(frozen=True, slots=True)
class Reply:
    status: int
    content_type: str
    body: Any = None  # the JSON body (a whole reply, or an error)
    events: list[dict[str, Any]] = field(default_factory=list)  # a stream's data objects, [DONE] left out
    done: bool = False

    @property
    def streamed(self) -> bool:
        return "text/event-stream" in self.content_type

    def choices(self) -> dict[int, dict[str, Any]]:
        """index -> {text, finish_reason, stop_reason}, from a whole reply or a stream's deltas."""
        out: dict[int, dict[str, Any]] = {}
        sources = self.events if self.streamed else [self.body or {}]
        for item in sources:
            for c in item.get("choices") or ():
                slot = out.setdefault(int(c.get("index", 0)), {"text": "", "finish_reason": None, "stop_reason": None})
                piece = (c.get("delta") or c.get("message") or {}).get("content") or c.get("text") or ""
                slot["text"] += piece
                for key in ("finish_reason", "stop_reason"):
                    if c.get(key) is not None:
                        slot[key] = c[key]
        return out

    @property
    def text(self) -> str:
        return str(self.choices().get(0, {}).get("text", ""))

    @property
    def finish_reason(self) -> str | None:
        return self.choices().get(0, {}).get("finish_reason")

    @property
    def usage(self) -> dict[str, Any] | None:
        found = None
        for item in self.events if self.streamed else [self.body or {}]:
            if isinstance(item.get("usage"), dict):
                found = item["usage"]
        return found


class Unanswered(Exception):
    """The server could not be asked (a transport failure, a timeout, a 404 for the route or model): not-checked."""


class Prober:
    """Raw chat completions against ``base_url`` (…/v1), read under the harness's caps and deadlines."""

    def __init__(
        self,
        base_url: str,
        api_key: str | None,
        model: str,
        *,
        timeout: float = 120.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.model = model
        self._core = HTTPCore(
            base_url,
            headers=auth_headers(api_key),
            secrets=(api_key,),
            transport=transport,
            timeout=timeout,
            retry=RetryPolicy(max_attempts=1),
            clock=SystemClock(),
        )

    async def __aenter__(self) -> Prober:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._core.aclose()

    async def chat(
        self, messages: list[dict[str, Any]] | None = None, *, model: str | None = None, **params: Any
    ) -> Reply:
        body = {"model": model or self.model, "messages": messages or PROMPT, "max_tokens": TOKENS, **GREEDY}
        body |= params
        try:
            return await (self._stream(body) if body.get("stream") else self._whole(body))
        except TransportError as exc:
            raise Unanswered(f"{type(exc).__name__}: {exc}") from None

    async def _whole(self, body: dict[str, Any]) -> Reply:
        resp = await self._core.send("POST", "/chat/completions", idempotent=False, json_body=body)
        return Reply(resp.status_code, resp.headers.get("content-type", ""), read_json(resp.text))

    async def _stream(self, body: dict[str, Any]) -> Reply:
        where = self._core.where("/chat/completions")
        total = self._core.total(None)
        with map_httpx_errors("POST", where, self._core.redact):
            try:
                async with asyncio.timeout(total):
                    async with self._core.http.stream("POST", "/chat/completions", json=body, timeout=total) as resp:
                        self._core.refuse_redirect("POST", resp)
                        kind = resp.headers.get("content-type", "")
                        cap = (
                            self._core.limits.stream_bytes if resp.status_code < 400 else self._core.limits.error_bytes
                        )
                        raw = (await self._core.read_body(resp, cap, f"POST {where}")).decode("utf-8", "replace")
            except TimeoutError:
                raise RequestTimeout(f"POST {where}: the stream was not over within {total:g} s") from None
        if resp.status_code >= 400 or "text/event-stream" not in kind:
            return Reply(resp.status_code, kind, read_json(raw))
        parser = SSEParser(max_line=self._core.limits.line_bytes)
        events = [e for e in parser.feed(raw) + parser.finish() if isinstance(e, SSEEvent)]
        data = [read_json(e.data) for e in events if e.data.strip() != "[DONE]"]
        return Reply(resp.status_code, kind, None, [d for d in data if isinstance(d, dict)], "[DONE]" in raw)


def read_json(text: str) -> Any:
    try:
        return parse_json(text)
    except (ValueError, ProtocolError):
        return None
