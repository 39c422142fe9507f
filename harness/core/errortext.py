"""How a request's failure is told in a row or a record: one bounded line naming its type, and whether it was the
endpoint not answering in time (after which asking it more would only wait out more deadlines)."""

from __future__ import annotations

from harness.core.errors import DiagnosedTimeout, RequestTimeout, StreamStalled

__all__ = ["one_line", "timed_out"]


def timed_out(exc: BaseException) -> bool:
    """The endpoint did not answer in time."""
    return isinstance(exc, (RequestTimeout, StreamStalled, DiagnosedTimeout))


def one_line(exc: BaseException, limit: int = 400) -> str:
    """``Type: the first line of its message``, at most ``limit`` characters."""
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text}"[:limit]
