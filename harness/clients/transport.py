"""HTTP plumbing of the async clients: the one place that maps httpx exceptions to ours, bounded retries, and the
reads and waits an endpoint cannot stretch. What a status code means is decided in :mod:`harness.core.wire`
(shared with the sync driver).

Every logical request has one total deadline — connect, first byte, the whole body, and every retry with its
backoff — on the real monotonic clock (a server dripping a byte every few seconds cannot outlast it, and retries
do not multiply it). An enclosing :func:`deadline` scope (a job's whole wait, a check stage) shortens it further.
Bodies are read as they arrive, decoded by :class:`~harness.core.limits.BodyDecoder` under the caps of
:class:`~harness.core.limits.ReadLimits`; a redirect is reported (:class:`Redirected`, with where to), never
followed.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import random
import time
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self

import httpx

from harness.core.clock import Clock
from harness.core.errors import (
    ConfigError,
    ConnectError,
    ProtocolError,
    Redirected,
    RequestTimeout,
    StatusError,
    TransportError,
)
from harness.core.limits import ACCEPT_ENCODING, DEFAULT_LIMITS, BodyDecoder, ReadLimits, parse_json
from harness.core.polling import RetryPolicy, parse_retry_after
from harness.core.wire import Redactor, status_error, summarize_body

__all__ = ["ClientLifecycle", "HTTPCore", "Reply", "deadline", "map_httpx_errors", "remaining"]

log = logging.getLogger("harness.http")
_DEADLINE: contextvars.ContextVar[float | None] = contextvars.ContextVar("harness_deadline", default=None)


@contextlib.contextmanager
def deadline(seconds: float | None, *, fresh: bool = False) -> Iterator[None]:
    """Every request inside ends within ``seconds`` from now (or the enclosing scope's end, if sooner); ``fresh``
    ignores the enclosing scope (the cancel a job's own timeout sends). None: no scope of its own."""
    outer = None if fresh else _DEADLINE.get()
    mine = None if seconds is None else time.monotonic() + seconds
    token = _DEADLINE.set(min((t for t in (outer, mine) if t is not None), default=None))
    try:
        yield
    finally:
        _DEADLINE.reset(token)


def remaining(limit: float | None = None) -> float | None:
    """Seconds left to the enclosing deadline scope, capped by ``limit``; None when neither bounds it."""
    end = _DEADLINE.get()
    left = None if end is None else end - time.monotonic()
    return min((x for x in (left, limit) if x is not None), default=None)


@contextlib.contextmanager
def map_httpx_errors(method: str, path: str, redact: Redactor | None = None) -> Iterator[None]:
    """Map httpx exceptions, most specific first, to the harness tree."""
    r = redact or Redactor()
    try:
        yield
    except httpx.TimeoutException as exc:
        raise RequestTimeout(f"{method} {path}: {type(exc).__name__}", method=method, path=path) from None
    except (httpx.ConnectError, httpx.ReadError, httpx.WriteError, httpx.CloseError, httpx.RemoteProtocolError) as exc:
        raise ConnectError(f"{method} {path}: {type(exc).__name__}: {r(str(exc))}", method=method, path=path) from None
    except (httpx.DecodingError, httpx.TooManyRedirects, httpx.LocalProtocolError) as exc:
        raise ProtocolError(f"{method} {path}: {type(exc).__name__}: {r(str(exc))}", method=method, path=path) from None
    except httpx.UnsupportedProtocol as exc:
        raise ConfigError(f"{method} {path}: unsupported URL scheme: {r(str(exc))}") from None
    except httpx.HTTPError as exc:
        raise TransportError(
            f"{method} {path}: {type(exc).__name__}: {r(str(exc))}", method=method, path=path
        ) from None
    except httpx.InvalidURL as exc:
        raise ConfigError(f"invalid URL for {method} {path}: {r(str(exc))}") from None


@dataclass(frozen=True, slots=True)
class Reply:
    """A whole reply, read under the caps."""

    status_code: int
    headers: httpx.Headers
    content: bytes
    url: str

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", "replace")


class ClientLifecycle:
    """``async with`` for clients that own an HTTPCore in ``self._core``."""

    _core: HTTPCore

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._core.aclose()


class HTTPCore:
    """An httpx.AsyncClient with retries, deadlines, caps, error mapping and redaction. ``transport`` is injectable
    (httpx.MockTransport, respx, ASGI) so tests never monkeypatch. ``timeout`` is each logical request's total."""

    def __init__(
        self,
        base_url: str,
        *,
        headers: Mapping[str, str],
        secrets: tuple[str | None, ...],
        transport: httpx.AsyncBaseTransport | None,
        timeout: float,
        retry: RetryPolicy,
        clock: Clock,
        rng: random.Random | None = None,
        limits: ReadLimits = DEFAULT_LIMITS,
    ) -> None:
        self.redact = Redactor(*secrets)
        self.base_url = base_url.rstrip("/")
        self.retry = retry
        self.clock = clock
        self.timeout = timeout
        self.limits = limits
        self._rng = rng or random.Random()
        self.http = httpx.AsyncClient(
            base_url=base_url,
            headers={"Accept-Encoding": ACCEPT_ENCODING, **headers},
            transport=transport,
            timeout=timeout,
            follow_redirects=False,
        )

    async def aclose(self) -> None:
        await self.http.aclose()

    def total(self, timeout: float | None) -> float:
        """The seconds a request started now may take: its own limit, within the enclosing deadline scope."""
        left = remaining(self.timeout if timeout is None else timeout)
        return max(0.0, self.timeout if left is None else left)

    async def send(
        self,
        method: str,
        path: str,
        *,
        idempotent: bool,
        json_body: Any = None,
        params: Mapping[str, Any] | None = None,
        timeout: float | None = None,
        max_attempts: int | None = None,
    ) -> Reply:
        """One logical request with bounded retries, all within one total deadline (``timeout``, else the client's).
        429 is always retried (nothing ran); 5xx and connection errors only when ``idempotent``. Error statuses are
        returned, not raised; a redirect raises Redirected."""
        limit = self.retry.max_attempts if max_attempts is None else max_attempts
        end = time.monotonic() + self.total(timeout)
        attempt = 0
        while True:
            attempt += 1
            t0 = self.clock.now()
            try:
                resp = await self._attempt(method, path, json_body, params, end)
            except (ConnectError, RequestTimeout) as exc:
                wait = self.retry.backoff(attempt, rng=self._rng)
                if not self.retry.retries(attempt, idempotent=idempotent, limit=limit) or self._past(end, wait):
                    self._note_deadline(exc, end, attempt)
                    raise
                log.debug("%s %s: %s, retry %d in %.2fs", method, path, type(exc).__name__, attempt, wait)
                await self.clock.sleep(wait)
                continue
            log.debug("%s %s -> %d in %.3fs", method, path, resp.status_code, self.clock.now() - t0)
            if not self.retry.retries(attempt, idempotent=idempotent, status=resp.status_code, limit=limit):
                return resp
            wait = self.retry.backoff(attempt, parse_retry_after(resp.headers.get("retry-after")), rng=self._rng)
            if self._past(end, wait):
                return resp  # no time for another attempt: this reply is the answer
            await self.clock.sleep(wait)

    @staticmethod
    def _past(end: float, wait: float) -> bool:
        return time.monotonic() + wait >= end

    def _note_deadline(self, exc: TransportError, end: float, attempts: int) -> None:
        if time.monotonic() >= end - 0.05 and isinstance(exc, RequestTimeout):
            exc.add_note(f"the request's total deadline passed ({attempts} attempt(s))")

    async def _attempt(
        self, method: str, path: str, json_body: Any, params: Mapping[str, Any] | None, end: float
    ) -> Reply:
        where = self.where(path)
        left = end - time.monotonic()
        if left <= 0:
            raise RequestTimeout(f"{method} {where}: no time left before the deadline", method=method, path=where)
        kwargs: dict[str, Any] = {"json": json_body, "params": params, "timeout": left}
        with map_httpx_errors(method, where, self.redact):
            try:
                async with asyncio.timeout(left):
                    async with self.http.stream(method, path, **kwargs) as resp:
                        self.refuse_redirect(method, resp)
                        cap = self.limits.reply_bytes if resp.status_code < 400 else self.limits.error_bytes
                        content = await self.read_body(
                            resp, cap, f"{method} {where}", keep_head=resp.status_code >= 400
                        )
                        return Reply(resp.status_code, resp.headers, content, str(resp.request.url))
            except TimeoutError:
                raise RequestTimeout(
                    f"{method} {where}: no whole reply within {left:.1f} s", method=method, path=where
                ) from None

    def refuse_redirect(self, method: str, resp: httpx.Response) -> None:
        if 300 <= resp.status_code < 400 and resp.status_code != 304:
            where = self.redact(str(resp.request.url).split("?", 1)[0])
            location = self.redact(resp.headers.get("location", "(no Location header)"))
            raise Redirected(
                f"{method} {where}: HTTP {resp.status_code} redirect to {location} (not followed: point the base URL "
                "at where the server really is)",
                status_code=resp.status_code,
                location=location,
                method=method,
                path=where,
            )

    async def read_body(self, resp: httpx.Response, cap: int, where: str, *, keep_head: bool = False) -> bytes:
        """The decoded body under ``cap``. ``keep_head``: an error body over its cap is cut there (only its summary
        is ever shown) instead of raising."""
        parts: list[bytes] = []
        try:
            async for data in self._decoded(resp, cap, "error" if keep_head else "reply", where):
                parts.append(data)
        except ProtocolError:
            if not keep_head:
                raise
        return b"".join(parts)

    def iter_body(self, resp: httpx.Response, where: str) -> AsyncIterator[bytes]:
        """A stream's decoded bytes as they arrive, under the stream cap."""
        return self._decoded(resp, self.limits.stream_bytes, "stream", where)

    @staticmethod
    async def _decoded(resp: httpx.Response, cap: int, what: str, where: str) -> AsyncIterator[bytes]:
        if resp.is_stream_consumed:  # an in-memory reply (MockTransport, a replayed cassette), decoded already
            decoder = BodyDecoder(None, cap, what=what, where=where)
            yield decoder.feed(resp.content)
            return
        decoder = BodyDecoder(resp.headers.get("content-encoding"), cap, what=what, where=where)
        async for raw in resp.aiter_raw():
            if data := decoder.feed(raw):
                yield data
        if tail := decoder.finish():
            yield tail

    def where(self, path: str) -> str:
        """The full URL of a request path, for messages: a base-URL mistake must show."""
        return self.redact(self.base_url + path if path.startswith("/") else path)

    def status_error(self, method: str, resp: Reply, hint: str = "") -> StatusError:
        return status_error(
            method,
            resp.url,
            resp.status_code,
            resp.content,
            retry_after=resp.headers.get("retry-after"),
            hint=hint,
            attempts=self.retry.max_attempts,
            redact=self.redact,
        )

    def json(self, method: str, resp: Reply) -> Any:
        where = self.redact(resp.url.split("?", 1)[0])
        try:
            return parse_json(resp.content, f"{method} {where}")
        except ValueError:
            summary = summarize_body(resp.text, self.redact)
            what = "an empty reply" if not resp.content else f"reply is not JSON: {summary!r}"
            raise ProtocolError(f"{method} {where}: {what}", method=method, path=where) from None
