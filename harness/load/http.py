"""Keep-alive HTTP/1.1 for the locust drivers, over geventhttpclient (the client under locust's FastHttpUser).

Why not httpx here: on this 2-core machine a small request costs ~0.46 ms of CPU with geventhttpclient and
~1.8 ms with httpx's sync client; under load that CPU turns into timing error, so an httpx load generator
ends up measuring itself (benchmarks/load_per_core.py has the numbers).

Streams are read a line at a time as the bytes arrive: geventhttpclient's ``read(n)`` (and so locust's
``iter_lines``) waits until n bytes have come, which dates small SSE chunks late.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from http.client import HTTPException
from typing import Any

from geventhttpclient import URL, HTTPClient

from harness.errors import ConfigError, ConnectError, ProtocolError, RequestTimeout, StatusError
from harness.transport import Redactor

__all__ = ["SyncHTTP"]


@contextlib.contextmanager
def _mapped(method: str, path: str, redact: Redactor) -> Iterator[None]:
    """geventhttpclient's and the socket layer's errors, as the harness's own (what map_httpx_errors does)."""
    try:
        yield
    except TimeoutError as exc:  # gevent's socket timeouts are socket.timeout, i.e. TimeoutError
        raise RequestTimeout(f"{method} {path}: {type(exc).__name__}", method=method, path=path) from None
    except (HTTPException, OSError) as exc:  # the response parser (HTTPConnectionClosed is one); refused, reset
        msg = f"{method} {path}: {type(exc).__name__}: {redact(str(exc))}"
        raise ConnectError(msg, method=method, path=path) from None


class SyncHTTP:
    """One keep-alive connection (one locust user) to ``base_url``, whose path prefixes every request path."""

    def __init__(self, base_url: str, headers: dict[str, str], *, timeout: float, redact: Redactor) -> None:
        url = URL(base_url)
        if url.scheme not in ("http", "https"):
            raise ConfigError(f"unsupported URL scheme: {redact(base_url)}")
        self._prefix = url.path.rstrip("/")
        self._headers = {"Content-Type": "application/json"} | headers
        self._redact = redact
        self._client = HTTPClient.from_url(
            url, concurrency=1, connection_timeout=min(timeout, 30.0), network_timeout=timeout
        )

    def close(self) -> None:
        self._client.close()

    def _status_error(self, method: str, path: str, status: int, text: str) -> StatusError:
        msg = f"{method} {path}: HTTP {status}: {self._redact(text[:200])}"
        return StatusError(msg, status_code=status, method=method, path=path)

    def call(self, method: str, path: str, body: Any = None) -> Any:
        """The reply's JSON; StatusError for HTTP >= 400."""
        data = b"" if body is None else json.dumps(body).encode()
        with _mapped(method, path, self._redact):
            resp = self._client.request(method, self._prefix + path, body=data, headers=self._headers)
            raw = resp.read()
        if resp.status_code >= 400:
            raise self._status_error(method, path, resp.status_code, raw.decode("utf-8", "replace"))
        try:
            return json.loads(raw)
        except ValueError:
            raise ProtocolError(f"{method} {path}: reply is not JSON") from None

    @contextlib.contextmanager
    def stream(self, method: str, path: str, body: Any) -> Iterator[Iterator[bytes]]:
        """Yields the reply's body line by line as it arrives; StatusError (body read) for HTTP >= 400.
        A silence longer than the timeout raises RequestTimeout from the iteration."""
        with _mapped(method, path, self._redact):
            resp = self._client.request(method, self._prefix + path, body=json.dumps(body), headers=self._headers)
        try:
            if resp.status_code >= 400:
                with _mapped(method, path, self._redact):
                    text = resp.read().decode("utf-8", "replace")
                raise self._status_error(method, path, resp.status_code, text)

            def lines() -> Iterator[bytes]:
                with _mapped(method, path, self._redact):
                    while line := resp.readline(b"\n"):
                        yield line

            yield lines()
        finally:
            resp.release()
