"""The main job's shape probes: every output era through the real client, and an OpenAI-compatible server's own
shapes. Each probe returns rows (no printing here). Against the emulator each era gets its own worker
configuration, as a RunPod endpoint gets one worker-vllm version."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from harness.clients.openai import OpenAIClient
from harness.clients.runpod import RunPodClient
from harness.core.errors import HarnessError
from harness.core.errortext import one_line, timed_out
from harness.core.prompts import SMOKE_CHAT
from harness.core.shapes import extract
from harness.reporting.junit import JUnitCase
from harness.reporting.rows import ms

__all__ = ["ERA_CASES", "ProbeRow", "openai_shape_cases", "probe_case", "probe_cases"]


def _upstream() -> dict[str, Any]:
    """With DEVAI_VLLM_URL set (CI's system stage, and when cassettes are recorded) the OpenAI-route cases relay a
    real vLLM server (worker engine vllm): their output is vLLM's own, cut as worker-vllm cuts it."""
    url = os.environ.get("DEVAI_VLLM_URL")
    return {"engine": "vllm", "openai_base_url": url} if url else {}


# (label, worker options, job input, expected shape)
ERA_CASES: tuple[tuple[str, dict[str, Any], dict[str, Any], str], ...] = (
    ("native", {}, {"messages": SMOKE_CHAT, "sampling_params": {"max_tokens": 64}}, "vllm-native-tokens"),
    (
        "native stream n=2",
        {},
        {"prompt": "def rev(s):", "stream": True, "sampling_params": {"max_tokens": 64, "n": 2}},
        "vllm-native-tokens",
    ),
    ("era A", {"era": "era-a"}, {"prompt": "hi", "stream": True}, "era-a-text"),
    ("era B", {"era": "era-b"}, {"prompt": "hi", "stream": True}, "era-b-text-usage"),
    ("era C", {"era": "era-c"}, {"prompt": "hi", "stream": True}, "era-c-tokens"),
    (
        "openai chat",
        _upstream(),
        {"openai_route": "/v1/chat/completions", "openai_input": {"messages": SMOKE_CHAT}},
        "openai-chat-completion",
    ),
    (
        "openai completion",
        _upstream(),
        {"openai_route": "/v1/completions", "openai_input": {"prompt": "def f():"}},
        "openai-text-completion",
    ),
    (
        "openai stream raw (E)",
        _upstream(),
        {"openai_route": "/v1/chat/completions", "openai_input": {"messages": SMOKE_CHAT, "stream": True}},
        "openai-sse-events",
    ),
    (
        "openai stream dicts (E)",
        {"raw_openai_output": False, **_upstream()},
        {"openai_route": "/v1/chat/completions", "openai_input": {"messages": SMOKE_CHAT, "stream": True}},
        "openai-chunk-lists",
    ),
    (
        "openai stream (F)",
        {"openai_era": "F", **_upstream()},
        {"openai_route": "/v1/chat/completions", "openai_input": {"messages": SMOKE_CHAT, "stream": True}},
        "openai-sse-text",
    ),
    ("openai models", _upstream(), {"openai_route": "/v1/models"}, "openai-models"),
)


@dataclass(frozen=True, slots=True)
class ProbeRow:
    """One output-shape case: a :class:`~harness.reporting.rows.Row`."""

    label: str
    ok: bool
    shape: str
    detail: str
    delay_ms: int | None = None
    execution_ms: int | None = None

    COLUMNS: ClassVar[tuple[str, ...]] = ("case", "ok", "shape", "delay ms", "exec ms", "detail")
    SECTION: ClassVar[str | None] = "Output shapes"
    TERMINAL: ClassVar[bool] = True

    def cells(self) -> list[str]:
        ok = "PASS" if self.ok else "FAIL"
        return [self.label, ok, self.shape, ms(self.delay_ms), ms(self.execution_ms), self.detail]

    def listed(self) -> bool:
        return True

    def junit(self) -> JUnitCase | None:
        return JUnitCase("check.shapes", self.label, failure=None if self.ok else self.detail)


async def probe_case(
    rp: RunPodClient, label: str, job_input: dict[str, Any], expected: str | None, *, timeout: float
) -> ProbeRow:
    """Run one job and check its output. ``expected=None`` (a live endpoint) accepts any known shape."""
    return (await probe_cases(rp, [(label, job_input, expected)], timeout=timeout))[0][0]


async def probe_cases(
    rp: RunPodClient, cases: Sequence[tuple[str, dict[str, Any], str | None]], *, timeout: float
) -> tuple[list[ProbeRow], str | None]:
    """Each case's row, until one times out: then the rest are not asked (the reason is the second value)."""
    rows: list[ProbeRow] = []
    for label, job_input, expected in cases:
        try:
            job = await rp.run(job_input, timeout=timeout)
            got = extract(job.output)
        except HarnessError as exc:
            rows.append(ProbeRow(label, False, "-", one_line(exc)))
            if timed_out(exc):
                return rows, f"{len(cases) - len(rows)} case(s) not asked: {label} timed out"
            continue
        rows.append(_shape_row(label, got, expected, job))
    return rows, None


def _shape_row(label: str, got: Any, expected: str | None, job: Any) -> ProbeRow:
    ok = expected in (None, got.shape) and (bool(got.text) or bool(got.models))
    detail = f"{len(got.choices)} choice(s), {len(got.text)} chars" if got.choices else f"models {list(got.models)}"
    if expected not in (None, got.shape):
        detail = f"expected {expected}"
    if got.findings:
        detail += "; " + "; ".join(f.code for f in got.findings)
    if job.anomalies:
        ok = False
        detail += "; " + "; ".join(job.anomalies)
    return ProbeRow(label, ok, got.shape, detail, job.delay_time_ms, job.execution_time_ms)


async def openai_shape_cases(oa: OpenAIClient, model: str) -> tuple[list[ProbeRow], str | None]:
    """The OpenAI-compatible server's own shapes: /v1/models lists the model; a chat streams and a chat does not.
    After a request that timed out the rest are not asked."""
    rows = []
    try:
        models = await oa.models()
        listed = model in models
        rows.append(
            ProbeRow("models", listed, "openai-models", f"lists {models[:5]}" + ("" if listed else " (not ours)"))
        )
    except HarnessError as exc:
        rows.append(ProbeRow("models", False, "-", one_line(exc)))
        if timed_out(exc):
            return rows, "2 case(s) not asked: models timed out"
    for label, stream in (("chat stream", True), ("chat whole", False)):
        try:
            c = await oa.chat(SMOKE_CHAT, model=model, stream=stream, max_tokens=32)
        except HarnessError as exc:
            rows.append(ProbeRow(label, False, "-", one_line(exc)))
            if timed_out(exc):
                return rows, f"{3 - len(rows)} case(s) not asked: {label} timed out"
            continue
        shape = "openai-chat-chunks" if stream else "openai-chat-completion"
        detail = f"{len(c.text)} chars, finish {c.finish_reason}, usage {c.usage is not None}"
        if c.findings:
            detail += "; " + "; ".join(f.code for f in c.findings)
        rows.append(ProbeRow(label, bool(c.text or c.finish_reason), shape, detail))
    return rows, None
