"""The devai-harness pytest plugin (registered by the ``pytest11`` entry point).

Markers, and the ``emulator`` fixture: a RunPod emulator on 127.0.0.1 for one test, configured by
``@pytest.mark.emulator(cold_start=0.1, faults={...})`` (keys of EmulatorConfig; a ``config=`` path
or mapping may come first, keyword arguments win)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from harness.emulator import Emulator

MARKERS = {
    "live": "talks to a real endpoint (RunPod or OpenAI-compatible); skipped without credentials",
    "load": "a load test (locust); run on its own with -m load",
    "slow": "takes more than a few seconds",
    "gpu": "needs an NVIDIA GPU",
    "emulator": "emulator(config=None, **overrides): configure the `emulator` fixture (EmulatorConfig keys)",
}


def pytest_configure(config: pytest.Config) -> None:
    for name, doc in MARKERS.items():
        config.addinivalue_line("markers", f"{name}: {doc}")


@pytest.fixture
def emulator(request: pytest.FixtureRequest) -> Iterator[Emulator]:
    """A running emulator (uvicorn on a background thread, a free loopback port), stopped after the test."""
    from harness.emulator import Emulator
    from harness.errors import ConfigError

    marker = request.node.get_closest_marker("emulator")
    args, kwargs = (marker.args, dict(marker.kwargs)) if marker else ((), {})
    if len(args) > 1:
        raise pytest.UsageError("@pytest.mark.emulator takes at most one positional argument (a config)")
    source = args[0] if args else kwargs.pop("config", None)
    try:
        emu = Emulator(source, **kwargs)
    except ConfigError as exc:
        raise pytest.UsageError(f"@pytest.mark.emulator: {exc}") from None
    with emu:
        yield emu
