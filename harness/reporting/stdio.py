"""The terminal is an output too: what the commands print passes the scrubber a line at a time, and a reader that
goes away (``| head``) ends the command quietly instead of with a BrokenPipeError traceback."""

from __future__ import annotations

import contextlib
import io
import os
import sys
from collections.abc import Iterator
from typing import TextIO

from harness.core.scrub import scrub

__all__ = ["ScrubbedStream", "scrubbed_stdio"]


class ScrubbedStream(io.TextIOBase):
    """A text stream that scrubs whole lines before passing them on (a secret is never split across writes)."""

    def __init__(self, inner: TextIO) -> None:
        self._inner = inner
        self._pending = ""

    def write(self, text: str) -> int:
        self._pending += text
        if "\n" in self._pending:
            done, _, self._pending = self._pending.rpartition("\n")
            self._inner.write(scrub(done + "\n"))
        if len(self._pending) > 1 << 16:  # a long line without an end: pass it on anyway
            self._inner.write(scrub(self._pending))
            self._pending = ""
        return len(text)

    def flush(self) -> None:
        if self._pending:
            self._inner.write(scrub(self._pending))
            self._pending = ""
        self._inner.flush()

    def isatty(self) -> bool:
        return self._inner.isatty()

    def fileno(self) -> int:
        return self._inner.fileno()

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return self._inner.encoding


@contextlib.contextmanager
def scrubbed_stdio() -> Iterator[None]:
    """stdout and stderr scrubbed for the block; a closed pipe on the way out is not an error."""
    old_out, old_err = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = ScrubbedStream(old_out), ScrubbedStream(old_err)
    try:
        yield
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except BrokenPipeError:
                _quiet_pipe()
            except (OSError, ValueError):
                pass
        sys.stdout, sys.stderr = old_out, old_err


def _quiet_pipe() -> None:
    """The reader left: point stdout at /dev/null so the interpreter's own final flush does not complain."""
    with contextlib.suppress(OSError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.__stdout__.fileno() if sys.__stdout__ else 1)
