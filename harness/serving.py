"""Serving an ASGI app with uvicorn on loopback: on a background thread (tests, embedded targets) or
in the foreground (CLI). Used by the emulator and by local test servers."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Callable
from types import TracebackType

import uvicorn
from starlette.types import ASGIApp

from harness.errors import ConfigError, HarnessError

__all__ = ["BackgroundServer"]


class BackgroundServer:
    """``with BackgroundServer(app) as srv: srv.url`` — a free port on 127.0.0.1 unless told otherwise."""

    def __init__(self, app: ASGIApp, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.app = app
        self.host = host
        self.port = port
        self.sock: socket.socket | None = None
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def _prepare(self) -> uvicorn.Server:
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
        self._server = uvicorn.Server(config)
        return self._server

    def start(self, timeout: float = 15.0) -> BackgroundServer:
        server = self._prepare()
        sock = self.sock
        assert sock is not None
        self._thread = threading.Thread(
            target=lambda: asyncio.run(server.serve(sockets=[sock])), name="devai-server", daemon=True
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
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(10)
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
            asyncio.run(server.serve(sockets=[self.sock]))
        finally:
            self.sock.close()

    def __enter__(self) -> BackgroundServer:
        return self.start()

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()
