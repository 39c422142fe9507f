"""HTTP plumbing of the async clients: the one place that maps httpx exceptions to ours, and bounded
retries. What a status code means is decided in :mod:`harness.core.wire` (shared with the sync driver)."""

from __future__ import annotations

import json
import logging
import random
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from types import TracebackType
from typing import Any, Self

import httpx

from harness.core.clock import Clock
from harness.core.errors import (
    ConfigError,
    ConnectError,
    ProtocolError,
    RequestTimeout,
    StatusError,
    TransportError,
)
from harness.core.polling import RetryPolicy, parse_retry_after
from harness.core.wire import Redactor, status_error, summarize_body

__all__ = ["ClientLifecycle", "HTTPCore", "map_httpx_errors"]

log = logging.getLogger("harness.http")


@contextmanager
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
    """An httpx.AsyncClient with retries, error mapping and redaction. ``transport`` is injectable
    (httpx.MockTransport, respx, ASGI) so tests never monkeypatch."""

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
    ) -> None:
        self.redact = Redactor(*secrets)
        self.base_url = base_url.rstrip("/")
        self.retry = retry
        self.clock = clock
        self._rng = rng or random.Random()
        self.http = httpx.AsyncClient(
            base_url=base_url,
            headers=dict(headers),
            transport=transport,
            timeout=timeout,
            follow_redirects=False,
        )

    async def aclose(self) -> None:
        await self.http.aclose()

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
    ) -> httpx.Response:
        """One logical request with bounded retries. 429 is always retried (nothing ran);
        5xx and connection errors only when ``idempotent``. Error statuses are returned, not raised."""
        limit = self.retry.max_attempts if max_attempts is None else max_attempts
        attempt = 0
        while True:
            attempt += 1
            t0 = self.clock.now()
            try:
                with map_httpx_errors(method, self.where(path), self.redact):
                    kwargs: dict[str, Any] = {"json": json_body, "params": params}
                    if timeout is not None:
                        kwargs["timeout"] = timeout
                    resp = await self.http.request(method, path, **kwargs)
            except (ConnectError, RequestTimeout) as exc:
                if not self.retry.retries(attempt, idempotent=idempotent, limit=limit):
                    raise
                wait = self.retry.backoff(attempt, rng=self._rng)
                log.debug("%s %s: %s, retry %d in %.2fs", method, path, type(exc).__name__, attempt, wait)
                await self.clock.sleep(wait)
                continue
            log.debug("%s %s -> %d in %.3fs", method, path, resp.status_code, self.clock.now() - t0)
            if not self.retry.retries(attempt, idempotent=idempotent, status=resp.status_code, limit=limit):
                return resp
            ra = parse_retry_after(resp.headers.get("retry-after"))
            await self.clock.sleep(self.retry.backoff(attempt, ra, rng=self._rng))

    def where(self, path: str) -> str:
        """The full URL of a request path, for messages: a base-URL mistake must show."""
        return self.redact(self.base_url + path if path.startswith("/") else path)

    def status_error(self, method: str, resp: httpx.Response, hint: str = "") -> StatusError:
        return status_error(
            method,
            str(resp.request.url),
            resp.status_code,
            resp.content,
            retry_after=resp.headers.get("retry-after"),
            hint=hint,
            attempts=self.retry.max_attempts,
            redact=self.redact,
        )

    def json(self, method: str, resp: httpx.Response) -> Any:
        try:
            return json.loads(resp.content)
        except ValueError:
            where = self.redact(str(resp.request.url).split("?", 1)[0])
            summary = summarize_body(resp.text, self.redact)
            raise ProtocolError(
                f"{method} {where}: reply is not JSON: {summary!r}", method=method, path=where
            ) from None
