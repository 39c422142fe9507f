"""The devai-harness command line: one module per command, each parsing its arguments and calling the library.

Exit codes: 0 everything checked passed; 1 something failed or was NOT CHECKED; 2 bad input (one line on
stderr, nothing left behind); 130 interrupted (Ctrl-C).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from harness.cli import check, compare, emulate, preflight, record, report, shapes
from harness.cli.args import fail
from harness.core import __version__
from harness.core.errors import ConfigError, HarnessError, OutputError
from harness.core.scrub import register, secrets_in
from harness.reporting.stdio import scrubbed_stdio

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="devai-harness", description="Conformance and load tests for serverless LLM endpoints."
    )
    parser.add_argument("--version", action="version", version=f"devai-harness {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    check.add(sub)
    emulate.add(sub)
    preflight.add_worker_check(sub)
    preflight.add_train_check(sub)
    report.add(sub)
    compare.add(sub)
    record.add(sub)
    shapes.add(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    with scrubbed_stdio():
        return _main(argv)


def _main(argv: Sequence[str] | None) -> int:
    args = build_parser().parse_args(argv)
    # Whatever the endpoint echoes back of a key we hold is scrubbed from every line and file we write.
    register(*secrets_in(os.environ, [n for n in [getattr(args, "api_key_env", None)] if n]))
    try:
        return int(args.func(args))
    except ConfigError as exc:
        return fail(str(exc))
    except OutputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except HarnessError as exc:
        print(f"error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted (Ctrl-C)", file=sys.stderr)
        return 130
