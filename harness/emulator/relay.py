"""``engine: vllm``: the reference worker's OpenAI route relays a real vLLM server, as worker-vllm does.

worker-vllm's OpenAI route hands the request to vLLM's own OpenAI server code and yields what comes back, so a
RunPod endpoint's ``/openai/v1`` output is vLLM's output, cut by the worker:

* era E (``RAW_OPENAI_OUTPUT``, worker-vllm up to v2.23): the SSE events, joined into one string per batch
  (batch sizes 1, 3, 9, ... as its dynamic batching grows); ``raw_openai_output: false`` yields each batch as a
  list of chunk dicts;
* era F (v2.24+): the raw SSE bytes, each read decoded on its own with ``errors="replace"`` (a character split
  across reads becomes U+FFFD, as in the field). On loopback vLLM's writes arrive one whole event per read, which
  a network between the worker and vLLM does not promise: the real bytes are re-cut at seeded boundaries of 1-96
  bytes, as such reads fall;
* a whole (non-streamed) reply and ``/v1/models``: vLLM's JSON as it is;
* an HTTP error from vLLM: worker-vllm's wrapped error object (``vLLM returned HTTP 400: {...}``).

The server is given by ``openai_base_url`` (its ``/v1`` URL); native-route jobs stream from it too
(:class:`harness.emulator.engines.OpenAIEngine`).
"""

from __future__ import annotations

import codecs
import json
import random
import urllib.request
from collections.abc import AsyncIterator
from typing import Any

import httpx

from harness.core.sse import SSEEvent, SSEParser

__all__ = ["UPSTREAM_HEADER", "ByteCutter", "relay_openai", "server_version"]

UPSTREAM_HEADER = "x-devai-upstream"  # marks the worker's own requests, so cassettes leave them out
_ROUTES = {"/v1/chat/completions": "/chat/completions", "/v1/completions": "/completions", "/v1/models": "/models"}


def _wrapped_error(status: int, text: str) -> dict[str, Any]:
    return {"error": {"message": f"vLLM returned HTTP {status}: {text}", "type": "worker_error", "code": None}}


async def relay_openai(
    base_url: str,
    route: str,
    body: dict[str, Any],
    *,
    era: str,
    raw: bool,
    headers: dict[str, str] | None = None,
    timeout_s: float = 600.0,
    seed: int = 0,
) -> AsyncIterator[Any]:
    path = _ROUTES.get(route)
    if path is None:
        yield {"error": {"object": "error", "message": f"unsupported openai_route {route!r}", "code": 400}}
        return
    sent = {**(headers or {}), UPSTREAM_HEADER: "1"}
    async with httpx.AsyncClient(base_url=base_url.rstrip("/"), headers=sent, timeout=timeout_s) as http:
        if path == "/models":
            resp = await http.get(path)
            yield resp.json() if resp.status_code < 400 else _wrapped_error(resp.status_code, resp.text)
            return
        async with http.stream("POST", path, json=body) as resp:
            if resp.status_code >= 400 or not body.get("stream"):
                await resp.aread()
                yield resp.json() if resp.status_code < 400 else _wrapped_error(resp.status_code, resp.text)
                return
            reads = resp.aiter_raw()
            items = _era_f(reads, ByteCutter(random.Random(seed))) if era == "F" else _era_e(reads, raw=raw)
            async for item in items:
                yield item


class ByteCutter:
    """Era F: vllm serve's byte stream, cut where reads happen (1-96 bytes), each piece decoded on its
    own with errors="replace" — which is how a character split across reads becomes U+FFFD."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.pending = b""
        self.step = rng.randint(1, 96)

    def feed(self, text: str, *, final: bool = False) -> list[str]:
        return self.feed_bytes(text.encode(), final=final)

    def feed_bytes(self, data: bytes, *, final: bool = False) -> list[str]:
        self.pending += data
        out = []
        while len(self.pending) >= self.step or (final and self.pending):
            piece, self.pending = self.pending[: self.step], self.pending[self.step :]
            out.append(piece.decode(errors="replace"))
            self.step = self.rng.randint(1, 96)
        return out


async def _era_f(reads: AsyncIterator[bytes], cutter: ByteCutter) -> AsyncIterator[str]:
    async for data in reads:
        for piece in cutter.feed_bytes(data):
            yield piece
    for piece in cutter.feed_bytes(b"", final=True):
        yield piece


async def _era_e(reads: AsyncIterator[bytes], *, raw: bool) -> AsyncIterator[Any]:
    parser, size = SSEParser(), 1
    batch: list[Any] = []
    decode = codecs.getincrementaldecoder("utf-8")().decode  # a character may straddle two reads
    async for data in reads:
        for ev in parser.feed(decode(data)):
            if not isinstance(ev, SSEEvent):
                continue
            if ev.is_done:
                if batch and not raw:
                    yield batch
                if raw:
                    yield "".join(f"data: {e}\n\n" for e in batch) + "data: [DONE]\n\n"
                return
            batch.append(ev.data if raw else json.loads(ev.data))
            if len(batch) >= size:
                yield "".join(f"data: {e}\n\n" for e in batch) if raw else batch
                batch, size = [], min(50, size * 3)
    if batch:
        yield "".join(f"data: {e}\n\n" for e in batch) if raw else batch


def server_version(base_url: str) -> str | None:
    """vLLM's GET /version (beside /v1), or None when the server has none or cannot be reached."""
    root = base_url.rstrip("/").removesuffix("/v1")
    try:
        with urllib.request.urlopen(f"{root}/version", timeout=10) as resp:  # loopback in our use
            version = json.loads(resp.read()).get("version")
    except (OSError, ValueError, AttributeError):
        return None
    return str(version) if version else None
