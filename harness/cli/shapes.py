"""``devai-harness shapes FILE``: recognise a saved reply and print what was extracted."""

from __future__ import annotations

import argparse
import json
from typing import Any

from harness.cli.args import read_text
from harness.core.errors import ConfigError, ShapeError, WorkerError
from harness.core.shapes import extract, looks_like_sse

__all__ = ["add"]


def _cmd_shapes(args: argparse.Namespace) -> int:
    """Recognise a saved reply — a job or its output (JSON), a /stream reply, a /v1/models list, or a raw SSE
    capture (``curl -N``) — and print what was extracted."""
    text = read_text(args.file)
    value: Any
    try:
        value = json.loads(text)
    except ValueError as exc:
        if not looks_like_sse(text):
            raise ConfigError(f"{args.file} is neither JSON nor an SSE stream ({exc})") from None
        value = [text]  # a raw SSE capture: the body as one piece
    if isinstance(value, dict) and isinstance(value.get("stream"), list) and "output" not in value:
        value = value["stream"]  # a saved /stream reply: its items are {"output": ...}
    try:
        got = extract(value)
    except WorkerError as exc:
        print(f"worker error: {exc}")
        return 1
    except ShapeError as exc:
        print(f"unknown shape: {exc}")
        return 1
    usage = f"{got.usage.input_tokens}/{got.usage.output_tokens} ({got.usage.convention})" if got.usage else "none"
    print(f"shape: {got.shape}\nchoices: {len(got.choices)}\nfinish_reason: {got.finish_reason}\nusage: {usage}")
    for finding in got.findings:
        print(f"finding: {finding}")
    if got.models:
        print("models:\n" + "\n".join(f"  {m}" for m in got.models))
    else:
        print("text:\n" + got.text)
    return 0


def add(sub: Any) -> None:
    p = sub.add_parser("shapes", help="recognise a saved reply (JSON, /stream reply, models, raw SSE) and print it")
    p.add_argument("file", help="a file, or - for stdin")
    p.set_defaults(func=_cmd_shapes)
