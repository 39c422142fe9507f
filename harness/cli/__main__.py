"""``python -m harness.cli``: the same command line as ``python -m harness`` and ``devai-harness``."""

from __future__ import annotations

from harness.__main__ import main

if __name__ == "__main__":
    raise SystemExit(main())
