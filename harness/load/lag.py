"""How late the load generator itself runs: its own scheduling lag, measured during the run.

A client stamps a byte's arrival when it gets around to reading it. Starved of CPU (sharing cores with the
server under test, too many users for one process), it reads late and every timing it records is late by as
much — and nothing in the numbers shows it (issue 16: 14 ms late at c=1, 78 ms at c=8 with shared cores). So each
load process runs this probe: a greenlet that asks to wake every ``interval_s`` and records by how much it woke
late. Its lag is a lower bound on the error of every timestamp taken in that process meanwhile; the report
marks a run whose p99 lag is over :data:`TRUSTED_LAG_MS` as timings it cannot stand behind.

Pure measurement over an injected sleep and clock, so it runs under gevent (the locust users) or in a test.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from harness.core.percentiles import histogram_percentile

__all__ = ["TRUSTED_LAG_MS", "LagProbe"]

TRUSTED_LAG_MS = 5.0  # a p99 lag above this makes the run's timings suspect by that much


@dataclass(slots=True)
class LagProbe:
    """Call :meth:`tick` in a loop (``run``); ``summary()`` at any time. Lags are kept as a histogram of whole
    milliseconds: bounded, whatever the run's length."""

    interval_s: float = 0.01
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.perf_counter
    histogram: Counter[int] = field(default_factory=Counter)
    worst_ms: float = 0.0

    def tick(self) -> float:
        """One sleep of ``interval_s``; returns how late it woke, in ms."""
        t0 = self.clock()
        self.sleep(self.interval_s)
        late_ms = max(0.0, (self.clock() - t0 - self.interval_s) * 1000)
        self.histogram[math.floor(late_ms)] += 1
        self.worst_ms = max(self.worst_ms, late_ms)
        return late_ms

    def run(self, keep_going: Callable[[], bool]) -> None:
        while keep_going():
            self.tick()

    def percentile(self, q: float) -> float | None:
        value = histogram_percentile(self.histogram, q)
        return None if value is None else float(value)

    def summary(self) -> dict[str, Any]:
        return {
            "samples": self.histogram.total(),
            "interval_ms": self.interval_s * 1000,
            "p50_ms": self.percentile(0.5),
            "p99_ms": self.percentile(0.99),
            "max_ms": round(self.worst_ms, 2),
        }
