"""Cold, warm and hot by design — and checked by evidence.

No load tool measures cold starts: they hide them behind readiness probes and warm-ups. Here a cold
request is preceded by a wait longer than the endpoint's idle timeout (so its workers scale to zero), a
warm one by a pause inside the idle window (the worker is up but idle), a hot one by nothing (back to back).
Each label is then confirmed against what the endpoint says: /health just before the request and the
job's delayTime. A request labelled cold that found a ready worker is reported as mislabelled.
"""

from __future__ import annotations

from dataclasses import dataclass

from harness.core.polling import PollPolicy

__all__ = ["LATENCY_POLL", "PhasePlan", "Step", "confirm"]

# Latency runs poll every 50 ms: with backed-off polling a finished job is seen up to ~0.7 s late, the worker
# goes idle meanwhile, and the next "hot" request is not hot (measured: 301 ms vs 0 ms delayTime).
LATENCY_POLL = PollPolicy(first_s=0.02, factor=1.5, cap_s=0.05)


@dataclass(frozen=True, slots=True)
class Step:
    phase: str
    wait_s: float


@dataclass(frozen=True, slots=True)
class PhasePlan:
    idle_timeout_s: float
    rounds: int = 2
    warm: int = 3
    hot: int = 3
    margin_s: float = 1.0

    @property
    def warm_gap_s(self) -> float:
        return self.idle_timeout_s * 0.5

    def steps(self) -> list[Step]:
        out = []
        for _ in range(self.rounds):
            out.append(Step("cold", self.idle_timeout_s + self.margin_s))
            out += [Step("hot", 0.0)] * self.hot
            out += [Step("warm", self.warm_gap_s)] * self.warm
        return out

    @property
    def duration_s(self) -> float:
        return sum(s.wait_s for s in self.steps())


def confirm(
    phase: str, workers: dict[str, int | None], gap_s: float | None, hot_gap_s: float = 0.1
) -> tuple[bool, str]:
    """(confirmed, evidence) from worker counts just before the request and the gap since the last one."""
    ready = (workers.get("idle") or 0) + (workers.get("running") or 0)
    init = workers.get("initializing") or 0
    seen = f"workers idle={workers.get('idle')} running={workers.get('running')} initializing={init}"
    gap = "first request" if gap_s is None else f"{gap_s:.2f} s after the previous one"
    if phase == "cold":
        return ready == 0, f"{seen}; {gap}" + ("" if ready == 0 else " — a ready worker was there: mislabelled")
    if phase == "warm":
        ok = ready > 0 and (gap_s is None or gap_s >= hot_gap_s)
        return ok, f"{seen}; {gap}" + ("" if ok else " — no idle ready worker, or not a pause: mislabelled")
    if phase == "hot":
        ok = ready > 0 and gap_s is not None and gap_s < hot_gap_s
        return ok, f"{seen}; {gap}" + ("" if ok else " — not back to back on a ready worker: mislabelled")
    return True, f"{seen}; {gap}"
