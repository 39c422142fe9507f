"""What every command shares: argument types (one style of message for a bad value), the one-line error, the
progress printer, reading a file named on the command line."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

from harness.core.errors import ConfigError

__all__ = [
    "at_least_one",
    "count",
    "fail",
    "key_value",
    "non_negative",
    "port",
    "positive",
    "progress",
    "read_text",
]


def fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 2


def progress(enabled: bool) -> Callable[[str], None]:
    def show(message: str) -> None:
        if enabled:
            print(f"  .. {message}", file=sys.stderr, flush=True)

    return show


def read_text(name: str) -> str:
    try:
        raw = sys.stdin.buffer.read() if name == "-" else Path(name).read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read {name}: {exc.strerror}") from None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{name} is not UTF-8 text (a binary file?)") from None


def key_value(item: str) -> tuple[str, str]:
    key, sep, value = item.partition("=")
    if not sep or not key:
        raise ConfigError(f"--worker-env {item!r}: expected KEY=VALUE")
    return key, value


def _number(value: str, *, zero: bool) -> float:
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {value!r}") from None
    if not (number >= 0 if zero else number > 0) or number == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a {'non-negative' if zero else 'positive'} number, got {value}")
    return number


def positive(value: str) -> float:
    return _number(value, zero=False)


def non_negative(value: str) -> float:
    return _number(value, zero=True)


def port(value: str) -> int:
    try:
        port = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {value!r}") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"ports are 0..65535 (0 = any free one), got {port}")
    return port


def _integer(value: str, minimum: int) -> int:
    try:
        n = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {value!r}") from None
    if n < minimum:
        raise argparse.ArgumentTypeError(
            f"must not be negative, got {n}" if minimum == 0 else f"must be at least {minimum}, got {n}"
        )
    return n


def count(value: str) -> int:
    return _integer(value, 0)


def at_least_one(value: str) -> int:
    return _integer(value, 1)
