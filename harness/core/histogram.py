"""Percentiles of a histogram (value -> count): memory bounded by the distinct values, whatever the sample count.
Used where a run may see millions of samples of a few thousand values (scheduling lag in ms, token lengths)."""

from __future__ import annotations

import math
from collections import Counter

__all__ = ["histogram_percentile"]


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
