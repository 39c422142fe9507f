"""The public API is small and explicit, and importing it has no side effects."""

from __future__ import annotations

import subprocess
import sys
import types

import harness
from harness.core import errors


def test_all_is_exactly_the_public_names() -> None:
    public = {  # dir(): the clients are loaded when first named (harness.__getattr__)
        n
        for n in dir(harness)
        if not n.startswith("_") and not isinstance(getattr(harness, n), types.ModuleType) and n != "annotations"
    }
    assert set(harness.__all__) - {"__version__"} == public


def test_every_error_is_exported_and_documented() -> None:
    for name in errors.__all__:
        assert name in harness.__all__
        assert name in (errors.__doc__ or ""), f"{name} missing from the tree in errors.__doc__"


def test_import_is_cheap_and_side_effect_free() -> None:
    code = (
        "import sys, os; before = dict(os.environ); import harness; "
        "bad = [m for m in ('locust', 'gevent', 'uvicorn', 'starlette', 'hypothesis') if m in sys.modules]; "
        "assert not bad, bad; assert dict(os.environ) == before"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
