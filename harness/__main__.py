"""``devai-harness`` and ``python -m harness``: the command line, started so that a Ctrl-C while it loads is
the same one line and exit 130 as a Ctrl-C while it runs (not a traceback)."""

from __future__ import annotations

import sys
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    try:
        from harness.cli import main as run
    except KeyboardInterrupt:
        print("interrupted (Ctrl-C) while starting", file=sys.stderr)
        return 130
    return run(argv)


if __name__ == "__main__":
    raise SystemExit(main())
