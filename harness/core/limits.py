"""What the harness will read from an endpoint, and how long it will wait (no I/O).

Nothing an endpoint sends is trusted: a whole reply, one SSE line and one stream each have a byte cap, applied to
the DECODED bytes as they arrive — a compressed body is inflated a piece at a time (zlib's ``max_length``), so a
3 MB gzip bomb costs at most a cap's worth of memory, never its 3 GB. Going over is :class:`ReplyTooLarge`, naming
the cap: a finding against the endpoint, not an out-of-memory of ours. JSON is parsed with its nesting bounded
(:func:`parse_json`).

Every request also has a total deadline (connect, first byte and the whole body, retries included), which the
drivers hold: keep-alive bytes never extend it.
"""

from __future__ import annotations

import json
import zlib
from dataclasses import dataclass
from typing import Any

from harness.core.errors import ProtocolError, ReplyTooLarge

__all__ = ["ACCEPT_ENCODING", "DEFAULT_LIMITS", "BodyDecoder", "ReadLimits", "parse_json"]

MiB = 1 << 20
ACCEPT_ENCODING = "gzip, deflate"  # what BodyDecoder inflates (br and zstd are not asked for, and refused)


@dataclass(frozen=True, slots=True)
class ReadLimits:
    """Byte caps on what one request may bring back (decoded). RunPod refuses job results over ~20 MB and splits
    stream chunks at 1 MB; an LLM's answer is kilobytes. Raise them for an endpoint that needs more."""

    reply_bytes: int = 16 * MiB  # a whole (non-streamed) reply: a job, a completion, a model list
    line_bytes: int = 1 * MiB  # one SSE line
    stream_bytes: int = 16 * MiB  # one stream, all of it (parsed, its chunks stay in memory until it ends)
    error_bytes: int = 64 * 1024  # the body of an HTTP error reply: only its summary is ever used


DEFAULT_LIMITS = ReadLimits()


def _too_large(what: str, limit: int, where: str) -> ReplyTooLarge:
    label = {"reply": "the reply", "stream": "the stream", "line": "an SSE line", "error": "the error body"}[what]
    return ReplyTooLarge(f"{where}: {label} is over the {_size(limit)} cap (read no further)", limit=limit, what=what)


def _size(n: int) -> str:
    return f"{n // MiB} MiB" if n >= MiB and n % MiB == 0 else f"{n // 1024} KiB" if n % 1024 == 0 else f"{n} bytes"


class BodyDecoder:
    """``feed(raw) -> bytes`` decoded, ``finish() -> bytes``; ReplyTooLarge once more than ``limit`` decoded bytes
    came (``what`` names the cap). ``encoding`` is the reply's Content-Encoding (identity, gzip, deflate)."""

    def __init__(self, encoding: str | None, limit: int, *, what: str = "reply", where: str = "") -> None:
        self.limit = limit
        self.what = what
        self.where = where
        self.total = 0
        codings = [c.strip().lower() for c in (encoding or "").split(",") if c.strip()]
        codings = [c for c in codings if c != "identity"]
        if len(codings) > 1 or (codings and codings[0] not in ("gzip", "x-gzip", "deflate")):
            raise ProtocolError(f"{where}: Content-Encoding {encoding!r} was not asked for (we accept gzip, deflate)")
        self._inflate: Any = None
        self._deflate_raw = False
        if codings:
            # gzip: a gzip header; deflate: a zlib stream, though some servers send raw deflate (tried on failure).
            wbits = zlib.MAX_WBITS | 16 if codings[0] in ("gzip", "x-gzip") else zlib.MAX_WBITS
            self._inflate = zlib.decompressobj(wbits)
            self._deflate_raw = codings[0] == "deflate"

    def feed(self, raw: bytes) -> bytes:
        if self._inflate is None:
            return self._count(raw)
        out = bytearray()
        data = raw
        while data:
            room = self.limit - self.total - len(out) + 1  # one byte past the cap is enough to know
            try:
                piece = self._inflate.decompress(data, max(room, 1))
            except zlib.error:
                if not (self._deflate_raw and self.total == 0 and not out):
                    raise ProtocolError(f"{self.where}: the compressed body is corrupt") from None
                self._inflate, self._deflate_raw = zlib.decompressobj(-zlib.MAX_WBITS), False
                continue
            out += piece
            if self.total + len(out) > self.limit:
                raise _too_large(self.what, self.limit, self.where)
            data = self._inflate.unconsumed_tail
        return self._count(bytes(out))

    def finish(self) -> bytes:
        if self._inflate is None:
            return b""
        try:
            return self._count(self._inflate.flush())
        except zlib.error:
            raise ProtocolError(f"{self.where}: the compressed body is corrupt") from None

    def _count(self, data: bytes) -> bytes:
        self.total += len(data)
        if self.total > self.limit:
            raise _too_large(self.what, self.limit, self.where)
        return data


def parse_json(data: bytes | str, where: str = "") -> Any:
    """JSON from an endpoint: ValueError for text that is not JSON, ProtocolError for JSON nested past Python's
    recursion limit (a 'deep' body is a finding, not a crash)."""
    try:
        return json.loads(data)
    except RecursionError:
        raise ProtocolError(f"{where}: the JSON is nested too deeply to read".lstrip(": ")) from None
