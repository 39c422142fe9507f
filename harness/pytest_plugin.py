"""The devai-harness pytest plugin (registered by the ``pytest11`` entry point).

Options (group "devai-harness"; precedence: default < environment < command line), markers, and fixtures:

* ``emulator``: a RunPod emulator on 127.0.0.1 for one test, configured by
  ``@pytest.mark.emulator(cold_start=0.1, faults={...})`` (EmulatorConfig keys; a config path may come first);
* ``mock_openai``: the loopback OpenAI-compatible mock (harness.mockopenai), ``@pytest.mark.mock_openai(**MockConfig)``;
* ``openai_target``: a real OpenAI-compatible server from ``--openai-base-url`` / OPENAI_BASE_URL; tests that
  use it are skipped, with the reason, when none is given.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from harness.emulator import Emulator
    from harness.serving import BackgroundServer

MARKERS = {
    "live": "talks to a real endpoint (RunPod or OpenAI-compatible); skipped without credentials",
    "load": "a load test (locust); run on its own with -m load",
    "slow": "takes more than a few seconds",
    "gpu": "needs an NVIDIA GPU",
    "emulator": "emulator(config=None, **overrides): configure the `emulator` fixture (EmulatorConfig keys)",
    "mock_openai": "mock_openai(**config): configure the `mock_openai` fixture (MockConfig keys)",
}


@dataclass(frozen=True, slots=True)
class OpenAITarget:
    base_url: str
    api_key: str | None
    model: str

    def __repr__(self) -> str:
        return f"OpenAITarget(base_url={self.base_url!r}, model={self.model!r}, api_key=<redacted>)"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("devai-harness", "devai-harness: endpoint conformance")
    group.addoption(
        "--openai-base-url",
        default=None,
        help="OpenAI-compatible base URL for live streaming checks (env OPENAI_BASE_URL)",
    )
    group.addoption("--model", default=None, help="model to request (env OPENAI_MODEL; default: the first listed)")
    group.addoption("--ttft-budget", type=float, default=10.0, help="seconds to the first content (default 10)")
    group.addoption(
        "--keepalive-max-gap",
        type=float,
        default=15.0,
        help="most seconds of silence allowed before the first content (default 15)",
    )
    group.addoption("--stall-timeout", type=float, default=30.0, help="seconds without a byte = stalled (default 30)")


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


@pytest.fixture
def mock_openai(request: pytest.FixtureRequest) -> Iterator[BackgroundServer]:
    """The mock OpenAI-compatible server on a free loopback port; ``.url``; ``.app.state.sent`` logs chunks."""
    from harness.mockopenai import MockConfig, create_mock_openai
    from harness.serving import BackgroundServer

    marker = request.node.get_closest_marker("mock_openai")
    try:
        config = MockConfig(**(marker.kwargs if marker else {}))
    except TypeError as exc:
        raise pytest.UsageError(f"@pytest.mark.mock_openai: {exc}") from None
    with BackgroundServer(create_mock_openai(config)) as server:
        yield server


@pytest.fixture
def openai_target(request: pytest.FixtureRequest) -> OpenAITarget:
    """A live OpenAI-compatible server; skips (saying why) when none is configured."""
    base = request.config.getoption("--openai-base-url") or os.environ.get("OPENAI_BASE_URL")
    if not base:
        pytest.skip("no OpenAI-compatible server: pass --openai-base-url or set OPENAI_BASE_URL")
    model = request.config.getoption("--model") or os.environ.get("OPENAI_MODEL") or ""
    return OpenAITarget(base_url=base.rstrip("/"), api_key=os.environ.get("OPENAI_API_KEY"), model=model)
