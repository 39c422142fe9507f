"""YAML text parsed with limits (no I/O): a size cap before parsing, and the size the document would have with every
alias expanded — a 430-byte "billion laughs" is a few nodes to the parser and billions to whatever walks it next —
checked before anyone walks it. Every problem is one ConfigError naming where the text came from."""

from __future__ import annotations

from typing import Any

import yaml

from harness.core.errors import ConfigError

__all__ = ["MAX_NODES", "MAX_YAML_BYTES", "parse_yaml", "parse_yaml_bytes"]

MAX_YAML_BYTES = 64 << 20  # the largest cassette we write is a few MB
MAX_NODES = 2_000_000  # values, aliases expanded


def parse_yaml(text: str, where: str, *, max_bytes: int = MAX_YAML_BYTES) -> Any:
    """``text`` (from ``where``: a file name, for the message) as Python values."""
    if len(text) > max_bytes:
        raise ConfigError(f"{where}: {len(text)} characters of YAML, over the {max_bytes >> 20} MiB limit")
    try:
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = f" (line {exc.problem_mark.line + 1})" if exc.problem_mark else ""
        raise ConfigError(f"{where}: invalid YAML{mark}: {exc.problem or exc}") from None
    except (yaml.YAMLError, RecursionError) as exc:
        raise ConfigError(f"{where}: invalid YAML: {type(exc).__name__}") from None
    _expanded_size(data, where, {}, set())
    return data


def parse_yaml_bytes(raw: bytes, where: str, *, max_bytes: int = MAX_YAML_BYTES) -> Any:
    """A file's bytes: a binary or non-UTF-8 file is one ConfigError naming it too."""
    if len(raw) > max_bytes:
        raise ConfigError(f"{where}: {len(raw)} bytes of YAML, over the {max_bytes >> 20} MiB limit")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{where} is not UTF-8 text (a binary or truncated file?)") from None
    return parse_yaml(text, where, max_bytes=max_bytes)


def _expanded_size(value: Any, where: str, memo: dict[int, int], open_: set[int]) -> int:
    if not isinstance(value, dict | list):
        return 1
    key = id(value)
    if key in memo:
        return memo[key]
    if key in open_:
        raise ConfigError(f"{where}: a YAML alias refers to itself (a recursive document)")
    open_.add(key)
    children = [*value.keys(), *value.values()] if isinstance(value, dict) else value
    size = 1
    for child in children:
        size += _expanded_size(child, where, memo, open_)
        if size > MAX_NODES:
            raise ConfigError(f"{where}: the YAML expands to over {MAX_NODES:,} values (an alias bomb?)")
    open_.discard(key)
    memo[key] = size
    return size
