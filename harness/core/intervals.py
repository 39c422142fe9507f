"""Confidence intervals a comparison can stand behind, at the small n a model comparison has (no numpy, no scipy).

* :func:`wilson` — a pass rate (Wilson score interval: stays inside [0, 1] and keeps its coverage at n = 10,
  where the textbook p ± z·se interval does not).
* :func:`paired_difference` — the difference of two pass rates measured on the SAME cases (Newcombe 1998,
  method 10: the two Wilson intervals combined with the pairs' correlation). Pairing is what makes a
  comparison of two models on 15 cases worth anything: a hard case is hard for both.
* :func:`median_shift` — the median of paired differences (e.g. latency of A minus B on the same request) with
  the distribution-free sign-test interval: order statistics of the differences, no normality assumed.

Coverage of each is checked by simulation in tests/test_compare.py.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["Interval", "mcnemar_exact", "median_shift", "paired_difference", "wilson"]

Z95 = 1.959963984540054


@dataclass(frozen=True, slots=True)
class Interval:
    estimate: float
    low: float
    high: float
    n: int

    @property
    def above_zero(self) -> bool:
        return self.low > 0

    @property
    def below_zero(self) -> bool:
        return self.high < 0

    def overlaps(self, other: Interval) -> bool:
        return self.low <= other.high and other.low <= self.high


def wilson(successes: int, n: int, z: float = Z95) -> Interval:
    if n <= 0:
        return Interval(math.nan, 0.0, 1.0, 0)
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z / denom * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    low = 0.0 if successes == 0 else max(0.0, centre - half)  # exact at the ends, whatever the rounding
    high = 1.0 if successes == n else min(1.0, centre + half)
    return Interval(p, low, high, n)


def paired_difference(both: int, only_a: int, only_b: int, neither: int, z: float = Z95) -> Interval:
    """p(A passes) - p(B passes) on paired trials, from the 2x2 table of outcomes (Newcombe's method 10)."""
    n = both + only_a + only_b + neither
    if n == 0:
        return Interval(math.nan, -1.0, 1.0, 0)
    a, b = wilson(both + only_a, n, z), wilson(both + only_b, n, z)
    p1, p2 = a.estimate, b.estimate
    rows = (both + only_a) * (only_b + neither) * (both + only_b) * (only_a + neither)
    phi = (both * neither - only_a * only_b) / math.sqrt(rows) if rows else 0.0
    theta = p1 - p2
    dl = math.sqrt(max(0.0, (p1 - a.low) ** 2 - 2 * phi * (p1 - a.low) * (b.high - p2) + (b.high - p2) ** 2))
    du = math.sqrt(max(0.0, (a.high - p1) ** 2 - 2 * phi * (a.high - p1) * (p2 - b.low) + (p2 - b.low) ** 2))
    return Interval(theta, max(-1.0, theta - dl), min(1.0, theta + du), n)


def _binom_cdf_half(k: int, n: int) -> float:
    """P(X <= k) for X ~ Binomial(n, 1/2)."""
    return float(sum(math.comb(n, i) for i in range(k + 1))) / float(2**n)


def mcnemar_exact(only_a: int, only_b: int) -> float:
    """Two-sided exact McNemar p-value: the discordant pairs against a fair coin. A paired interval alone can
    exclude 0 on two discordant pairs; this cannot (it needs six in one direction for p < 0.05)."""
    n = only_a + only_b
    if n == 0:
        return 1.0
    return min(1.0, 2 * _binom_cdf_half(min(only_a, only_b), n))


def median_shift(differences: Sequence[float], alpha: float = 0.05) -> Interval:
    """The median paired difference and its sign-test interval [d(k), d(n-k+1)], the largest k whose two-sided
    coverage is still >= 1 - alpha. Below 6 pairs no such k exists: the interval is unbounded."""
    d = sorted(differences)
    n = len(d)
    if n == 0:
        return Interval(math.nan, -math.inf, math.inf, 0)
    mid = n // 2
    median = d[mid] if n % 2 else (d[mid - 1] + d[mid]) / 2
    k = 0
    while k + 1 <= n // 2 and 2 * _binom_cdf_half(k, n) <= alpha:
        k += 1  # k order statistics may be cut from each end
    if k == 0:
        return Interval(median, -math.inf, math.inf, n)
    return Interval(median, d[k - 1], d[n - k], n)
