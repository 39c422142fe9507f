"""Serving on loopback: :class:`BackgroundServer` runs any ASGI app with uvicorn on a background thread
(tests, embedded targets) or in the foreground (CLI); :class:`Emulator` is the RunPod emulator served that
way. A client for it: ``RunPodClient.of(emulator)`` (the emulator never imports the clients).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import socket
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any

import uvicorn
from starlette.types import ASGIApp

from harness.core.errors import ConfigError, HarnessError
from harness.emulator.app import create_app
from harness.emulator.config import EmulatorConfig, load_config
from harness.emulator.pool import Endpoint
from harness.emulator.processes import launcher_for

__all__ = ["BackgroundServer", "Emulator", "fetch_state"]


class _Server(uvicorn.Server):
    """uvicorn, with a hook that runs on the server's loop as soon as shutdown begins (Ctrl-C or stop()): held
    long polls are answered then, instead of being cancelled after the graceful-shutdown timeout."""

    before_exit: Callable[[], None] | None = None

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self.before_exit is not None and not self.should_exit:
            self.before_exit()
        super().handle_exit(sig, frame)


class BackgroundServer:
    """``with BackgroundServer(app) as srv: srv.url`` — a free port on 127.0.0.1 unless told otherwise.
    ``before_exit`` runs on the server's loop when shutdown begins."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        before_exit: Callable[[], None] | None = None,
    ) -> None:
        self.app = app
        self.host = host
        self.port = port
        self.before_exit = before_exit
        self.sock: socket.socket | None = None
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def _prepare(self) -> _Server:
        # proto=IPPROTO_TCP matters: asyncio sets TCP_NODELAY only on sockets that say so, and without it
        # every keep-alive reply (headers, then body) waits ~40 ms for a delayed ACK.
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.host, self.port))
        except OSError as exc:
            sock.close()
            raise ConfigError(f"cannot listen on {self.host}:{self.port}: {exc.strerror}") from None
        sock.listen(2048)
        self.sock, self.port = sock, sock.getsockname()[1]
        config = uvicorn.Config(
            self.app, log_level="warning", access_log=False, lifespan="on", timeout_graceful_shutdown=2
        )
        self._server = _Server(config)
        self._server.before_exit = self.before_exit
        return self._server

    async def _serve(self, server: _Server, sock: socket.socket) -> None:
        self._loop = asyncio.get_running_loop()
        await server.serve(sockets=[sock])

    def start(self, timeout: float = 15.0) -> BackgroundServer:
        server = self._prepare()
        sock = self.sock
        assert sock is not None
        self._thread = threading.Thread(
            target=lambda: asyncio.run(self._serve(server, sock)), name="devai-server", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise HarnessError("the local server did not start (see the log above)")
            time.sleep(0.005)
        return self

    def stop(self) -> None:
        if self._server is not None:
            if self.before_exit is not None and self._loop is not None and not self._server.should_exit:
                with contextlib.suppress(RuntimeError):  # the loop may have ended already
                    self._loop.call_soon_threadsafe(self.before_exit)
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(30)
        if self.sock is not None:
            self.sock.close()
        self._server = self._thread = self.sock = None

    def serve_forever(self, on_ready: Callable[[int], None] | None = None) -> None:
        """Foreground: Ctrl-C stops it. ``on_ready(port)`` runs once the port is bound."""
        server = self._prepare()
        assert self.sock is not None
        if on_ready is not None:
            on_ready(self.port)
        try:
            asyncio.run(self._serve(server, self.sock))
        finally:
            self.sock.close()

    def __enter__(self) -> BackgroundServer:
        return self.start()

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()


class Emulator:
    """``with Emulator(cold_start=0.1) as emu: async with RunPodClient.of(emu) as rp: ...``

    ``config`` is an EmulatorConfig, a YAML path or a mapping; keyword overrides win."""

    def __init__(
        self,
        config: EmulatorConfig | str | Path | dict[str, Any] | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        echo: Callable[[str, str], None] | None = None,
        worker_logs: str | Path | None = None,
        **overrides: Any,
    ) -> None:
        """``echo(worker_id, line)`` and ``worker_logs`` (a folder) receive what real workers print."""
        base = config if isinstance(config, EmulatorConfig) else load_config(config)
        self.config = _merge(base, overrides).with_key()
        engine = self.config.worker.get("engine", "scripted")
        remote = self.config.remote_workers
        if self.config.handler == "builtin" and engine != "transformers" and not remote:  # fail here, not later
            # (a transformers engine is not built twice: loading a model is the workers' cold start)
            from harness.emulator.worker import make_handler

            make_handler(self.config.worker)
        self.host = host
        launcher = launcher_for(
            self.config,
            lambda: self.worker_base_url,
            echo=echo,
            log_dir=Path(worker_logs) if worker_logs is not None else None,
        )
        app = create_app(self.config, launcher=launcher)
        self._app = app
        self._server = BackgroundServer(app, host=host, port=port, before_exit=lambda: app.state.endpoint.closing())

    @property
    def port(self) -> int:
        return self._server.port

    @property
    def endpoint(self) -> Endpoint:
        """The emulated endpoint itself (its jobs and workers), for benchmarks and tests in this process; it exists
        while the emulator runs."""
        endpoint: Endpoint = self._app.state.endpoint
        return endpoint

    @property
    def base_url(self) -> str:
        """What RunPodClient takes as base_url (RunPod's is https://api.runpod.ai/v2)."""
        return f"{self._server.url}/v2"

    @property
    def worker_base_url(self) -> str:
        """Where workers on this machine reach it (a wildcard listen address is reached on loopback)."""
        host = "127.0.0.1" if self.host in ("0.0.0.0", "", "::") else self.host
        return f"http://{host}:{self.port}/v2"

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
