"""Removing a folder model-written code may have filled: deep trees, read-only folders, odd names.

``shutil.rmtree`` recurses once per level (a RecursionError past about a thousand on Python 3.11) and stops at the
first folder it may not enter; the fallback makes everything writable and lets ``rm -rf`` (no recursion limit)
finish. What still cannot go is said, with where, so the caller's row can say it — never an exception.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

__all__ = ["remove"]


def remove(root: Path) -> str | None:
    """None once ``root`` is gone, else what was left where."""
    try:
        shutil.rmtree(root)
        return None
    except (OSError, RecursionError):
        pass
    for cmd in (["chmod", "-R", "u+rwX", str(root)], ["rm", "-rf", "--one-file-system", str(root)]):
        try:
            subprocess.run(cmd, capture_output=True, timeout=120, check=False)
        except (OSError, subprocess.TimeoutExpired):
            break
    if not root.exists():
        return None
    count = sum(1 for _ in _walk(root, 100_000))
    return f"{count}{'+' if count >= 100_000 else ''} entries left in {root}"


def _walk(root: Path, most: int) -> list[Path]:
    found: list[Path] = []
    try:
        for path in root.rglob("*"):
            found.append(path)
            if len(found) >= most:
                break
    except (OSError, RecursionError):
        pass
    return found or [root]
