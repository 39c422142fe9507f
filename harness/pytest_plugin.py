"""The devai-harness pytest plugin (registered by the ``pytest11`` entry point).

For now it registers the markers; the option group, targets and fixtures grow with the suite."""

from __future__ import annotations

import pytest

MARKERS = {
    "live": "talks to a real endpoint (RunPod or OpenAI-compatible); skipped without credentials",
    "load": "a load test (locust); run on its own with -m load",
    "slow": "takes more than a few seconds",
    "gpu": "needs an NVIDIA GPU",
}


def pytest_configure(config: pytest.Config) -> None:
    for name, doc in MARKERS.items():
        config.addinivalue_line("markers", f"{name}: {doc}")
