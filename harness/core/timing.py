"""One timing record per request, filled as the reply arrives, fired once (pytest report, locust).

Times are seconds from the moment the request was sent, on the client's clock. Names follow the
tools they come from, side by side, because the same word means different things across tools
(docs/metrics.md): ``tt_ack`` is the first SSE line of any kind (llm-load-test), ``ttft`` the first
non-empty content (reasoning deltas are timed apart), ``gaps`` every interval between consecutive
content-bearing chunks OF THE SAME CHOICE (vLLM's pooled ITL samples; TTFT excluded, unlike llmperf).
Token counts come from the server's ``usage`` only; without it they stay None (no tokenizer guesswork).

A non-streamed reply has no TTFT and no per-token timing: those stay None (never 0.0, never the total
time); it still has e2e, tokens and tokens per second. With ``n > 1`` the server's ``completion_tokens``
counts every choice, so per-token numbers divide by the choice count.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["RequestTiming"]


@dataclass(slots=True)
class RequestTiming:
    name: str = ""
    phase: str = ""
    streamed: bool = True
    tt_headers: float | None = None
    tt_ack: float | None = None
    ttft: float | None = None
    first_reasoning: float | None = None
    last_content: float | None = None
    e2e: float | None = None
    gaps: list[float] = field(default_factory=list)
    keepalives: list[float] = field(default_factory=list)  # offsets of ": keep-alive" comments
    signals: list[tuple[float, str]] = field(default_factory=list)  # non-content events, e.g. model_loading
    content_chunks: int = 0  # chunks that carried content, every choice together
    choices: int = 1  # n: how many choices the reply carried
    input_tokens: int | None = None
    output_tokens: int | None = None  # the server's completion_tokens: every choice together
    finish_reason: str | None = None
    status: str = "ok"  # ok | error
    error: str | None = None
    queue_ms: int | None = None  # RunPod delayTime
    execution_ms: int | None = None  # RunPod executionTime
    request_id: str | None = None  # the server's id for the answer (completion id): finds it in the server's logs

    @property
    def tokens_per_choice(self) -> float | None:
        if not self.output_tokens:
            return None
        return self.output_tokens / max(1, self.choices)

    @property
    def tpot(self) -> float | None:
        """vLLM bench TPOT: (e2e - TTFT) / (output tokens of one choice - 1). Streams only."""
        per = self.tokens_per_choice
        if not self.streamed or self.e2e is None or self.ttft is None or per is None or per < 2:
            return None
        return (self.e2e - self.ttft) / (per - 1)

    @property
    def itl_guidellm(self) -> float | None:
        """GuideLLM "ITL": (last token - first token) / (output tokens - 1) — vLLM's TPOT without the tail."""
        per = self.tokens_per_choice
        if not self.streamed or self.last_content is None or self.ttft is None or per is None or per < 2:
            return None
        return (self.last_content - self.ttft) / (per - 1)

    @property
    def output_tokens_per_s(self) -> float | None:
        """The whole request's output rate: every choice's tokens over the end-to-end time."""
        if not self.output_tokens or not self.e2e:
            return None
        return self.output_tokens / self.e2e

    @property
    def decode_tokens_per_s(self) -> float | None:
        """Decode speed of one stream after its first token (1 / TPOT)."""
        tpot = self.tpot
        return 1 / tpot if tpot else None

    def failed(self, exc: BaseException, elapsed: float) -> None:
        """Mark the request failed; the timing so far travels with the error as a note."""
        self.status, self.error = "error", type(exc).__name__
        self.e2e = elapsed
        exc.add_note(f"timing: {self.to_json()}")

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data.update(
            tpot=self.tpot,
            itl_guidellm=self.itl_guidellm,
            output_tokens_per_s=self.output_tokens_per_s,
            decode_tokens_per_s=self.decode_tokens_per_s,
        )
        return data
