"""Per-phase numbers, accumulated in one pass over the records, with each tool's convention named
(docs/metrics.md):

* TTFT — first non-empty content (GuideLLM/llm-load-test); ``tt_ack`` — first line of any kind;
* ``tpot_vllm`` = (e2e - TTFT) / (output tokens - 1)   (vLLM bench TPOT = AIPerf ITL);
* ``itl_guidellm`` = (last token - first token) / (output tokens - 1) — GuideLLM calls this "ITL";
* ``icl_aiperf`` = every gap between chunks, pooled (AIPerf inter-chunk latency; vLLM's ITL samples);
* ``output_tokens_per_s`` = a request's output tokens over its e2e (streamed or not).
Percentiles are linear-interpolated (numpy's default) and always reported with their counts. Columns hold
floats, not records: a report over 100,000 requests keeps a few arrays per phase. The pooled chunk gaps
(64 per stream) are kept exactly up to 100,000 values, then as a uniform random sample of that size (the
count stays exact; the summary says ``sampled``).
"""

from __future__ import annotations

import math
import random
from array import array
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from harness.core.percentiles import percentiles
from harness.load.records import LoadRecord

__all__ = ["PhaseStats", "Sample", "percentiles", "summarize"]

RESERVOIR = 100_000
_MAX_EXAMPLES = 20


class Sample:
    """Floats, exact up to ``limit``; beyond it a uniform reservoir (Li's algorithm L: random numbers only where a
    value is kept, so millions of chunk gaps cost little more than the first 100,000) with an exact count."""

    def __init__(self, limit: int = RESERVOIR, seed: int = 0) -> None:
        self.values = array("d")
        self.count = 0
        self.limit = limit
        self._rng = random.Random(seed)
        self._w = 1.0
        self._next = 0  # the (1-based) count at which the next value is kept, once the reservoir is full

    def add(self, value: float) -> None:
        self.extend((value,))

    def extend(self, values: Iterable[float]) -> None:
        batch = values if isinstance(values, (list, tuple)) else list(values)
        room = self.limit - len(self.values)
        if room > 0:
            self.values.extend(batch[:room])
            self.count += min(room, len(batch))
            batch = batch[room:]
            if len(self.values) == self.limit:
                self._skip()
        start = self.count
        while batch and self._next <= start + len(batch):
            self.values[self._rng.randrange(self.limit)] = batch[self._next - start - 1]
            self._skip()
        self.count = start + len(batch)

    def _skip(self) -> None:
        self._w *= math.exp(math.log(self._rng.random() or 1e-300) / self.limit)
        gap = math.floor(math.log(self._rng.random() or 1e-300) / math.log1p(-self._w)) if self._w < 1 else 0
        self._next = max(self._next, self.count) + gap + 1

    def summary(self) -> dict[str, Any]:
        out = percentiles(self.values)
        out["count"] = self.count
        if self.count > len(self.values):
            out["sampled"] = len(self.values)
        return out


def _num(v: Any) -> float | None:
    if not isinstance(v, (int, float)) or isinstance(v, bool):
        return None
    try:
        f = float(v)
    except OverflowError:  # an int past a float's range
        return None
    return f if math.isfinite(f) else None


def tpot(e2e: float | None, ttft: float | None, tokens: float | None) -> float | None:
    if e2e is None or ttft is None or not tokens or tokens < 2:
        return None
    return (e2e - ttft) / (tokens - 1)


@dataclass(slots=True)
class PhaseStats:
    """Everything a report says about one phase (cold, hot, c8, r20, stream, chat ...)."""

    phase: str
    label: str = ""
    requests: int = 0  # finished ones; a request cut by the run's end counts in ``cut`` only
    cut: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    error_messages: dict[str, str] = field(default_factory=dict)  # the first message seen per cause
    confirmed: int = 0
    mislabelled: list[str] = field(default_factory=list)
    anomalies: Counter[str] = field(default_factory=Counter)  # numbers the endpoint sent that were no numbers
    first_start: float = math.inf
    last_end: float = -math.inf
    load: float = 0.0  # users (closed loop) or arrivals/s (open loop)
    e2e: array[float] = field(default_factory=lambda: array("d"))
    delay_ms: array[float] = field(default_factory=lambda: array("d"))
    execution_ms: array[float] = field(default_factory=lambda: array("d"))
    ttft: array[float] = field(default_factory=lambda: array("d"))
    tt_ack: array[float] = field(default_factory=lambda: array("d"))
    tpot: array[float] = field(default_factory=lambda: array("d"))
    itl: array[float] = field(default_factory=lambda: array("d"))
    output_tokens: array[float] = field(default_factory=lambda: array("d"))
    tokens_per_s: array[float] = field(default_factory=lambda: array("d"))
    icl: Sample = field(default_factory=Sample)

    def add(self, r: Mapping[str, Any]) -> None:
        if r.get("status") == "cut":  # in flight when the run ended: neither an answer nor a failure
            self.cut += 1
            return
        self.requests += 1
        self.label = self.label or str(r.get("label") or "")
        start, e2e = _num(r.get("start_unix")) or 0.0, _num(r.get("e2e_s"))
        self.first_start = min(self.first_start, start)
        self.last_end = max(self.last_end, start + (e2e or 0.0))
        self.load = self.load or _num(r.get("concurrency")) or _num(r.get("rate")) or 0.0
        for said in r.get("anomalies") or ():
            if said in self.anomalies or len(self.anomalies) < _MAX_EXAMPLES:
                self.anomalies[said] += 1
        if r.get("confirmed") is True:
            self.confirmed += 1
        elif r.get("confirmed") is False and len(self.mislabelled) < _MAX_EXAMPLES:
            self.mislabelled.append(str(r.get("evidence") or ""))
        if r.get("status") != "ok":
            cause = str(r.get("error") or "unknown")
            self.errors[cause] += 1
            if cause not in self.error_messages and r.get("error_message"):
                self.error_messages[cause] = str(r["error_message"])
            return
        ttft, tokens = _num(r.get("ttft_s")), _num(r.get("output_tokens"))
        gaps = r.get("gaps_s") or []
        for column, value in (
            (self.e2e, e2e),
            (self.delay_ms, _num(r.get("delay_ms"))),
            (self.execution_ms, _num(r.get("execution_ms"))),
            (self.ttft, ttft),
            (self.tt_ack, _num(r.get("tt_ack_s"))),
            (self.tpot, tpot(e2e, ttft, tokens)),
            (
                self.itl,
                math.fsum(gaps) / (tokens - 1) if ttft is not None and gaps and tokens and tokens >= 2 else None,
            ),
            (self.output_tokens, tokens),
            (self.tokens_per_s, tokens / e2e if tokens and e2e else None),
        ):
            if value is not None:
                column.append(value)
        self.icl.extend(gaps)

    @property
    def ok(self) -> int:
        return self.requests - sum(self.errors.values())

    def summary(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "requests": self.requests,
            "cut": self.cut,
            "errors": dict(self.errors),
            "error_messages": self.error_messages,
            "confirmed": self.confirmed,
            "mislabelled": self.mislabelled,
            "anomalies": dict(self.anomalies),
            "e2e_s": percentiles(self.e2e),
            "delay_ms": percentiles(self.delay_ms),
            "execution_ms": percentiles(self.execution_ms),
            "ttft_s": percentiles(self.ttft),
            "tt_ack_s": percentiles(self.tt_ack),
            "tpot_vllm_s": percentiles(self.tpot),
            "itl_guidellm_s": percentiles(self.itl),
            "icl_aiperf_s": self.icl.summary(),
            "output_tokens": percentiles(self.output_tokens),
            "output_tokens_per_s": percentiles(self.tokens_per_s),
        }


_FIELDS = tuple(f.name for f in fields(LoadRecord))


def as_mapping(record: LoadRecord | Mapping[str, Any]) -> Mapping[str, Any]:
    return record if isinstance(record, Mapping) else {f: getattr(record, f) for f in _FIELDS}


def summarize(records: Iterable[LoadRecord | Mapping[str, Any]]) -> dict[str, Any]:
    """{phase: {count, errors by cause, confirmed, e2e/delay/execution/ttft/... percentiles}}."""
    phases: dict[str, PhaseStats] = {}
    for record in records:
        r = as_mapping(record)
        phase = str(r.get("phase"))
        (phases.get(phase) or phases.setdefault(phase, PhaseStats(phase))).add(r)
    return {name: stats.summary() for name, stats in phases.items()}
