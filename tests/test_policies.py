from __future__ import annotations

import email.utils
import random

import httpx
import pytest

from harness.clients.transport import Redactor, map_httpx_errors
from harness.core.errors import ConfigError, ConnectError, ProtocolError, RequestTimeout, TransportError
from harness.core.polling import PollPolicy, RetryPolicy, parse_retry_after


def test_poll_delays_grow_to_the_cap_and_never_pass_the_deadline() -> None:
    p = PollPolicy(first_s=0.1, factor=2, cap_s=1.0)
    assert [p.delay(i) for i in range(6)] == [0.1, 0.2, 0.4, 0.8, 1.0, 1.0]
    assert p.next_delay(10, remaining_s=0.3) == 0.3
    assert p.next_delay(10, remaining_s=-5) == 0.0


def test_retry_backoff_honours_retry_after_and_jitter_only_adds() -> None:
    r = RetryPolicy(base_s=0.5, cap_s=4, jitter=0.25, max_retry_after_s=30)
    rng = random.Random(1)
    for attempt in range(1, 6):
        d = r.backoff(attempt, rng=rng)
        base = min(4, 0.5 * 2 ** (attempt - 1))
        assert base <= d <= base * 1.25
    assert 7 <= r.backoff(1, retry_after=7, rng=rng) <= 7 * 1.25
    assert r.backoff(1, retry_after=3600, rng=rng) <= 30 * 1.25


@pytest.mark.parametrize(
    ("value", "expected"),
    [("3", 3.0), ("0.5", 0.5), ("-1", 0.0), ("", None), (None, None), ("soon", None)],
)
def test_parse_retry_after_seconds(value: str | None, expected: float | None) -> None:
    assert parse_retry_after(value) == expected


def test_parse_retry_after_http_date() -> None:
    date = email.utils.formatdate(1_000_010, usegmt=True)
    assert parse_retry_after(date, now=1_000_000) == pytest.approx(10)


@pytest.mark.parametrize(
    ("exc", "ours"),
    [
        (httpx.ConnectTimeout("t"), RequestTimeout),
        (httpx.ReadTimeout("t"), RequestTimeout),
        (httpx.PoolTimeout("t"), RequestTimeout),
        (httpx.ConnectError("refused"), ConnectError),
        (httpx.ReadError("reset"), ConnectError),
        (httpx.RemoteProtocolError("Server disconnected without sending a response."), ConnectError),
        (httpx.DecodingError("bad gzip"), ProtocolError),
        (httpx.UnsupportedProtocol("ftp"), ConfigError),
        (httpx.ProxyError("proxy"), TransportError),
    ],
)
def test_one_place_maps_httpx_errors(exc: Exception, ours: type[Exception]) -> None:
    with pytest.raises(ours) as info, map_httpx_errors("GET", "/status/x"):
        raise exc
    assert type(info.value) is ours
    assert "GET /status/x" in str(info.value)


def test_redactor_hides_every_secret_and_ignores_tiny_ones() -> None:
    r = Redactor("secret-key-1", None, "", "ab")
    assert r("x secret-key-1 y ab") == "x *** y ab"


def test_failure_backoff_grows_then_stops_and_permanent_failures_stop_sooner() -> None:
    from harness.core.polling import FailureBackoff

    b = FailureBackoff()
    waits = [b.record(False) for _ in range(10)]
    assert waits[:4] == [0.1, 0.2, 0.4, 0.8] and max(w for w in waits if w is not None) == 5.0
    assert waits[-1] is None  # ten failures and never a success: stop
    wrong_model = FailureBackoff()
    assert [wrong_model.record(False, permanent=True) for _ in range(3)] == [0.1, 0.2, None]
    served_before = FailureBackoff()
    served_before.record(True)
    assert all(served_before.record(False, permanent=True) is not None for _ in range(29))  # it worked once
