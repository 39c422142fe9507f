"""The ``devai-harness`` command line."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any

from harness import __version__
from harness.errors import HarnessError, ShapeError, WorkerError
from harness.shapes import extract

__all__ = ["main"]


def _cmd_shapes(args: argparse.Namespace) -> int:
    """Recognise a saved job or output (a JSON file, or - for stdin) and print what was extracted."""
    raw = sys.stdin.read() if args.file == "-" else open(args.file, encoding="utf-8").read()  # noqa: SIM115
    try:
        value: Any = json.loads(raw)
    except ValueError as exc:
        print(f"not JSON: {exc}", file=sys.stderr)
        return 2
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
    print("text:\n" + got.text)
    return 0


def _cmd_check(args: argparse.Namespace) -> int:
    print(
        "devai-harness check: the embedded RunPod emulator it runs against is not built yet "
        "(issue: 'A faithful local RunPod Serverless emulator'); nothing was checked.",
        file=sys.stderr,
    )
    return 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="devai-harness", description=__doc__)
    parser.add_argument("--version", action="version", version=f"devai-harness {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("check", help="run the conformance probe (default target: the embedded emulator)")
    p.set_defaults(func=_cmd_check)
    p = sub.add_parser("shapes", help="recognise a saved job/output JSON and print the extracted text")
    p.add_argument("file", help="JSON file, or - for stdin")
    p.set_defaults(func=_cmd_shapes)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except HarnessError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
