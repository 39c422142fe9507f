"""Percentiles, pure: of a list of values (interpolated as numpy's default does, with a count and a mean), and of a
histogram (value -> count) — memory bounded by the distinct values, whatever the sample count, where a run may see
millions of samples of a few thousand values (scheduling lag in ms, token lengths)."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable

__all__ = ["PCTS", "histogram_percentile", "percentiles"]

PCTS = (50, 90, 95, 99)


def percentiles(values: Iterable[float | None], *, presorted: bool = False) -> dict[str, float | int | None]:
    """count, p50/p90/p95/p99 and the mean of the finite values (None and NaN left out)."""
    xs = [v for v in values if v is not None and math.isfinite(v)]
    if not presorted:
        xs.sort()
    out: dict[str, float | int | None] = {"count": len(xs)}
    for p in PCTS:
        if not xs:
            out[f"p{p}"] = None
            continue
        k = (len(xs) - 1) * p / 100
        lo, hi = math.floor(k), math.ceil(k)
        out[f"p{p}"] = xs[lo] + (xs[hi] - xs[lo]) * (k - lo)
    out["mean"] = math.fsum(x / len(xs) for x in xs) if xs else None  # divided first: huge values cannot overflow
    return out


def histogram_percentile(histogram: Counter[int], q: float) -> int | None:
    """The smallest value at or below which a share ``q`` of the samples lie (nearest rank); None when empty."""
    total = histogram.total()
    if not total:
        return None
    rank, seen = math.ceil(q * total), 0
    for value in sorted(histogram):
        seen += histogram[value]
        if seen >= rank:
            return value
    return max(histogram)
