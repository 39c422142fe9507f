"""Keep-alive HTTP/1.1 for the locust drivers, over geventhttpclient (the client under locust's FastHttpUser).

Why not httpx here: a small request costs ~0.46 ms of CPU with geventhttpclient and ~1.8 ms with httpx's
sync client (measured on a 2-core VM); under load that CPU turns into timing error, so an httpx load
generator ends up measuring itself (benchmarks/load_per_core.py has the numbers).

Bodies are read as the bytes arrive, by :class:`_Body` over the response's own buffer and socket:
geventhttpclient's ``read(n)`` (and so locust's ``iter_lines``) waits until n bytes have come, which dates small SSE
chunks late, and its ``readline`` has no length cap. Every byte passes :class:`~harness.core.limits.BodyDecoder`
(gzip and deflate inflated a piece at a time) under the caps of :class:`~harness.core.limits.ReadLimits`. Each read
has its own deadline (``gevent.Timeout``), so a stream's stall, TTFT and total budgets are the caller's, read by
read; and a reader that always finds bytes waiting still yields to the hub now and then, so locust can end a user
inside an endless stream.

Errors and retries are the async clients' (:mod:`harness.core.wire`, :class:`RetryPolicy`): 429 is
RateLimited after its bounded retries, honouring Retry-After; 5xx and connection errors are retried only
for idempotent calls; all attempts share the request's one total deadline. A redirect is reported, not followed.
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

from harness.core.errors import (
    ConfigError,
    ConnectError,
    ProtocolError,
    Redirected,
    ReplyTooLarge,
    RequestTimeout,
    StatusError,
)
from harness.core.limits import ACCEPT_ENCODING, DEFAULT_LIMITS, BodyDecoder, ReadLimits, parse_json
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


def _header(resp: Any, name: str) -> str | None:
    value = resp.get(name)
    return value if isinstance(value, str) else None


_YIELD_EVERY_S = 0.01  # a reader that never waits for the socket still lets other greenlets (and locust's stop) run
_BLOCK = 64 * 1024


class _Body:
    """A response's body, decoded and capped, read as it arrives: ``line()`` (b"" at the end) or ``whole()``."""

    def __init__(self, resp: Any, decoder: BodyDecoder, max_line: int) -> None:
        self._resp = resp
        self._decoder = decoder
        self._max_line = max_line
        self._buf = bytearray()
        self._ended = False
        self._yielded = time.monotonic()

    def line(self) -> bytes:
        while True:
            i = self._buf.find(b"\n")
            if i >= 0:
                line = bytes(self._buf[: i + 1])
                del self._buf[: i + 1]
                return line
            if len(self._buf) > self._max_line:
                raise ReplyTooLarge(
                    f"{self._decoder.where}: an SSE line is over the {self._max_line}-byte cap (read no further)",
                    limit=self._max_line,
                    what="line",
                )
            if self._ended:
                rest = bytes(self._buf)
                self._buf.clear()
                return rest
            self._more()

    def whole(self) -> bytes:
        while not self._ended:
            self._more()
        return bytes(self._buf)

    def _more(self) -> None:
        now = time.monotonic()
        if now - self._yielded > _YIELD_EVERY_S:
            self._yielded = now
            gevent.sleep(0)
        raw = self._raw()
        if raw:
            self._buf += self._decoder.feed(raw)
        else:
            self._buf += self._decoder.finish()
            self._ended = True

    def _raw(self) -> bytes:
        """What the response has parsed already, else one recv (b"": the body is over)."""
        resp = self._resp
        while True:
            body = resp._body_buffer  # geventhttpclient's parsed-body buffer (chunked framing already removed)
            if body:
                data = bytes(body)
                del body[:]
                return data
            sock = resp._sock
            if resp.message_complete or sock is None:
                return b""
            data = sock.recv(_BLOCK)
            resp.feed(data)
            if not data:
                return bytes(resp._body_buffer)  # the peer closed: whatever came is all there is


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
        limits: ReadLimits = DEFAULT_LIMITS,
    ) -> None:
        """``timeout``: each request's total (all its attempts); ``packet_clock``: time requests by the kernel's packet
        timestamps (plain http only)."""
        url = URL(base_url)
        if url.scheme not in ("http", "https"):
            raise ConfigError(f"unsupported URL scheme: {redact(base_url)}")
        self._base = base_url.rstrip("/")
        self._prefix = url.path.rstrip("/")
        self._headers = {"Content-Type": "application/json", "Accept-Encoding": ACCEPT_ENCODING} | headers
        self.limits = limits
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
        """The reply's JSON; StatusError for HTTP >= 400 (statuses in ``accept`` are returned as JSON too). Every
        attempt, and the backoff between them, within ``timeout`` (else the client's) in all."""
        data = b"" if body is None else json.dumps(body).encode()
        where = self.where(path)
        end = time.monotonic() + (timeout or self._timeout)
        attempt = 0
        while True:
            attempt += 1
            left = end - time.monotonic()
            try:
                if left <= 0:
                    raise RequestTimeout(
                        f"{method} {where}: no time left before the deadline", method=method, path=where
                    )
                with _mapped(method, where, self._redact), gevent.Timeout(left, TimeoutError):
                    resp = self._client.request(method, self._prefix + path, body=data, headers=self._headers)
                    self._refuse_redirect(method, where, resp)
                    raw = self._read(resp, method, where)
            except (ConnectError, RequestTimeout):
                wait = self.retry.backoff(attempt, rng=self._rng)
                retry = self.retry.retries(attempt, idempotent=idempotent, limit=max_attempts)
                if not retry or time.monotonic() + wait >= end:
                    raise
                self._sleep(wait)
                continue
            status = resp.status_code
            if status < 400 or status in accept:
                break
            wait = self.retry.backoff(attempt, parse_retry_after(_retry_after(resp)), rng=self._rng)
            retry = self.retry.retries(attempt, idempotent=idempotent, status=status, limit=max_attempts)
            if not retry or time.monotonic() + wait >= end:
                raise self._status_error(method, path, resp, raw, hint(status) if hint else "")
            self._sleep(wait)
        try:
            return parse_json(raw, f"{method} {where}")
        except ValueError:
            summary = summarize_body(raw.decode("utf-8", "replace"), self._redact)
            what = "an empty reply" if not raw else f"reply is not JSON: {summary!r}"
            raise ProtocolError(f"{method} {where}: {what}", method=method, path=where) from None

    def _body(self, resp: Any, cap: int, what: str, where: str) -> _Body:
        decoder = BodyDecoder(_header(resp, "content-encoding"), cap, what=what, where=where)
        return _Body(resp, decoder, self.limits.line_bytes)

    def _read(self, resp: Any, method: str, where: str) -> bytes:
        """The whole body under the reply cap; an error body is cut at its own (only its summary is shown)."""
        if resp.status_code < 400:
            return self._body(resp, self.limits.reply_bytes, "reply", f"{method} {where}").whole()
        reader = self._body(resp, self.limits.error_bytes, "error", f"{method} {where}")
        try:
            return reader.whole()
        except ReplyTooLarge:
            return bytes(reader._buf)

    def _refuse_redirect(self, method: str, where: str, resp: Any) -> None:
        status = resp.status_code
        if 300 <= status < 400 and status != 304:
            location = self._redact(_header(resp, "location") or "(no Location header)")
            raise Redirected(
                f"{method} {where}: HTTP {status} redirect to {location} (not followed: point the base URL at where "
                "the server really is)",
                status_code=status,
                location=location,
                method=method,
                path=where,
            )

    @contextlib.contextmanager
    def stream(self, method: str, path: str, body: Any, *, first_byte_s: float) -> Iterator[Callable[[float], bytes]]:
        """Yields ``read(seconds) -> bytes``: the next line of the body as it arrives, b"" at the end;
        RequestTimeout when none came within ``seconds``. The reply's headers must come within ``first_byte_s``.
        StatusError (body read) for HTTP >= 400."""
        where = self.where(path)
        with _mapped(method, where, self._redact), gevent.Timeout(max(first_byte_s, 1e-3), TimeoutError):
            resp = self._client.request(method, self._prefix + path, body=json.dumps(body), headers=self._headers)
        try:
            self._refuse_redirect(method, where, resp)
            if resp.status_code >= 400:
                with _mapped(method, where, self._redact), gevent.Timeout(max(first_byte_s, 1e-3), TimeoutError):
                    raw = self._read(resp, method, where)
                raise self._status_error(method, path, resp, raw, "")
            reader = self._body(resp, self.limits.stream_bytes, "stream", f"{method} {where}")

            def read(seconds: float) -> bytes:
                with _mapped(method, where, self._redact), gevent.Timeout(max(seconds, 1e-3), TimeoutError):
                    return reader.line()

            yield read
        finally:
            resp.release()
