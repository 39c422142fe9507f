"""Ground truth for timing benchmarks: a loopback OpenAI-compatible server (made by us) that logs, per request,
when its first byte arrived and when each part of the answer was written, on CLOCK_MONOTONIC.

Plain asyncio protocol, no framework: the arrival stamp is taken in ``data_received`` (the earliest moment Python
can know), and one core serves ~6,500 non-streaming requests/s (measured with a raw asyncio client on the other
core): at the fastest one-core generator's ceiling (~2,400/s) it runs at under 40% of its core.

Every answer is the same work whatever a tool asks for, so tools are compared on one workload:
streaming  ``tokens`` chunks, the first after ``ttft_s`` (its delta carries the role AND the first token, so
           "first token" means one thing to every tool), then one every ``itl_s``; a usage chunk when
           stream_options.include_usage; then [DONE] and the chunked-encoding end in one write.
otherwise  one chat.completion after ``latency_s``.
The server's request id is the completion ``id`` and the ``X-Request-Id`` reply header; a client's own
``X-Request-ID`` header (AIPerf sends one) is logged beside it, so every tool's records can be matched.

GET /_log -> [[rid, client_request_id, arrival, first_token_written, last_written], ...] (seconds; the write
stamps are taken just before each write, so no client can see the bytes before their stamp);
POST /_reset empties it. GET /v1/models and /health answer too.

    python benchmarks/truthserver.py [--port 0] [--ttft 0.05] [--itl 0.01] [--tokens 16] [--latency 0.02] [--cpu 0]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import time
import uuid
from dataclasses import dataclass
from typing import Any

MODEL = "truth"


@dataclass(frozen=True)
class Timing:
    ttft_s: float = 0.05
    itl_s: float = 0.01
    tokens: int = 16
    latency_s: float = 0.02


def _head(status: str, headers: dict[str, str]) -> bytes:
    lines = [f"HTTP/1.1 {status}"] + [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def _chunk(data: bytes) -> bytes:  # HTTP/1.1 chunked transfer encoding
    return b"%x\r\n%s\r\n" % (len(data), data)


class TruthProtocol(asyncio.Protocol):
    def __init__(self, timing: Timing, log: list[list[Any]]) -> None:
        self.timing, self.log = timing, log
        self.buf = b""
        self.arrival = 0.0
        self.transport: asyncio.Transport | None = None
        self.busy: asyncio.Task[None] | None = None  # one request at a time per connection (no pipelining)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def connection_lost(self, exc: Exception | None) -> None:
        if self.busy is not None:
            self.busy.cancel()

    def data_received(self, data: bytes) -> None:
        if not self.buf:
            self.arrival = time.perf_counter()
        self.buf += data
        self._next()

    def _next(self) -> None:
        if self.busy is not None and not self.busy.done():
            return
        end = self.buf.find(b"\r\n\r\n")
        if end < 0:
            return
        head = self.buf[:end].decode("latin-1").split("\r\n")
        headers = {k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in head[1:])}
        length = int(headers.get("content-length", "0"))
        if len(self.buf) < end + 4 + length:
            return
        body, self.buf = self.buf[end + 4 : end + 4 + length], self.buf[end + 4 + length :]
        method, path = head[0].split(" ")[:2]
        arrival, self.arrival = self.arrival, time.perf_counter()  # a pipelined next request arrived by now
        self.busy = asyncio.ensure_future(self._answer(method, path, headers, body, arrival))
        self.busy.add_done_callback(lambda _: self._next())

    def _send(self, status: str, payload: Any, extra: dict[str, str] | None = None) -> float:
        data = json.dumps(payload).encode()
        headers = {"Content-Type": "application/json", "Content-Length": str(len(data))} | (extra or {})
        assert self.transport is not None
        sent = time.perf_counter()  # stamped just before the write: no client can see the bytes earlier
        self.transport.write(_head(status, headers) + data)
        return sent

    async def _answer(self, method: str, path: str, headers: dict[str, str], body: bytes, arrival: float) -> None:
        path = path.split("?")[0]
        if method == "GET" and path in ("/v1/models", "/models"):
            self._send("200 OK", {"object": "list", "data": [{"id": MODEL, "object": "model", "owned_by": "truth"}]})
        elif method == "GET" and path == "/health":
            self._send("200 OK", {"status": "ok"})
        elif method == "GET" and path == "/_log":
            self._send("200 OK", self.log)
        elif method == "POST" and path == "/_reset":
            self.log.clear()
            self._send("200 OK", {"reset": True})
        elif method == "POST" and path in ("/v1/chat/completions", "/chat/completions"):
            await self._chat(json.loads(body or b"{}"), headers.get("x-request-id"), arrival)
        else:
            self._send("404 Not Found", {"error": {"message": f"no route {method} {path}", "code": 404}})

    async def _chat(self, req: dict[str, Any], client_id: str | None, arrival: float) -> None:
        t, rid = self.timing, f"chatcmpl-{uuid.uuid4().hex[:16]}"
        entry: list[Any] = [rid, client_id, arrival, None, None]
        self.log.append(entry)
        words = [f" w{i}" for i in range(t.tokens)]
        usage = {"prompt_tokens": 8, "completion_tokens": t.tokens, "total_tokens": 8 + t.tokens}
        if not req.get("stream"):
            await asyncio.sleep(t.latency_s)
            msg = {"role": "assistant", "content": "".join(words)}
            choice = {"index": 0, "message": msg, "finish_reason": "length"}
            answer = {"id": rid, "object": "chat.completion", "model": MODEL, "choices": [choice], "usage": usage}
            entry[3] = entry[4] = self._send("200 OK", answer, {"X-Request-Id": rid})
            return
        assert self.transport is not None
        headers = {"Content-Type": "text/event-stream", "Transfer-Encoding": "chunked", "X-Request-Id": rid}
        self.transport.write(_head("200 OK", headers))
        created = int(time.time())
        for i, word in enumerate(words):
            await asyncio.sleep(t.ttft_s if i == 0 else t.itl_s)
            delta = {"role": "assistant", "content": word} if i == 0 else {"content": word}
            finish = "length" if i == len(words) - 1 else None
            event = {"id": rid, "object": "chat.completion.chunk", "created": created, "model": MODEL}
            event["choices"] = [{"index": 0, "delta": delta, "finish_reason": finish}]
            data = _chunk(b"data: " + json.dumps(event).encode() + b"\n\n")
            if i == 0:
                entry[3] = time.perf_counter()
            self.transport.write(data)
        tail = b""
        if (req.get("stream_options") or {}).get("include_usage"):
            event = {"id": rid, "object": "chat.completion.chunk", "model": MODEL, "choices": [], "usage": usage}
            tail = _chunk(b"data: " + json.dumps(event).encode() + b"\n\n")
        data = tail + _chunk(b"data: [DONE]\n\n") + b"0\r\n\r\n"
        entry[4] = time.perf_counter()
        self.transport.write(data)


async def serve(timing: Timing, port: int = 0, on_ready: Any = print) -> None:
    log: list[list[Any]] = []
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: TruthProtocol(timing, log), "127.0.0.1", port, backlog=4096)
    on_ready(f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}")
    async with server:
        await server.serve_forever()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--ttft", type=float, default=Timing.ttft_s)
    ap.add_argument("--itl", type=float, default=Timing.itl_s)
    ap.add_argument("--tokens", type=int, default=Timing.tokens)
    ap.add_argument("--latency", type=float, default=Timing.latency_s)
    ap.add_argument("--cpu", type=int, help="pin to this core")
    args = ap.parse_args()
    if args.cpu is not None and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {args.cpu})
    timing = Timing(args.ttft, args.itl, args.tokens, args.latency)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(timing, args.port, lambda url: print(url, flush=True)))


if __name__ == "__main__":
    main()
