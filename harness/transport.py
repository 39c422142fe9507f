"""HTTP plumbing shared by the clients: the one place that maps httpx exceptions to ours,
bounded retries, and scrubbing of secrets from anything that could be printed."""

from __future__ import annotations

import json
import logging
import random
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from types import TracebackType
from typing import Any, Self

import httpx

from harness.clock import Clock
from harness.errors import (
    ConfigError,
    ConnectError,
    ProtocolError,
    RateLimited,
    RequestTimeout,
    StatusError,
    TransportError,
)
from harness.polling import RetryPolicy, parse_retry_after

__all__ = ["ClientLifecycle", "HTTPCore", "Redactor", "map_httpx_errors"]

log = logging.getLogger("harness.http")
_BODY_SUMMARY = 300


class Redactor:
    """Replaces known secret values with ``***`` in any text about to leave the process."""

    def __init__(self, *secrets: str | None) -> None:
        self._secrets = sorted({s for s in secrets if s and len(s) >= 4}, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for s in self._secrets:
            text = text.replace(s, "***")
        return text


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
                with map_httpx_errors(method, path, self.redact):
                    kwargs: dict[str, Any] = {"json": json_body, "params": params}
                    if timeout is not None:
                        kwargs["timeout"] = timeout
                    resp = await self.http.request(method, path, **kwargs)
            except (ConnectError, RequestTimeout) as exc:
                if not idempotent or attempt >= limit:
                    raise
                wait = self.retry.backoff(attempt, rng=self._rng)
                log.debug("%s %s: %s, retry %d in %.2fs", method, path, type(exc).__name__, attempt, wait)
                await self.clock.sleep(wait)
                continue
            log.debug("%s %s -> %d in %.3fs", method, path, resp.status_code, self.clock.now() - t0)
            retryable = resp.status_code == 429 or (idempotent and resp.status_code >= 500)
            if not retryable or attempt >= limit:
                return resp
            ra = parse_retry_after(resp.headers.get("retry-after"))
            await self.clock.sleep(self.retry.backoff(attempt, ra, rng=self._rng))

    def summary(self, resp: httpx.Response) -> str:
        text = self.redact(resp.text[: _BODY_SUMMARY * 4])
        text = " ".join(text.split())
        return text if len(text) <= _BODY_SUMMARY else text[:_BODY_SUMMARY] + "..."

    def status_error(self, method: str, path: str, resp: httpx.Response, hint: str = "") -> StatusError:
        body = self.summary(resp)
        msg = f"{method} {path}: HTTP {resp.status_code}" + (f" ({hint})" if hint else "")
        msg += f": {body}" if body else ""
        ra = parse_retry_after(resp.headers.get("retry-after"))
        if resp.status_code == 429:
            return RateLimited(
                msg + f" after {self.retry.max_attempts} attempts", retry_after=ra, body=body, method=method, path=path
            )
        return StatusError(msg, status_code=resp.status_code, body=body, method=method, path=path, retry_after=ra)

    def json(self, method: str, path: str, resp: httpx.Response) -> Any:
        try:
            return json.loads(resp.content)
        except ValueError:
            raise ProtocolError(
                f"{method} {path}: reply is not JSON: {self.summary(resp)!r}", method=method, path=path
            ) from None
