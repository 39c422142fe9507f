"""One timing record per request, filled as the reply arrives, fired once (pytest report, locust).

Times are seconds from the moment the request was sent, on the client's clock. Names follow the
tools they come from, side by side, because the same word means different things across tools
(../shared/reference/load-testing.md): ``tt_ack`` is the first SSE line of any kind (llm-load-test),
``ttft`` the first non-empty content (reasoning deltas are timed apart), ``gaps`` every interval between
consecutive content-bearing chunks (vLLM's pooled ITL samples; TTFT excluded, unlike llmperf).
Token counts come from the server's ``usage`` only; without it they stay None (no tokenizer guesswork).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["RequestTiming"]


@dataclass(slots=True)
class RequestTiming:
    name: str = ""
    phase: str = ""
    tt_headers: float | None = None
    tt_ack: float | None = None
    ttft: float | None = None
    first_reasoning: float | None = None
    last_content: float | None = None
    e2e: float | None = None
    gaps: list[float] = field(default_factory=list)
    keepalives: list[float] = field(default_factory=list)  # offsets of ": keep-alive" comments
    signals: list[tuple[float, str]] = field(default_factory=list)  # non-content events, e.g. model_loading
    content_chunks: int = 0
    input_tokens: int | None = None
    output_tokens: int | None = None
    finish_reason: str | None = None
    status: str = "ok"  # ok | error
    error: str | None = None
    queue_ms: int | None = None  # RunPod delayTime
    execution_ms: int | None = None  # RunPod executionTime
    request_id: str | None = None  # the server's id for the answer (completion id): finds it in the server's logs

    @property
    def tpot(self) -> float | None:
        """vLLM bench TPOT: (e2e - TTFT) / (output tokens - 1)."""
        if self.e2e is None or self.ttft is None or not self.output_tokens or self.output_tokens < 2:
            return None
        return (self.e2e - self.ttft) / (self.output_tokens - 1)

    @property
    def itl_guidellm(self) -> float | None:
        """GuideLLM "ITL": (last token - first token) / (output tokens - 1) — vLLM's TPOT without the tail."""
        if self.last_content is None or self.ttft is None or not self.output_tokens or self.output_tokens < 2:
            return None
        return (self.last_content - self.ttft) / (self.output_tokens - 1)

    @property
    def output_tokens_per_s(self) -> float | None:
        """Decode speed of this stream after its first token."""
        tpot = self.tpot
        return 1 / tpot if tpot else None

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data.update(tpot=self.tpot, itl_guidellm=self.itl_guidellm)
        return data
