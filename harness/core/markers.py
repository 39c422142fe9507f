"""Report lines a process of ours writes among a child's own output, found in an output file in bounded pieces.

The sandbox runner and the import probe both mark their reports with a prefix at the start of a line, in output
that can be as large as the child likes: the file is read a chunk at a time, and only a line that may still be a
marked one (it starts with the marker so far, and is not over ``max_line``) is ever held.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import IO

__all__ = ["marked_lines"]


def marked_lines(stream: IO[bytes], marker: bytes, *, chunk: int = 1 << 20, max_line: int = 8 << 20) -> Iterator[bytes]:
    """The rest of every whole line of ``stream`` (from its start) that begins with ``marker``."""
    stream.seek(0)
    line: bytes | None = b""  # the current line, while it may still be a marked one
    while data := stream.read(chunk):
        pos = 0
        while True:
            nl = data.find(b"\n", pos)
            if line is not None:
                line += data[pos : len(data) if nl < 0 else nl]
                if len(line) > max_line or (len(line) >= len(marker) and not line.startswith(marker)):
                    line = None
            if nl < 0:
                break
            if line is not None and line.startswith(marker):
                yield line[len(marker) :]
            line, pos = b"", nl + 1
