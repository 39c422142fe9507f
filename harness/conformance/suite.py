"""Where the conformance suite is (the scenarios/ folder of pytest modules), and which of its modules a target
kind runs."""

from __future__ import annotations

from pathlib import Path

__all__ = ["SUITE_MODULES", "find_suite"]

SUITE_MODULES = {
    "emulator": ("test_devai_tasks.py", "test_protocol.py", "test_faults.py"),
    "replay": ("test_devai_tasks.py", "test_protocol.py", "test_faults.py"),
    "runpod": ("test_devai_tasks.py", "test_protocol.py", "test_faults.py"),
    "runpod-local": ("test_devai_tasks.py", "test_protocol.py"),
    "openai": ("test_devai_tasks.py", "test_streaming.py", "test_semantics.py"),
}


def find_suite(given: str | Path | None = None) -> Path | None:
    """``--suite DIR``, else ./scenarios, else the scenarios/ beside this package (a source checkout)."""
    candidates = [Path(given)] if given else [Path("scenarios"), Path(__file__).resolve().parents[2] / "scenarios"]
    return next((c.resolve() for c in candidates if (c / "test_devai_tasks.py").is_file()), None)
