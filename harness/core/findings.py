"""Conformance verdicts: what an endpoint did wrong (or oddly), apart from harness errors.

A :class:`Finding` is an ``AssertionError`` so a check can ``raise`` it inside pytest and get a
failed test with a readable title, while the CLI and locust users collect it as data.
"""

from __future__ import annotations

import enum

__all__ = ["Finding", "Severity"]


class Severity(enum.IntEnum):
    """Ordered so that ``max()`` over findings gives the worst."""

    INFO = 10
    WARNING = 20
    ERROR = 30
    CRITICAL = 40


class Finding(AssertionError):
    """One verdict. ``code`` is a stable machine name (e.g. ``text-corrupted``)."""

    def __init__(self, code: str, title: str, message: str = "", severity: Severity = Severity.ERROR) -> None:
        super().__init__(f"[{severity.name.lower()}] {title}" + (f": {message}" if message else ""))
        self.code = code
        self.title = title
        self.message = message
        self.severity = severity

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Finding):
            return NotImplemented
        return (self.code, self.title, self.message, self.severity) == (
            other.code,
            other.title,
            other.message,
            other.severity,
        )

    def __hash__(self) -> int:
        return hash((self.code, self.title, self.message, self.severity))

    def __repr__(self) -> str:
        return f"Finding(code={self.code!r}, severity={self.severity.name}, title={self.title!r})"
