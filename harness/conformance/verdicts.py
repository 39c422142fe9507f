"""What a comparison's attempts say: per target (pass rate with its Wilson interval, speed, errors, cost) and per
pair of targets (the paired difference with its interval, and a plain verdict), per task and overall.

A pass is an answered attempt whose checks had no failure and at least one pass; an error (no answer) is a miss.
Pairs are matched by unit (task, case, form, repeat): only units both targets were asked count, so a target
stopped mid-run is compared on what it answered.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from harness.conformance.compare import Attempt, Comparison
from harness.core.intervals import Interval, mcnemar_exact, median_shift, paired_difference, wilson
from harness.core.percentiles import percentiles

__all__ = ["PairRow", "TargetRow", "pair_rows", "target_rows", "worse_than"]

OVERALL = "overall"
ALPHA = 0.05


@dataclass(frozen=True, slots=True)
class TargetRow:
    target: str
    task: str
    n: int
    passes: int
    pass_rate: Interval
    errors: dict[str, int]
    skipped_checks: int
    answer_chars_p50: float | None
    output_tokens_p50: float | None
    input_tokens_p50: float | None
    ttft_s: dict[str, float | None]
    e2e_s: dict[str, float | None]
    tokens_per_s_p50: float | None
    cold_share: float | None  # RunPod: share of jobs that waited >= the cold threshold in the queue
    usd_per_success: float | None

    def to_json(self) -> dict[str, Any]:
        d = {k: getattr(self, k) for k in self.__slots__}
        d["pass_rate"] = _interval_json(self.pass_rate)
        return d


@dataclass(frozen=True, slots=True)
class PairRow:
    task: str
    a: str
    b: str
    pass_diff: Interval  # p(A) - p(B), Newcombe's paired interval
    mcnemar_p: float  # the exact test on the discordant pairs: a verdict needs p <= ALPHA and the interval
    verdict: str
    e2e_shift: Interval  # median of A's e2e - B's e2e, seconds, on units both answered
    speed_verdict: str

    def to_json(self) -> dict[str, Any]:
        return {
            "task": self.task,
            "a": self.a,
            "b": self.b,
            "pass_diff": _interval_json(self.pass_diff),
            "mcnemar_p": round(self.mcnemar_p, 4),
            "verdict": self.verdict,
            "e2e_shift_s": _interval_json(self.e2e_shift),
            "speed_verdict": self.speed_verdict,
        }


def _interval_json(i: Interval) -> dict[str, Any]:
    def f(v: float) -> float | None:
        return None if math.isnan(v) or math.isinf(v) else round(v, 4)

    return {"estimate": f(i.estimate), "low": f(i.low), "high": f(i.high), "n": i.n}


def _quantiles(values: Sequence[float]) -> dict[str, float | None]:
    got = percentiles(values)
    return {q: None if got[q] is None else float(got[q] or 0.0) for q in ("p50", "p90", "p99")}


def _p50(values: Sequence[float]) -> float | None:
    return _quantiles(values)["p50"]


def _billed_s(a: Attempt) -> float:
    """The GPU time an attempt is charged with: RunPod's executionTime, else the client's end-to-end time (an
    OpenAI server asked one request at a time is busy for that long)."""
    if a.execution_ms is not None:
        return a.execution_ms / 1000
    return a.e2e_s or 0.0


def target_row(
    name: str, task: str, attempts: Sequence[Attempt], price_per_hour: float | None, cold_threshold_s: float
) -> TargetRow:
    answered = [a for a in attempts if a.answered]
    passes = sum(a.passed for a in attempts)
    queued = [a.queue_ms for a in answered if a.queue_ms is not None]
    cold = sum(q >= cold_threshold_s * 1000 for q in queued) / len(queued) if queued else None
    billed = sum(_billed_s(a) for a in attempts)
    usd = billed * price_per_hour / 3600 / passes if price_per_hour is not None and passes else None
    return TargetRow(
        target=name,
        task=task,
        n=len(attempts),
        passes=passes,
        pass_rate=wilson(passes, len(attempts)),
        errors=dict(Counter(a.error for a in attempts if a.error)),
        skipped_checks=sum(v.startswith(("skip", "error")) for a in attempts for v in a.checks.values()),
        answer_chars_p50=_p50([float(a.answer_chars) for a in answered if a.answer_chars is not None]),
        output_tokens_p50=_p50([float(a.output_tokens) for a in answered if a.output_tokens is not None]),
        input_tokens_p50=_p50([float(a.input_tokens) for a in answered if a.input_tokens is not None]),
        ttft_s=_quantiles([a.ttft_s for a in answered if a.ttft_s is not None]),
        e2e_s=_quantiles([a.e2e_s for a in answered if a.e2e_s is not None]),
        tokens_per_s_p50=_p50([t for a in answered if (t := a.tokens_per_s) is not None]),
        cold_share=cold,
        usd_per_success=usd,
    )


def _tasks(run: Comparison) -> list[str]:
    seen = dict.fromkeys(a.task for a in run.measured)
    return [*seen, OVERALL]


def _of(run: Comparison, target: str, task: str) -> list[Attempt]:
    return [a for a in run.measured if a.target == target and task in (OVERALL, a.task)]


def target_rows(run: Comparison, prices: dict[str, float], cold_threshold_s: float = 2.0) -> list[TargetRow]:
    return [
        target_row(t, task, _of(run, t, task), prices.get(t), cold_threshold_s)
        for task in _tasks(run)
        for t in run.compared
    ]


def pair_verdict(diff: Interval, a: str, b: str, better: str = "better") -> str:
    if diff.n == 0:
        return "not compared: no unit was asked of both"
    if math.isinf(diff.low) or math.isinf(diff.high):
        return f"no detectable difference at n={diff.n}"
    if diff.above_zero:
        return f"{a} {better}"
    if diff.below_zero:
        return f"{b} {better}"
    return f"no detectable difference at n={diff.n}"


def pair_row(task: str, a: str, b: str, mine: Sequence[Attempt], theirs: Sequence[Attempt]) -> PairRow:
    by_unit = {x.unit: x for x in theirs}
    pairs = [(x, by_unit[x.unit]) for x in mine if x.unit in by_unit]
    table = Counter((x.passed, y.passed) for x, y in pairs)
    diff = paired_difference(table[True, True], table[True, False], table[False, True], table[False, False])
    p = mcnemar_exact(table[True, False], table[False, True])
    shifts = [x.e2e_s - y.e2e_s for x, y in pairs if x.answered and y.answered and x.e2e_s and y.e2e_s]
    shift = median_shift(shifts)
    speed = pair_verdict(Interval(-shift.estimate, -shift.high, -shift.low, shift.n), a, b, "faster")
    verdict = pair_verdict(diff, a, b) if p <= ALPHA else f"no detectable difference at n={diff.n}"
    return PairRow(task, a, b, diff, p, verdict, shift, speed)


def pair_rows(run: Comparison) -> list[PairRow]:
    """Every pair of compared targets (the first named is A), per task and overall."""
    names = run.compared
    pairs = [(x, y) for i, x in enumerate(names) for y in names[i + 1 :]]
    return [pair_row(task, a, b, _of(run, a, task), _of(run, b, task)) for task in _tasks(run) for a, b in pairs]


def worse_than(run: Comparison, name: str, pairs: Sequence[PairRow] | None = None) -> list[str]:
    """One line per target that ``name`` is detectably worse than on the overall pass rate (empty: not worse).
    ``pairs``: the run's pair rows when already computed."""
    said = []
    for p in pair_rows(run) if pairs is None else pairs:
        if p.task == OVERALL and name in (p.a, p.b):
            other = p.b if name == p.a else p.a
            if p.verdict == f"{other} better":
                said.append(f"{name} is worse than {other} on pass rate ({_interval_text(p)}, n={p.pass_diff.n})")
    return said


def _interval_text(p: PairRow) -> str:
    d = p.pass_diff
    return f"{p.a} - {p.b} = {d.estimate:+.2f} [{d.low:+.2f}, {d.high:+.2f}], McNemar p={p.mcnemar_p:.3g}"
