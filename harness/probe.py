"""The main job's probes: every output era through the real client, and a cold/hot latency probe.

Each probe returns rows (no printing here); the CLI renders them. Against the emulator each era gets
its own worker configuration, as a RunPod endpoint gets one worker-vllm version."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from harness.errors import HarnessError
from harness.runpod import RunPodClient
from harness.shapes import extract

__all__ = ["ERA_CASES", "LatencyRow", "ProbeRow", "latency_probe", "probe_case"]

CHAT = [{"role": "user", "content": "Write a Python function that reverses a string."}]

# (label, worker options, job input, expected shape)
ERA_CASES: tuple[tuple[str, dict[str, Any], dict[str, Any], str], ...] = (
    ("native", {}, {"messages": CHAT, "sampling_params": {"max_tokens": 64}}, "vllm-native-tokens"),
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
        {},
        {"openai_route": "/v1/chat/completions", "openai_input": {"messages": CHAT}},
        "openai-chat-completion",
    ),
    (
        "openai completion",
        {},
        {"openai_route": "/v1/completions", "openai_input": {"prompt": "def f():"}},
        "openai-text-completion",
    ),
    (
        "openai stream raw (E)",
        {},
        {"openai_route": "/v1/chat/completions", "openai_input": {"messages": CHAT, "stream": True}},
        "openai-sse-events",
    ),
    (
        "openai stream dicts (E)",
        {"raw_openai_output": False},
        {"openai_route": "/v1/chat/completions", "openai_input": {"messages": CHAT, "stream": True}},
        "openai-chunk-lists",
    ),
    (
        "openai stream (F)",
        {"openai_era": "F"},
        {"openai_route": "/v1/chat/completions", "openai_input": {"messages": CHAT, "stream": True}},
        "openai-sse-text",
    ),
    ("openai models", {}, {"openai_route": "/v1/models"}, "openai-models"),
)


@dataclass(frozen=True, slots=True)
class ProbeRow:
    label: str
    ok: bool
    shape: str
    detail: str
    delay_ms: int | None = None
    execution_ms: int | None = None


@dataclass(frozen=True, slots=True)
class LatencyRow:
    phase: str
    e2e_ms: float
    delay_ms: int | None
    execution_ms: int | None


async def probe_case(
    rp: RunPodClient, label: str, job_input: dict[str, Any], expected: str | None, *, timeout: float
) -> ProbeRow:
    """Run one job and check its output. ``expected=None`` (a live endpoint) accepts any known shape."""
    try:
        job = await rp.run(job_input, timeout=timeout)
        got = extract(job.output)
    except HarnessError as exc:
        return ProbeRow(label, False, "-", f"{type(exc).__name__}: {exc}")
    ok = expected in (None, got.shape) and (bool(got.text) or bool(got.models))
    detail = f"{len(got.choices)} choice(s), {len(got.text)} chars" if got.choices else f"models {list(got.models)}"
    if expected not in (None, got.shape):
        detail = f"expected {expected}"
    if got.findings:
        detail += "; " + "; ".join(f.code for f in got.findings)
    return ProbeRow(label, ok, got.shape, detail, job.delay_time_ms, job.execution_time_ms)


async def latency_probe(
    rp: RunPodClient, *, hot: int = 3, timeout: float, progress: Callable[[str], None] = lambda _: None
) -> list[LatencyRow]:
    """The first request on a scaled-to-zero endpoint is cold; back-to-back ones after it are hot."""
    rows = []
    job_input = {"messages": CHAT, "sampling_params": {"max_tokens": 32}}
    for i in range(1 + hot):
        phase = "cold" if i == 0 else "hot"
        progress(f"latency: {phase} request {i + 1}/{1 + hot}")
        t0 = time.perf_counter()
        job = await rp.run(job_input, timeout=timeout)
        rows.append(LatencyRow(phase, (time.perf_counter() - t0) * 1000, job.delay_time_ms, job.execution_time_ms))
    return rows
