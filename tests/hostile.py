"""A hostile endpoint on loopback, made by us: an OpenAI-compatible and RunPod-compatible server that misbehaves in
one chosen way on the routes that do the work (chat and completions; run, runsync, status, stream), while the routes
a pre-flight reads (/models, /health) answer well, so every stage meets the attack.

Modes: ``drip`` (headers, then a byte a second), ``keepalive`` (SSE comments forever), ``silent`` (never answers),
``huge`` (a 2 GB body), ``longline`` (one 500 MB SSE line), ``gzip`` (1 MB that inflates to 1 GB), ``echo`` (the
key it was sent, plain and encoded, in every place a reply can hold text), ``numbers`` (1e308, NaN, negative and
non-numeric timings and counts), ``redirect`` (302 to a link-local address).
"""

from __future__ import annotations

import base64
import functools
import http.server
import json
import struct
import threading
import time
import urllib.parse
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

MODES = ("drip", "keepalive", "silent", "huge", "longline", "gzip", "echo", "numbers", "redirect")
MODEL = "hostile-model"
_MB = 1 << 20


@functools.cache
def gzip_bomb(expanded: int = 1 << 30) -> bytes:
    """A valid gzip body of ``expanded`` zero bytes (about 1 MB per GB), made in a fraction of a second: one
    deflate block of 1 MiB of zeros, ended by a full flush (so every copy of it decodes alike), repeated."""
    z = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    block = z.compress(bytes(_MB)) + z.flush(zlib.Z_FULL_FLUSH)
    crc = 0
    for _ in range(expanded // _MB):
        crc = zlib.crc32(bytes(_MB), crc)
    header = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"
    trailer = struct.pack("<II", crc, expanded & 0xFFFFFFFF)
    return header + block * (expanded // _MB) + b"\x03\x00" + trailer


def encodings(key: str) -> list[str]:
    """The forms an endpoint may echo a key in: plain, base64, URL-quoted, JSON-escaped inside a string."""
    return [key, base64.b64encode(key.encode()).decode(), urllib.parse.quote(f"Bearer {key}", safe="")]


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: HostileServer

    def log_message(self, format: str, *args: Any) -> None:  # quiet: the test reads the harness's output
        pass

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        self.body = self.rfile.read(length) if length else b""
        self._serve()

    # --- routing ---

    def _serve(self) -> None:
        self.server.seen.append(self.path)
        path = self.path.split("?")[0]
        key = (self.headers.get("authorization") or "").removeprefix("Bearer ")
        try:
            if path.endswith("/models"):
                self._json(200, {"object": "list", "data": [{"id": MODEL, "object": "model"}]})
            elif path.endswith("/health") and self.server.mode != "numbers":
                self._json(200, {"jobs": {"inQueue": 0, "inProgress": 0}, "workers": {"idle": 1, "running": 0}})
            elif self.server.mode == "echo":
                self._echo(path, key)
            elif self.server.mode == "numbers":
                self._numbers(path)
            else:
                getattr(self, f"_{self.server.mode}")()
        except (BrokenPipeError, ConnectionResetError):
            pass  # the harness hung up: what it should do

    def _json(self, status: int, value: Any, extra: dict[str, str] | None = None) -> None:
        data = json.dumps(value).encode()
        self.send_response(status)
        for k, v in {"content-type": "application/json", "content-length": str(len(data)), **(extra or {})}.items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def _head(self, content_type: str, extra: dict[str, str] | None = None) -> None:
        self.send_response(200)
        self.send_header("content-type", content_type)
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.send_header("connection", "close")
        self.end_headers()
        self.close_connection = True

    def _forever(self, piece: bytes, every_s: float) -> None:
        while not self.server.stopping.wait(every_s):
            self.wfile.write(piece)
            self.wfile.flush()

    # --- the attacks ---

    def _drip(self) -> None:
        self._head("application/json", {"content-length": str(1 << 30)})
        self._forever(b" ", 1.0)

    def _keepalive(self) -> None:
        self._head("text/event-stream")
        self._forever(b": keep-alive\n\n", 0.2)

    def _silent(self) -> None:
        self.server.stopping.wait(600)

    def _flood(self, head: bytes, content_type: str, total: int) -> None:
        self._head(content_type)
        self.wfile.write(head)
        block = b"a" * _MB
        for _ in range(total // _MB):
            if self.server.stopping.is_set():
                return
            self.wfile.write(block)

    def _huge(self) -> None:
        self._flood(b'{"id": "j1", "status": "COMPLETED", "output": "', "application/json", 2 << 30)

    def _longline(self) -> None:
        self._flood(b"data: ", "text/event-stream", 500 * _MB)

    def _gzip(self) -> None:
        bomb = gzip_bomb()
        self._head("application/json", {"content-encoding": "gzip", "content-length": str(len(bomb))})
        self.wfile.write(bomb)

    def _redirect(self) -> None:
        self.send_response(302)
        self.send_header("location", "http://169.254.169.254/latest/meta-data/")
        self.send_header("content-length", "0")
        self.end_headers()

    def _echo(self, path: str, key: str) -> None:
        said = " / ".join(encodings(key))
        self.server.count += 1
        if "/chat/completions" in path or path.endswith("/completions"):
            wants_stream = b'"stream": true' in self.body or b'"stream":true' in self.body
            if wants_stream:
                self._head("text/event-stream")
                event = {"error": {"message": f"invalid key {said}", "code": 401}}
                self.wfile.write(f"data: {json.dumps(event)}\n\n".encode())
            elif self.server.count % 2:
                self._json(400, {"error": {"message": f"you sent Bearer {said}"}})
            else:
                self._json(200, _chat(f"the key is {said}", model=key))
        elif any(r in path for r in ("/run", "/status", "/stream")):
            if self.server.count % 2:
                self._json(200, {"id": "j1", "status": "FAILED", "error": f"worker saw Bearer {said}"})
            else:
                self._json(200, {"id": "j1", "status": "COMPLETED", "output": [{"choices": [{"tokens": [said]}]}]})
        else:
            self._json(400, {"error": f"unknown route; you sent {said}"})

    def _numbers(self, path: str) -> None:
        if path.endswith("/health"):
            self._json(200, {"jobs": {"inQueue": 1e308, "inProgress": -4}, "workers": {"idle": "many", "running": 1}})
            return
        job = {"id": "j1", "status": "COMPLETED", "delayTime": float("nan"), "executionTime": 1e308}
        self._json(200, {**job, "output": [{"choices": [{"tokens": ["ok"]}], "usage": {"input": -1, "output": 1e300}}]})


def _chat(text: str, model: str = MODEL) -> dict[str, Any]:
    return {
        "id": "c1",
        "object": "chat.completion",
        "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 3, "total_tokens": 6},
    }


class HostileServer(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, mode: str) -> None:
        if mode not in MODES:
            raise ValueError(f"mode {mode!r}: one of {', '.join(MODES)}")
        super().__init__(("127.0.0.1", 0), _Handler)
        self.mode = mode
        self.stopping = threading.Event()
        self.seen: list[str] = []
        self.count = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


@contextmanager
def hostile(mode: str) -> Iterator[HostileServer]:
    if mode == "gzip":
        gzip_bomb()  # made before the clock starts
    server = HostileServer(mode)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.stopping.set()
        server.shutdown()
        server.server_close()
        time.sleep(0.05)
