"""Incremental Server-Sent Events parser.

Why our own and not httpx-sse: httpx-sse drops comment lines (we need ``: keep-alive`` as
evidence that a server is alive while a model loads), its line buffer grows without bound (one
huge line without a newline must be an error, not an OOM), and we also parse SSE text that was
carried inside RunPod job outputs, cut at arbitrary places, not only HTTP responses.

Follows the WHATWG event-stream rules: lines end in CRLF, LF or CR (a CR at the end of a chunk
waits for the next chunk, which may start with LF); ``field: value`` strips one leading space;
multi-line ``data`` joins with ``\\n``; an empty line dispatches; an event with no data lines is
not dispatched; comments start with ``:``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from harness.core.errors import StreamProtocolError

__all__ = ["DEFAULT_MAX_LINE", "SSEComment", "SSEEvent", "SSEParser", "parse_sse"]

_EOL = re.compile(r"\r\n|\r|\n")
DEFAULT_MAX_LINE = 1 << 20  # RunPod caps a stream chunk at 1 MB; a longer line is garbage.


@dataclass(frozen=True, slots=True)
class SSEEvent:
    data: str
    event: str = "message"
    id: str | None = None
    retry: int | None = None

    @property
    def is_done(self) -> bool:
        """OpenAI's end-of-stream sentinel."""
        return self.data.strip() == "[DONE]"


@dataclass(frozen=True, slots=True)
class SSEComment:
    text: str


class SSEParser:
    """Feed text chunks, get events and comments back as soon as they are complete."""

    def __init__(self, *, max_line: int = DEFAULT_MAX_LINE) -> None:
        self._max_line = max_line
        self._pending: list[str] = []  # pieces of the current, unterminated line
        self._pending_len = 0
        self._cr = False  # last chunk ended in CR: a following LF belongs to it
        self._data: list[str] = []
        self._event = ""
        self._id: str | None = None
        self._last_id: str | None = None
        self._retry: int | None = None
        self.truncated = False  # set by finish(): data was pending without its blank line

    def feed(self, chunk: str) -> list[SSEEvent | SSEComment]:
        out: list[SSEEvent | SSEComment] = []
        start = 0
        if self._cr and chunk.startswith("\n"):
            start = 1
        self._cr = False
        n = len(chunk)
        while start < n:
            m = _EOL.search(chunk, start)  # C-speed search for the next line break, not a per-character loop
            if m is None:
                break
            self._append(chunk[start : m.start()])
            self._line(out)
            if m.group() == "\r" and m.end() == n:
                self._cr = True  # a CR ending this chunk may be the first half of a CRLF
            start = m.end()
        if start < n:
            self._append(chunk[start:n])
        return out

    def finish(self) -> list[SSEEvent | SSEComment]:
        """End of input. A last event without its blank line is still dispatched (lenient);
        ``truncated`` tells callers that care."""
        out: list[SSEEvent | SSEComment] = []
        if self._pending:
            self._line(out)
        self.truncated = bool(self._data)
        self._dispatch(out)
        return out

    def _append(self, piece: str) -> None:
        if not piece:
            return
        self._pending_len += len(piece)
        if self._pending_len > self._max_line:
            raise StreamProtocolError(f"SSE line longer than {self._max_line} characters without a line break")
        self._pending.append(piece)

    def _line(self, out: list[SSEEvent | SSEComment]) -> None:
        line = "".join(self._pending)
        self._pending.clear()
        self._pending_len = 0
        if not line:
            self._dispatch(out)
            return
        if line.startswith(":"):
            out.append(SSEComment(line[1:].removeprefix(" ")))
            return
        name, sep, value = line.partition(":")
        if sep:
            value = value.removeprefix(" ")
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        elif name == "id":
            if "\0" not in value:
                self._id = value
        elif name == "retry" and value.isdigit():
            self._retry = int(value)
        # Unknown fields are ignored, as the spec says.

    def _dispatch(self, out: list[SSEEvent | SSEComment]) -> None:
        if self._id is not None:
            self._last_id = self._id
        if self._data:
            out.append(
                SSEEvent(
                    data="\n".join(self._data),
                    event=self._event or "message",
                    id=self._last_id,
                    retry=self._retry,
                )
            )
        self._data = []
        self._event = ""
        self._id = None
        self._retry = None


def parse_sse(chunks: Iterable[str], *, max_line: int = DEFAULT_MAX_LINE) -> list[SSEEvent | SSEComment]:
    """Parse a whole stream given as chunks cut anywhere."""
    parser = SSEParser(max_line=max_line)
    out: list[SSEEvent | SSEComment] = []
    for chunk in chunks:
        out.extend(parser.feed(chunk))
    out.extend(parser.finish())
    return out
