"""When to poll next and when to retry: pure decisions shared by the async client and the sync
(locust) driver."""

from __future__ import annotations

import email.utils
import random
import time
from dataclasses import dataclass

__all__ = ["FailureBackoff", "PollPolicy", "RetryPolicy", "parse_retry_after"]


@dataclass(frozen=True, slots=True)
class PollPolicy:
    """Quick first polls (hot workers finish in ~100 ms), then backoff to a cap.

    runpod-python polls every 1 s flat: a 300 ms job is seen done after ~1 s. Ours sees it after
    ~0.3 s and backs off for long jobs so a 10-minute job costs ~300 requests, not 600.
    """

    first_s: float = 0.05
    factor: float = 1.5
    cap_s: float = 2.0

    def delay(self, attempt: int) -> float:
        """Delay before poll number ``attempt`` (0-based) after the first check."""
        return min(self.cap_s, self.first_s * self.factor ** max(0, attempt))

    def next_delay(self, attempt: int, remaining_s: float) -> float:
        """Never sleep past the deadline."""
        return max(0.0, min(self.delay(attempt), remaining_s))


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Bounded retries. 429 is retried for every call (the server refused it, nothing ran);
    5xx and connection errors only for idempotent calls: a submit is never blind-retried."""

    max_attempts: int = 4
    base_s: float = 0.5
    cap_s: float = 10.0
    max_retry_after_s: float = 30.0
    jitter: float = 0.25

    def retries(self, attempt: int, *, idempotent: bool, status: int | None = None, limit: int | None = None) -> bool:
        """Whether attempt number ``attempt`` (1-based) that ended in HTTP ``status`` (None: a connection error
        or timeout) is worth another try."""
        if attempt >= (self.max_attempts if limit is None else limit):
            return False
        if status is None:
            return idempotent
        return status == 429 or (idempotent and status >= 500)

    def backoff(self, attempt: int, retry_after: float | None = None, rng: random.Random | None = None) -> float:
        """Seconds to wait before retry ``attempt`` (1-based). Retry-After wins when given."""
        if retry_after is not None:
            base = min(retry_after, self.max_retry_after_s)
        else:
            base = min(self.cap_s, self.base_s * 2 ** max(0, attempt - 1))
        r = (rng or random).random()
        return base * (1 + self.jitter * r)  # jitter only adds: never earlier than Retry-After


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds from a Retry-After header: delta-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


@dataclass(slots=True)
class FailureBackoff:
    """A load user that only sees failures backs off, then stops: it never hammers a dead endpoint.

    ``record(ok)`` after each request returns the seconds to wait before the next one (0 after a success), or
    None: stop — after ``stop_after`` failures in a row with no success ever (a wrong URL, model or key), or after
    three times that many in a row later on (the endpoint died mid-run)."""

    base_s: float = 0.1
    cap_s: float = 5.0
    stop_after: int = 10
    in_a_row: int = 0
    successes: int = 0

    def record(self, ok: bool, *, permanent: bool = False) -> float | None:
        """``permanent``: a failure retrying cannot fix (a 4xx such as a wrong model): with no success ever, three
        in a row stop the user."""
        if ok:
            self.in_a_row, self.successes = 0, self.successes + 1
            return 0.0
        self.in_a_row += 1
        limit = self.stop_after if self.successes == 0 else 3 * self.stop_after
        if self.in_a_row >= (min(3, limit) if permanent and self.successes == 0 else limit):
            return None
        return float(min(self.cap_s, self.base_s * 2.0 ** (self.in_a_row - 1)))
