"""Serving the emulator: in-process on a background thread (tests, the CLI's embedded target) or in
the foreground (``devai-harness emulate``). Always on loopback unless told otherwise."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import socket
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any

import uvicorn

from harness.emulator.app import create_app
from harness.emulator.config import EmulatorConfig, load_config
from harness.errors import ConfigError, HarnessError
from harness.runpod import RunPodClient

__all__ = ["Emulator"]


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
        self.host = host
        self._port = port
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._sock: socket.socket | None = None

    @property
    def port(self) -> int:
        return self._port

    @property
    def base_url(self) -> str:
        """What RunPodClient takes as base_url (RunPod's is https://api.runpod.ai/v2)."""
        return f"http://{self.host}:{self._port}/v2"

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

    def _uvicorn(self) -> uvicorn.Server:
        cfg = uvicorn.Config(
            create_app(self.config), log_level="warning", access_log=False, lifespan="on", timeout_graceful_shutdown=2
        )
        return uvicorn.Server(cfg)

    def _bind(self) -> socket.socket:
        # proto=IPPROTO_TCP matters: asyncio sets TCP_NODELAY only on sockets that say so, and without it
        # every keep-alive reply (headers, then body) waits ~40 ms for a delayed ACK.
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.host, self._port))
        except OSError as exc:
            sock.close()
            raise ConfigError(f"cannot listen on {self.host}:{self._port}: {exc.strerror}") from None
        sock.listen(2048)
        self._port = sock.getsockname()[1]
        return sock

    def start(self, timeout: float = 15.0) -> Emulator:
        self._sock = self._bind()
        self._server = self._uvicorn()
        server, sock = self._server, self._sock
        self._thread = threading.Thread(
            target=lambda: asyncio.run(server.serve(sockets=[sock])), name="devai-emulator", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise HarnessError("the emulator did not start (see the log above)")
            time.sleep(0.005)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(10)
        if self._sock is not None:
            self._sock.close()
        self._server = self._thread = self._sock = None

    def serve_forever(self, on_ready: Callable[[int], None] | None = None) -> None:
        """Foreground (the CLI): Ctrl-C stops it. ``on_ready(port)`` runs once the port is bound."""
        self._sock = self._bind()
        self._server = self._uvicorn()
        if on_ready is not None:
            on_ready(self._port)
        try:
            asyncio.run(self._server.serve(sockets=[self._sock]))
        finally:
            self._sock.close()

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()

    def state(self) -> dict[str, Any]:
        """Workers (state, cold start seconds, captured import tracebacks), events and health."""
        req = urllib.request.Request(
            f"{self.endpoint_url}/_emulator", headers={"Authorization": f"Bearer {self.api_key}"}
        )
        with urllib.request.urlopen(req, timeout=10) as resp:  # loopback only
            data: dict[str, Any] = json.loads(resp.read())
        return data


def _merge(base: EmulatorConfig, overrides: dict[str, Any]) -> EmulatorConfig:
    if not overrides:
        return base
    current = {f.name: getattr(base, f.name) for f in dataclasses.fields(base)}
    return load_config({**current, **overrides})
