"""Per-phase numbers, with each tool's convention named (../shared/reference/load-testing.md):

* TTFT — first non-empty content (GuideLLM/llm-load-test); ``tt_ack`` — first line of any kind;
* ``tpot_vllm`` = (e2e - TTFT) / (output tokens - 1)   (vLLM bench TPOT = AIPerf ITL);
* ``itl_guidellm`` = (last token - first token) / (output tokens - 1) — GuideLLM calls this "ITL";
* ``icl_aiperf`` = every gap between chunks, pooled (AIPerf inter-chunk latency; vLLM's ITL samples).
Percentiles are linear-interpolated (numpy's default) and always reported with their counts.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

from harness.load.records import LoadRecord

__all__ = ["percentiles", "summarize"]

PCTS = (50, 90, 95, 99)


def percentiles(values: Iterable[float | None]) -> dict[str, float | int | None]:
    xs = sorted(v for v in values if v is not None and not math.isnan(v))
    out: dict[str, float | int | None] = {"count": len(xs)}
    for p in PCTS:
        if not xs:
            out[f"p{p}"] = None
            continue
        k = (len(xs) - 1) * p / 100
        lo, hi = math.floor(k), math.ceil(k)
        out[f"p{p}"] = xs[lo] + (xs[hi] - xs[lo]) * (k - lo)
    out["mean"] = sum(xs) / len(xs) if xs else None
    return out


def _tpot(r: LoadRecord) -> float | None:
    if r.e2e_s is None or r.ttft_s is None or not r.output_tokens or r.output_tokens < 2:
        return None
    return (r.e2e_s - r.ttft_s) / (r.output_tokens - 1)


def _itl_guidellm(r: LoadRecord) -> float | None:
    if r.ttft_s is None or not r.gaps_s or not r.output_tokens or r.output_tokens < 2:
        return None
    return sum(r.gaps_s) / (r.output_tokens - 1)


def summarize(records: Sequence[LoadRecord]) -> dict[str, Any]:
    """{phase: {count, errors by cause, confirmed, e2e/delay/execution/ttft/... percentiles}}."""
    phases: dict[str, Any] = {}
    for phase in dict.fromkeys(r.phase for r in records):
        rs = [r for r in records if r.phase == phase]
        ok = [r for r in rs if r.status == "ok"]
        phases[phase] = {
            "requests": len(rs),
            "errors": dict(Counter(r.error or "unknown" for r in rs if r.status != "ok")),
            "confirmed": sum(r.confirmed is True for r in rs),
            "mislabelled": [r.evidence for r in rs if r.confirmed is False],
            "e2e_s": percentiles(r.e2e_s for r in ok),
            "delay_ms": percentiles(r.delay_ms for r in ok),
            "execution_ms": percentiles(r.execution_ms for r in ok),
            "ttft_s": percentiles(r.ttft_s for r in ok),
            "tt_ack_s": percentiles(r.tt_ack_s for r in ok),
            "tpot_vllm_s": percentiles(_tpot(r) for r in ok),
            "itl_guidellm_s": percentiles(_itl_guidellm(r) for r in ok),
            "icl_aiperf_s": percentiles(g for r in ok for g in r.gaps_s),
            "output_tokens": percentiles(r.output_tokens for r in ok),
        }
    return phases
