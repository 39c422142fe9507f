"""Serving the emulator: in-process on a background thread (tests, the CLI's embedded target) or in
the foreground (``devai-harness emulate``). Always on loopback unless told otherwise."""

from __future__ import annotations

import dataclasses
import json
import urllib.request
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any

from harness.emulator.app import create_app
from harness.emulator.config import EmulatorConfig, load_config
from harness.runpod import RunPodClient
from harness.serving import BackgroundServer

__all__ = ["Emulator", "fetch_state"]


class Emulator:
    """``with Emulator(cold_start=0.1) as emu: async with emu.client() as rp: ...``

    ``config`` is an EmulatorConfig, a YAML path or a mapping; keyword overrides win."""

    def __init__(
        self,
        config: EmulatorConfig | str | Path | dict[str, Any] | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        **overrides: Any,
    ) -> None:
        base = config if isinstance(config, EmulatorConfig) else load_config(config)
        self.config = _merge(base, overrides).with_key()
        engine = self.config.worker.get("engine", "scripted")
        if self.config.handler == "builtin" and engine != "transformers":  # fail here, not as a crash loop later
            # (a transformers engine is not built twice: loading a model is the workers' cold start)
            from harness.worker import make_handler

            make_handler(self.config.worker)
        self.host = host
        self._server = BackgroundServer(create_app(self.config), host=host, port=port)

    @property
    def port(self) -> int:
        return self._server.port

    @property
    def base_url(self) -> str:
        """What RunPodClient takes as base_url (RunPod's is https://api.runpod.ai/v2)."""
        return f"{self._server.url}/v2"

    @property
    def endpoint_url(self) -> str:
        return f"{self.base_url}/{self.config.endpoint_id}"

    @property
    def endpoint_id(self) -> str:
        return self.config.endpoint_id

    @property
    def api_key(self) -> str:
        return self.config.api_key

    def __repr__(self) -> str:
        return f"Emulator(url={self.endpoint_url!r}, api_key=<redacted>)"

    def client(self, **kwargs: Any) -> RunPodClient:
        return RunPodClient(self.endpoint_id, self.api_key, base_url=self.base_url, **kwargs)

    def start(self, timeout: float = 15.0) -> Emulator:
        self._server.start(timeout)
        return self

    def stop(self) -> None:
        self._server.stop()

    def serve_forever(self, on_ready: Callable[[int], None] | None = None) -> None:
        """Foreground (the CLI): Ctrl-C stops it. ``on_ready(port)`` runs once the port is bound."""
        self._server.serve_forever(on_ready)

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()

    def state(self) -> dict[str, Any]:
        """Workers (state, cold start seconds, captured import tracebacks), events and health."""
        return fetch_state(self.endpoint_url, self.api_key)


def _merge(base: EmulatorConfig, overrides: dict[str, Any]) -> EmulatorConfig:
    if not overrides:
        return base
    current = {f.name: getattr(base, f.name) for f in dataclasses.fields(base)}
    return load_config({**current, **overrides})


def fetch_state(endpoint_url: str, api_key: str) -> dict[str, Any]:
    """GET .../_emulator of an emulator in this process or another one (worker-check runs it in a subprocess)."""
    req = urllib.request.Request(f"{endpoint_url}/_emulator", headers={"Authorization": f"Bearer {api_key}"})
    with urllib.request.urlopen(req, timeout=10) as resp:  # loopback only
        data: dict[str, Any] = json.loads(resp.read())
    return data
