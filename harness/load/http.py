"""Keep-alive HTTP/1.1 for the locust drivers, over geventhttpclient (the client under locust's FastHttpUser).

Why not httpx here: a small request costs ~0.46 ms of CPU with geventhttpclient and ~1.8 ms with httpx's
sync client (measured on a 2-core VM); under load that CPU turns into timing error, so an httpx load
generator ends up measuring itself (benchmarks/load_per_core.py has the numbers).

Streams are read a line at a time as the bytes arrive: geventhttpclient's ``read(n)`` (and so locust's
``iter_lines``) waits until n bytes have come, which dates small SSE chunks late. Each read has its own
deadline (``gevent.Timeout``), so a stream's stall and TTFT budgets are the caller's, read by read.

Errors and retries are the async clients' (:mod:`harness.core.wire`, :class:`RetryPolicy`): 429 is
RateLimited after its bounded retries, honouring Retry-After; 5xx and connection errors are retried only
for idempotent calls.
"""

from __future__ import annotations

import contextlib
import json
import random
import time
from collections.abc import Callable, Iterator
from http.client import HTTPException
from typing import Any

import gevent
from geventhttpclient import URL, HTTPClient

from harness.core.errors import ConfigError, ConnectError, ProtocolError, RequestTimeout, StatusError
from harness.core.polling import RetryPolicy, parse_retry_after
from harness.core.wire import Redactor, status_error, summarize_body
from harness.load.packetclock import PacketClock, WireSocket

__all__ = ["SyncHTTP"]


@contextlib.contextmanager
def _mapped(method: str, where: str, redact: Redactor) -> Iterator[None]:
    """geventhttpclient's and the socket layer's errors, as the harness's own (what map_httpx_errors does)."""
    try:
        yield
    except TimeoutError as exc:  # gevent's socket timeouts are socket.timeout, i.e. TimeoutError
        raise RequestTimeout(f"{method} {where}: {type(exc).__name__}", method=method, path=where) from None
    except (HTTPException, OSError) as exc:  # the response parser (HTTPConnectionClosed is one); refused, reset
        msg = f"{method} {where}: {type(exc).__name__}: {redact(str(exc))}"
        raise ConnectError(msg, method=method, path=where) from None


def _retry_after(resp: Any) -> str | None:
    value = resp.get("retry-after")
    return value if isinstance(value, str) else None


class SyncHTTP:
    """One keep-alive connection (one locust user) to ``base_url``, whose path prefixes every request path."""

    def __init__(
        self,
        base_url: str,
        headers: dict[str, str],
        *,
        timeout: float,
        redact: Redactor,
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
        packet_clock: PacketClock | None = None,
    ) -> None:
        """``packet_clock``: time requests by the kernel's packet timestamps (plain http only)."""
        url = URL(base_url)
        if url.scheme not in ("http", "https"):
            raise ConfigError(f"unsupported URL scheme: {redact(base_url)}")
        self._base = base_url.rstrip("/")
        self._prefix = url.path.rstrip("/")
        self._headers = {"Content-Type": "application/json"} | headers
        self._redact = redact
        self._timeout = timeout
        self.retry = retry or RetryPolicy()
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._client = HTTPClient.from_url(
            url, concurrency=1, connection_timeout=min(timeout, 30.0), network_timeout=timeout
        )
        self._wire: WireSocket | None = None
        if packet_clock is not None and url.scheme == "http":
            self._stamp_sockets(packet_clock)

    def _stamp_sockets(self, clock: PacketClock) -> None:
        pool = self._client._connection_pool  # geventhttpclient's own factory hook, per client
        make = pool._create_tcp_socket

        def create(family: int, socktype: int, protocol: int) -> WireSocket:
            sock = WireSocket(make(family, socktype, protocol), clock)
            sock.on_send = self._used
            return sock

        pool._create_tcp_socket = create  # type: ignore[method-assign]

    def _used(self, sock: WireSocket) -> None:
        self._wire = sock

    def sent_at(self, fallback: float) -> float:
        """When the last request's first byte left (packet time), else ``fallback``."""
        return fallback if self._wire is None else self._wire.request_sent(fallback)

    def received_at(self, fallback: float) -> float:
        """When the last byte read so far arrived (packet time), else ``fallback``. The lookups of one exchange
        done, the connection's older packets are forgotten."""
        if self._wire is None:
            return fallback
        when = self._wire.last_received(fallback)
        self._wire.settle()
        return when

    def close(self) -> None:
        self._client.close()

    def where(self, path: str) -> str:
        return self._redact(self._base + path.split("?", 1)[0])

    def _status_error(self, method: str, path: str, resp: Any, raw: bytes, hint: str) -> StatusError:
        return status_error(
            method,
            self._base + path,
            resp.status_code,
            raw,
            retry_after=_retry_after(resp),
            hint=hint,
            attempts=self.retry.max_attempts,
            redact=self._redact,
        )

    def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        idempotent: bool = True,
        timeout: float | None = None,
        hint: Callable[[int], str] | None = None,
        max_attempts: int | None = None,
        accept: frozenset[int] = frozenset(),
    ) -> Any:
        """The reply's JSON; StatusError for HTTP >= 400 (statuses in ``accept`` are returned as JSON too)."""
        data = b"" if body is None else json.dumps(body).encode()
        where = self.where(path)
        attempt = 0
        while True:
            attempt += 1
            try:
                with _mapped(method, where, self._redact), gevent.Timeout(timeout or self._timeout, TimeoutError):
                    resp = self._client.request(method, self._prefix + path, body=data, headers=self._headers)
                    raw = resp.read()
            except (ConnectError, RequestTimeout):
                if not self.retry.retries(attempt, idempotent=idempotent, limit=max_attempts):
                    raise
                self._sleep(self.retry.backoff(attempt, rng=self._rng))
                continue
            status = resp.status_code
            if status < 400 or status in accept:
                break
            if not self.retry.retries(attempt, idempotent=idempotent, status=status, limit=max_attempts):
                raise self._status_error(method, path, resp, raw, hint(status) if hint else "")
            self._sleep(self.retry.backoff(attempt, parse_retry_after(_retry_after(resp)), rng=self._rng))
        try:
            return json.loads(raw)
        except ValueError:
            summary = summarize_body(raw.decode("utf-8", "replace"), self._redact)
            raise ProtocolError(
                f"{method} {where}: reply is not JSON: {summary!r}", method=method, path=where
            ) from None

    @contextlib.contextmanager
    def stream(self, method: str, path: str, body: Any) -> Iterator[Callable[[float], bytes]]:
        """Yields ``read(seconds) -> bytes``: the next line of the body as it arrives, b"" at the end;
        RequestTimeout when none came within ``seconds``. StatusError (body read) for HTTP >= 400."""
        where = self.where(path)
        with _mapped(method, where, self._redact):
            resp = self._client.request(method, self._prefix + path, body=json.dumps(body), headers=self._headers)
        try:
            if resp.status_code >= 400:
                with _mapped(method, where, self._redact):
                    raw = resp.read()
                raise self._status_error(method, path, resp, raw, "")

            def read(seconds: float) -> bytes:
                with _mapped(method, where, self._redact), gevent.Timeout(max(seconds, 1e-3), TimeoutError):
                    line: bytes = resp.readline(b"\n")
                    # At the end readline says b"" even when a last line without its newline is buffered.
                    return line or bytes(resp.read())

            yield read
        finally:
            resp.release()
