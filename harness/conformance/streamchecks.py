"""Streaming conformance checks: field report 003's list, as small functions raising Findings.

Each takes what a client observed (a Completion, or the exception it raised) and thresholds from the
caller, and raises a :class:`~harness.core.findings.Finding` when the server falls short. The same checks run
in scenarios/test_streaming.py, from the CLI and in load tests.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

from harness.clients.openai import Completion
from harness.core.errors import StatusError, StreamErrorEvent, StreamStalled
from harness.core.findings import Finding, Severity

__all__ = [
    "check_error_event_has_code",
    "check_first_chunk_within",
    "check_keepalive_interval",
    "check_loading_signalled",
    "check_model_listed",
    "check_server_enforces_timeout",
    "check_streams_not_mixed",
    "check_warmup",
]

Outcome = Completion | BaseException


def check_first_chunk_within(c: Completion, budget_s: float) -> None:
    ttft = c.timing.ttft
    if ttft is None or ttft > budget_s:
        got = "never" if ttft is None else f"after {ttft:.2f} s"
        raise Finding("ttft-over-budget", "first content chunk too late", f"{got}; budget {budget_s:g} s")


def _alive_marks(c: Completion) -> list[float]:
    t = c.timing
    marks = [0.0, *(x for x in (t.tt_headers, t.tt_ack) if x is not None), *t.keepalives, *(s for s, _ in t.signals)]
    end = t.ttft if t.ttft is not None else t.e2e
    if end is not None:
        marks.append(end)
    return sorted(m for m in marks if end is None or m <= end)


def check_keepalive_interval(c: Completion, max_gap_s: float) -> None:
    """While waiting for the first content, the server says something at least every ``max_gap_s``."""
    marks = _alive_marks(c)
    gaps = [b - a for a, b in itertools.pairwise(marks)]
    worst = max(gaps, default=0.0)
    if worst > max_gap_s:
        raise Finding(
            "keepalive-gap",
            "silent for too long before the first content",
            f"{worst:.2f} s without a byte (keep-alive comments: {len(c.timing.keepalives)}); "
            f"at most {max_gap_s:g} s expected",
            Severity.WARNING,
        )


def check_loading_signalled(outcome: Outcome, within_s: float) -> None:
    """A server that is not ready says so — an event, a comment, or 503 with Retry-After — not silence."""
    if isinstance(outcome, StatusError) and outcome.status_code == 503:
        if outcome.retry_after is None:
            raise Finding(
                "loading-503-without-retry-after",
                "503 while loading, but no Retry-After",
                "clients cannot tell when to come back",
            )
        return
    if isinstance(outcome, StreamStalled):
        raise Finding(
            "silent-loading",
            "the stream went silent",
            f"no content, event or keep-alive for {outcome.waited_s:.1f} s: {outcome}",
        )
    if isinstance(outcome, BaseException):
        return  # other failures are other checks' business
    t = outcome.timing
    first_sign = min(
        [*t.keepalives, *(s for s, _ in t.signals), *([t.ttft] if t.ttft is not None else [])], default=None
    )
    if first_sign is None or first_sign > within_s:
        raise Finding(
            "silent-loading",
            "nothing said while not ready",
            f"first sign of life after {first_sign if first_sign is not None else 'never'} s; "
            f"expected within {within_s:g} s",
        )


def check_error_event_has_code(outcome: Outcome) -> None:
    if isinstance(outcome, StreamErrorEvent) and outcome.code is None:
        raise Finding("error-without-code", "error event without a code", str(outcome))


def check_server_enforces_timeout(outcome: Outcome) -> None:
    """A long wait must end on the server's side with a coded error, before the client gives up."""
    if isinstance(outcome, StreamStalled):
        raise Finding(
            "no-server-timeout", "the client had to give up first", f"the server never ended the wait itself: {outcome}"
        )
    check_error_event_has_code(outcome)


def check_warmup(statuses: dict[str, int], *, ready: bool | None = None) -> Finding | None:
    """A warm-up endpoint, if the server offers one, must work (a 5xx raises). None offered is information,
    returned (not raised), with advice from what the server showed: ``ready`` is whether its /health said ready
    before any request (None: it has no /health)."""
    broken = {p: s for p, s in statuses.items() if s >= 500}
    if broken:
        raise Finding("warmup-broken", "the warm-up endpoint fails", str(broken))
    if any(200 <= s < 300 for s in statuses.values()):
        return None
    if ready:
        advice = "none is needed: the model is loaded before /health says ready (as vLLM does)"
    elif ready is False:
        advice = "/health did not say ready before the first request: that request may pay for loading the model"
    else:
        advice = "the server has no /health either: whether the first request pays for loading the model is unknown"
    return Finding("no-warmup", "no warm-up endpoint", f"tried {', '.join(statuses)}: {advice}", Severity.INFO)


def check_model_listed(models: Sequence[str], model: str) -> None:
    if model not in models:
        shown = ", ".join(models[:10]) or "nothing"
        raise Finding("model-not-listed", f"/v1/models does not list {model!r}", f"it lists {shown}")


def check_streams_not_mixed(results: Sequence[tuple[str, Completion]]) -> None:
    """Concurrent streams: each got its own answer (``marker`` in its text when the server echoes) and one
    chunk id of its own."""
    seen: dict[str, int] = {}
    for i, (marker, c) in enumerate(results):
        if marker and marker not in c.text:
            raise Finding("streams-mixed", f"stream {i} lost its own answer", f"{marker!r} not in {c.text[:80]!r}")
        for other, _ in results:
            if other and other != marker and other in c.text:
                raise Finding("streams-mixed", f"stream {i} holds another stream's text", f"found {other!r}")
        if len(c.ids) > 1:
            raise Finding("streams-mixed", f"stream {i} carries several chunk ids", ", ".join(c.ids[:5]))
        for cid in c.ids:
            if cid in seen:
                raise Finding("streams-mixed", f"streams {seen[cid]} and {i} share chunk id {cid}")
            seen[cid] = i
