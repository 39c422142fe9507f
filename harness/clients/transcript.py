"""Stream transcripts: record HTTP exchanges with every body chunk and its arrival time, replay them
through an httpx transport with the same chunk boundaries and (scaled) delays.

Why not vcrpy for streams: measured here with vcrpy 9.4 against a loopback SSE server sending 5 chunks
over 0.55 s, recording saw one chunk at 0.547 s and replay returned one chunk at once — chunk
boundaries and timing are lost (vcrpy #989 also hangs on never-ending streams). TTFT, stall and
keep-alive checks need both, so streaming cassettes use this format (YAML):

    meta: {made_by, recorded_at, harness_version, source, note}
    interactions:
      - request: {method, url, headers, body}
        response: {status, headers, chunks: [{t: seconds since the request, data: text}]}

Secrets are scrubbed on save (authorization, api-key and cookie headers; known secret values anywhere).
Replay serves interactions in recorded order for matching method+path; one request too many is an error.
"""

from __future__ import annotations

import asyncio
import datetime
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml

from harness.core import __version__
from harness.core.errors import ConfigError
from harness.core.wire import Redactor
from harness.core.yamltext import parse_yaml_bytes

__all__ = ["RecordingTransport", "ReplayTransport", "Transcript"]

_SECRET_HEADERS = frozenset({"authorization", "x-api-key", "api-key", "cookie", "set-cookie", "proxy-authorization"})


@dataclass(slots=True)
class Transcript:
    meta: dict[str, Any] = field(default_factory=dict)
    interactions: list[dict[str, Any]] = field(default_factory=list)

    def save(self, path: str | Path, *, secrets: tuple[str | None, ...] = ()) -> None:
        redact = Redactor(*secrets)
        clean = []
        for it in self.interactions:
            req, resp = dict(it["request"]), dict(it["response"])
            req["url"] = redact(req["url"])
            req["headers"] = _scrub(req["headers"], redact)
            req["body"] = redact(req["body"])
            resp["headers"] = _scrub(resp["headers"], redact)
            resp["chunks"] = [{"t": c["t"], "data": redact(c["data"])} for c in resp["chunks"]]
            clean.append({"request": req, "response": resp})
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        text = yaml.safe_dump(
            {"meta": self.meta, "interactions": clean}, sort_keys=False, allow_unicode=True, width=1000
        )
        Path(path).write_text(text, encoding="utf-8")

    @classmethod
    def load(cls, path: str | Path) -> Transcript:
        try:
            raw = Path(path).read_bytes()
        except OSError as exc:
            raise ConfigError(f"cannot read transcript {path}: {exc.strerror}") from None
        data = parse_yaml_bytes(raw, f"transcript {path}")
        if not isinstance(data, dict) or not isinstance(data.get("interactions"), list):
            raise ConfigError(f"{path}: not a transcript (no 'interactions' list)")
        return cls(meta=dict(data.get("meta") or {}), interactions=list(data["interactions"]))


def _scrub(headers: dict[str, str], redact: Redactor) -> dict[str, str]:
    return {k: ("REDACTED" if k.lower() in _SECRET_HEADERS else redact(v)) for k, v in headers.items()}


class _RecordingStream(httpx.AsyncByteStream):
    def __init__(self, inner: httpx.AsyncByteStream, t0: float, chunks: list[dict[str, Any]]) -> None:
        self._inner, self._t0, self._chunks = inner, t0, chunks

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for data in self._inner:
            self._chunks.append({"t": round(time.perf_counter() - self._t0, 6), "data": data.decode(errors="replace")})
            yield data

    async def aclose(self) -> None:
        await self._inner.aclose()


class RecordingTransport(httpx.AsyncBaseTransport):
    """Wraps a real transport; every exchange goes into ``transcript`` as its chunks arrive."""

    def __init__(self, inner: httpx.AsyncBaseTransport | None = None, *, source: str = "", note: str = "") -> None:
        self._inner = inner or httpx.AsyncHTTPTransport()
        self.transcript = Transcript(
            meta={
                "made_by": "devai-harness RecordingTransport",
                "recorded_at": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
                "harness_version": __version__,
                "source": source,
                "note": note,
            }
        )

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        request.headers["accept-encoding"] = "identity"  # chunks are kept as text: no compression
        t0 = time.perf_counter()
        body = request.content.decode(errors="replace") if request.content else ""
        response = await self._inner.handle_async_request(request)
        chunks: list[dict[str, Any]] = []
        self.transcript.interactions.append(
            {
                "request": {
                    "method": request.method,
                    "url": str(request.url),
                    "headers": dict(request.headers),
                    "body": body,
                },
                "response": {"status": response.status_code, "headers": dict(response.headers), "chunks": chunks},
            }
        )
        assert isinstance(response.stream, httpx.AsyncByteStream)
        return httpx.Response(
            response.status_code,
            headers=response.headers,
            stream=_RecordingStream(response.stream, t0, chunks),
            request=request,
        )

    async def aclose(self) -> None:
        await self._inner.aclose()


class _ReplayStream(httpx.AsyncByteStream):
    def __init__(self, chunks: list[dict[str, Any]], speed: float) -> None:
        self._chunks, self._speed = chunks, speed

    async def __aiter__(self) -> AsyncIterator[bytes]:
        t0 = time.perf_counter()
        for c in self._chunks:
            if self._speed > 0:
                delay = float(c["t"]) / self._speed - (time.perf_counter() - t0)
                if delay > 0:
                    await asyncio.sleep(delay)
            yield str(c["data"]).encode()


class ReplayTransport(httpx.AsyncBaseTransport):
    """Serves a transcript. ``speed`` 1 = recorded timing, 2 = twice as fast, 0 = no delays at all."""

    def __init__(self, transcript: Transcript | str | Path, *, speed: float = 1.0) -> None:
        self.transcript = transcript if isinstance(transcript, Transcript) else Transcript.load(transcript)
        self.speed = speed
        self._used = [False] * len(self.transcript.interactions)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        for i, it in enumerate(self.transcript.interactions):
            rec = it["request"]
            if self._used[i] or rec["method"] != request.method or httpx.URL(rec["url"]).path != request.url.path:
                continue
            self._used[i] = True
            resp = it["response"]
            headers = {
                k: v for k, v in resp["headers"].items() if k.lower() not in ("content-length", "content-encoding")
            }
            return httpx.Response(
                int(resp["status"]), headers=headers, stream=_ReplayStream(resp["chunks"], self.speed), request=request
            )
        raise ConfigError(f"transcript has no unplayed interaction for {request.method} {request.url.path}")

    @property
    def all_played(self) -> bool:
        return all(self._used)
