"""What a stream of bytes amounts to: the stream accumulator both drivers feed (no I/O, no clock).

``feed(data, now)`` takes bytes as they arrive, with the time since the request was sent; ``finish(now)``
returns the :class:`Completion` or raises what went wrong. The accumulator owns the SSE events, TTFT and
every content gap (per choice), keep-alives and signals, usage, finish reasons, error events (raised at once
as :class:`StreamErrorEvent`), truncation (:class:`StreamTruncated`), bytes that are not SSE
(:class:`StreamProtocolError`) and the findings a stream earns (``sse-no-done``, ``sse-unterminated-event``).
``budget(now)`` says how long the driver may wait for the next bytes and which clock runs out first —
the stall timeout (no bytes at all), the TTFT budget (no content yet, keep-alives or not) or the total (the whole
stream; nothing extends it) — and ``stalled(budget, now)`` builds the error when it does. ``feed`` also checks the
total itself: a stream whose bytes never stop coming ends at its total as surely as a silent one.

A non-streamed reply goes through :func:`reply_completion`: it has no TTFT and no per-token timing.
"""

from __future__ import annotations

import codecs
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from harness.core.errors import (
    HarnessError,
    ProtocolError,
    ShapeError,
    StreamErrorEvent,
    StreamProtocolError,
    StreamStalled,
    StreamTruncated,
)
from harness.core.findings import Finding, Severity
from harness.core.jobs import worker_error
from harness.core.shapes import Extracted, Usage, extract
from harness.core.sse import DEFAULT_MAX_LINE, SSEComment, SSEEvent, SSEParser
from harness.core.timing import RequestTiming

__all__ = ["Budget", "Completion", "StreamAccumulator", "reply_completion"]


@dataclass(slots=True)
class Completion:
    text: str
    choices: tuple[str, ...]
    reasoning: tuple[str, ...]
    finish_reason: str | None
    usage: Usage | None
    model: str | None
    timing: RequestTiming
    findings: list[Finding] = field(default_factory=list)
    ids: tuple[str, ...] = ()  # distinct chunk/response ids, in order of arrival
    finish_reasons: tuple[str | None, ...] = ()
    raw: Any = None  # the non-streamed reply as parsed JSON (streams: None)


@dataclass(frozen=True, slots=True)
class Budget:
    """How long the driver may wait for the next bytes; ``kind`` is the clock that runs out: stall | ttft | total."""

    seconds: float
    kind: str


class StreamAccumulator:
    """``acc.headers(now)``, then ``acc.feed(data, now)`` per read, then ``acc.finish(now)``."""

    def __init__(
        self,
        where: str = "",
        *,
        name: str = "chat",
        stall_timeout_s: float = 30.0,
        ttft_timeout_s: float | None = None,
        total_timeout_s: float | None = None,
        on_delta: Callable[[str], None] | None = None,
        max_line: int = DEFAULT_MAX_LINE,
    ) -> None:
        self.where = where  # "POST /v1/chat/completions", for messages
        self.timing = RequestTiming(name=name)
        self.stall_timeout_s = stall_timeout_s
        self.ttft_timeout_s = ttft_timeout_s
        self.total_timeout_s = total_timeout_s
        self.findings: list[Finding] = []
        self._on_delta = on_delta
        self._parser = SSEParser(max_line=max_line)
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._chunks: list[dict[str, Any]] = []
        self._done = False
        self._head = b""
        self._records = 0
        self._last: dict[int, float] = {}  # the last content time of each choice

    @property
    def chunks(self) -> int:
        return len(self._chunks)

    def headers(self, now: float) -> None:
        self.timing.tt_headers = now

    def feed(self, data: bytes, now: float) -> None:
        if not data:
            return
        if self.total_timeout_s is not None and now > self.total_timeout_s:
            raise self.stalled(Budget(0.0, "total"), now)
        if self.timing.tt_ack is None:
            self.timing.tt_ack = now
        if not self._head:
            self._head = data[:80]
        self._apply(self._parser.feed(self._decoder.decode(data)), now)

    def budget(self, now: float) -> Budget:
        best = Budget(self.stall_timeout_s, "stall")
        if self.ttft_timeout_s is not None and self.timing.ttft is None:
            left = self.ttft_timeout_s - now
            if left <= best.seconds:
                best = Budget(max(0.0, left), "ttft")
        if self.total_timeout_s is not None and self.total_timeout_s - now < best.seconds:
            best = Budget(max(0.0, self.total_timeout_s - now), "total")
        return best

    def stalled(self, budget: Budget, now: float) -> StreamStalled:
        if budget.kind == "total":
            return StreamStalled(
                f"{self.where}: the stream was not over within its total deadline of {self.total_timeout_s:g} s "
                f"({self.timing.content_chunks} content chunk(s), {len(self.timing.keepalives)} keep-alive(s))",
                waited_s=now,
                budget="total",
            )
        if budget.kind == "ttft":
            return StreamStalled(
                f"{self.where}: no content within the TTFT budget of {self.ttft_timeout_s:g} s "
                f"({len(self.timing.keepalives)} keep-alive(s) meanwhile)",
                waited_s=now,
                budget="ttft",
            )
        return StreamStalled(
            f"{self.where}: no bytes for {self.stall_timeout_s:g} s (after {now:.1f} s, "
            f"{self.timing.content_chunks} content chunk(s))",
            waited_s=now,
            budget="stall",
        )

    def finish(self, now: float, *, model: str | None = None) -> Completion:
        """End of the body: the completion, or StreamTruncated / StreamProtocolError."""
        self._apply(self._parser.feed(self._decoder.decode(b"", final=True)), now)
        unterminated = self._parser.finish()
        if self._parser.truncated:
            self.findings.append(
                Finding(
                    "sse-unterminated-event",
                    "the last SSE event has no blank line after it",
                    "strict SSE clients drop such an event",
                    Severity.WARNING,
                )
            )
        self._apply(unterminated, now)
        if self.timing.e2e is None:
            self.timing.e2e = now
        if self._head and not self._records:
            raise StreamProtocolError(f"{self.where}: the reply is not an SSE stream (starts {self._head!r})")
        if not self._chunks:
            raise StreamTruncated(
                f"{self.where}: the stream ended without any chunk" + ("" if self._done else " or [DONE]")
            )
        got = _extract(self._chunks, self.where)
        if not self._done and not all(r is not None for r in got.finish_reasons or (None,)):
            raise StreamTruncated(
                f"{self.where}: the stream ended without [DONE] or a finish_reason after {len(self._chunks)} chunk(s)"
            )
        if not self._done:
            self.findings.append(Finding("sse-no-done", "stream ended without data: [DONE]", "", Severity.WARNING))
        ids = tuple(dict.fromkeys(str(c["id"]) for c in self._chunks if "id" in c))
        return _completion(got, self.timing, model, self.findings, ids)

    def _apply(self, records: list[SSEEvent | SSEComment], now: float) -> None:
        self._records += len(records)
        for rec in records:
            if isinstance(rec, SSEComment):
                self.timing.keepalives.append(now)
            elif rec.is_done:
                self._done = True
                if self.timing.e2e is None:
                    self.timing.e2e = now  # the answer ends at [DONE], not when the server closes the body
            else:
                self._event(rec, now)

    def _event(self, rec: SSEEvent, now: float) -> None:
        try:
            data = json.loads(rec.data)
        except ValueError:
            raise StreamProtocolError(f"{self.where}: SSE event is not JSON: {rec.data[:80]!r}") from None
        if not isinstance(data, dict):
            raise StreamProtocolError(f"{self.where}: SSE event is not an object: {rec.data[:80]!r}")
        if rec.event == "error" or data.get("type") == "error" or ("error" in data and "choices" not in data):
            err = worker_error(data)
            raise StreamErrorEvent(err.message, code=err.code, error_type=err.error_type, raw=data)
        timing = self.timing
        if "choices" not in data:
            timing.signals.append((now, str(data.get("type") or data.get("object") or "event")))
            return
        self._chunks.append(data)
        if timing.request_id is None and isinstance(data.get("id"), str):
            timing.request_id = data["id"]
        first_choice = ""
        carried = False
        for pos, c in enumerate(data.get("choices") or ()):
            if not isinstance(c, dict):
                continue
            raw_index = c.get("index")
            index = raw_index if isinstance(raw_index, int) and 0 <= raw_index <= 1024 else pos
            timing.choices = max(timing.choices, index + 1)
            delta = c.get("delta")
            part: dict[str, Any] = delta if isinstance(delta, dict) else c
            content = str(part.get("content") or part.get("text") or "")
            if (part.get("reasoning_content") or part.get("reasoning")) and timing.first_reasoning is None:
                timing.first_reasoning = now
            if not content:
                continue
            carried = True
            if index in self._last:
                timing.gaps.append(now - self._last[index])
            self._last[index] = now
            if index == 0:
                first_choice += content
        if carried:
            timing.content_chunks += 1
            if timing.ttft is None:
                timing.ttft = now
            timing.last_content = now
            if self._on_delta is not None and first_choice:
                self._on_delta(first_choice)


def _extract(value: Any, where: str, error: type[HarnessError] = StreamProtocolError) -> Extracted:
    try:
        return extract(value)
    except ShapeError as exc:
        raise error(f"{where}: {exc}") from None


def _completion(
    got: Extracted, timing: RequestTiming, model: str | None, findings: list[Finding], ids: tuple[str, ...]
) -> Completion:
    timing.finish_reason = got.finish_reason
    timing.choices = max(timing.choices, len(got.choices), 1)
    if got.usage is not None:
        timing.input_tokens, timing.output_tokens = got.usage.input_tokens, got.usage.output_tokens
    if timing.request_id is None and ids:
        timing.request_id = ids[0]
    return Completion(
        text=got.text,
        choices=got.choices,
        reasoning=got.reasoning,
        finish_reason=got.finish_reason,
        usage=got.usage,
        model=model,
        timing=timing,
        findings=[*findings, *got.findings],
        ids=ids,
        finish_reasons=got.finish_reasons,
    )


def reply_completion(reply: Any, timing: RequestTiming, *, where: str = "", model: str | None = None) -> Completion:
    """A non-streamed reply (the parsed JSON). ``timing`` has e2e set by the driver; TTFT and per-token
    numbers stay None: a whole reply says nothing about when its first token was made."""
    timing.streamed = False
    got = _extract(reply, where, ProtocolError)
    ids = (str(reply["id"]),) if isinstance(reply, dict) and isinstance(reply.get("id"), str) else ()
    done = _completion(got, timing, model, [], ids)
    done.raw = reply
    return done
