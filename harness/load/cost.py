"""What a request costs on a serverless GPU, from measured numbers (field report 001).

A worker bills from the moment it starts (the cold start is billed) until the idle timeout after its last
job. With arrivals at rate ``lam`` (Poisson: the model's assumption, stated in every report), per request:

    billed = execution + E[min(gap, idle_timeout)] + P(gap > idle_timeout) * cold_start
           = E + (1 - exp(-lam*T)) / lam + exp(-lam*T) * C

(single worker; the idle tail after a request is cut short by the next arrival). Past ``max_workers *
1/E`` requests per second the queue grows without bound: reported as over capacity, not priced.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["CostModel", "what_if"]

SECONDS_PER_MONTH = 30 * 24 * 3600


@dataclass(frozen=True, slots=True)
class CostModel:
    execution_s: float  # mean measured executionTime
    cold_start_s: float  # measured: cold delayTime minus hot delayTime
    price_per_hour: float  # the GPU's $/h
    rate_per_s: float  # traffic: requests per second
    idle_timeout_s: float
    max_workers: int = 1

    @property
    def over_capacity(self) -> bool:
        return self.rate_per_s * self.execution_s >= self.max_workers

    @property
    def billed_s_per_request(self) -> float:
        lam, t = self.rate_per_s, self.idle_timeout_s
        if lam <= 0:
            return self.execution_s + t + self.cold_start_s
        p_cold = math.exp(-lam * t)
        return self.execution_s + (1 - p_cold) / lam + p_cold * self.cold_start_s

    @property
    def cold_fraction(self) -> float:
        return math.exp(-self.rate_per_s * self.idle_timeout_s) if self.rate_per_s > 0 else 1.0

    @property
    def dollars_per_request(self) -> float:
        return self.billed_s_per_request * self.price_per_hour / 3600

    @property
    def dollars_per_month(self) -> float:
        return self.dollars_per_request * self.rate_per_s * SECONDS_PER_MONTH


def what_if(
    base: CostModel, idle_timeouts: tuple[float, ...] = (1, 5, 30, 60, 120), max_workers: tuple[int, ...] = (1, 2, 3)
) -> list[dict[str, float | int | bool]]:
    rows: list[dict[str, float | int | bool]] = []
    for t in idle_timeouts:
        for w in max_workers:
            m = CostModel(base.execution_s, base.cold_start_s, base.price_per_hour, base.rate_per_s, t, w)
            rows.append(
                {
                    "idle_timeout_s": t,
                    "max_workers": w,
                    "over_capacity": m.over_capacity,
                    "cold_fraction": round(m.cold_fraction, 4),
                    "billed_s_per_request": round(m.billed_s_per_request, 3),
                    "dollars_per_request": round(m.dollars_per_request, 6),
                    "dollars_per_month": round(m.dollars_per_month, 2),
                }
            )
    return rows
