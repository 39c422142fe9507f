"""The main job's probes: every output era through the real client, and a cold/hot latency probe.

Each probe returns rows (no printing here); the CLI renders them. Against the emulator each era gets
its own worker configuration, as a RunPod endpoint gets one worker-vllm version."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.clients.openai import OpenAIClient
from harness.clients.runpod import RunPodClient
from harness.core.errors import HarnessError
from harness.core.shapes import extract
from harness.load.phases import PhasePlan, confirm
from harness.load.records import LoadRecord, RecordWriter

__all__ = [
    "ERA_CASES",
    "LatencyRow",
    "ProbeRow",
    "latency_probe",
    "openai_shape_cases",
    "openai_timing_probe",
    "probe_case",
]

CHAT = [{"role": "user", "content": "Write a Python function that reverses a string."}]


def _upstream() -> dict[str, Any]:
    """With DEVAI_VLLM_URL set (CI's system stage, and when cassettes are recorded) the OpenAI-route cases relay a
    real vLLM server (worker engine vllm): their output is vLLM's own, cut as worker-vllm cuts it."""
    url = os.environ.get("DEVAI_VLLM_URL")
    return {"engine": "vllm", "openai_base_url": url} if url else {}


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
        _upstream(),
        {"openai_route": "/v1/chat/completions", "openai_input": {"messages": CHAT}},
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
        {"openai_route": "/v1/chat/completions", "openai_input": {"messages": CHAT, "stream": True}},
        "openai-sse-events",
    ),
    (
        "openai stream dicts (E)",
        {"raw_openai_output": False, **_upstream()},
        {"openai_route": "/v1/chat/completions", "openai_input": {"messages": CHAT, "stream": True}},
        "openai-chunk-lists",
    ),
    (
        "openai stream (F)",
        {"openai_era": "F", **_upstream()},
        {"openai_route": "/v1/chat/completions", "openai_input": {"messages": CHAT, "stream": True}},
        "openai-sse-text",
    ),
    ("openai models", _upstream(), {"openai_route": "/v1/models"}, "openai-models"),
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
    confirmed: bool | None = None


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
    rp: RunPodClient,
    *,
    idle_timeout_s: float,
    timeout: float,
    run_dir: str | Path | None = None,
    hot: int = 2,
    warm: int = 2,
    progress: Callable[[str], None] = lambda _: None,
) -> list[LatencyRow]:
    """Cold, hot and warm requests by the phase plan (harness.load.phases), each label checked against
    /health just before it. The first step's wait is skipped on an endpoint already at zero workers.
    With ``run_dir``, every request is also written as a LoadRecord for ``devai-harness report``."""
    writer = RecordWriter(run_dir) if run_dir is not None else None
    steps = PhasePlan(idle_timeout_s=idle_timeout_s, rounds=1, warm=warm, hot=hot).steps()
    rows: list[LatencyRow] = []
    job_input = {"messages": CHAT, "sampling_params": {"max_tokens": 32}}
    last_end: float | None = None
    try:
        for i, step in enumerate(steps, 1):
            health = await rp.health()
            if i > 1 or health.workers.total > 0:
                progress(f"latency: waiting {step.wait_s:g} s before a {step.phase} request")
                await rp.clock.sleep(step.wait_s)
                health = await rp.health()
            progress(f"latency: {step.phase} request {i}/{len(steps)}")
            workers = {k: getattr(health.workers, k) for k in ("idle", "running", "initializing", "unhealthy")}
            gap = None if last_end is None else time.monotonic() - last_end
            start_unix, t0 = time.time(), time.perf_counter()
            job = await rp.run(job_input, timeout=timeout)
            e2e = time.perf_counter() - t0
            last_end = time.monotonic()
            confirmed, evidence = confirm(step.phase, workers, gap, hot_gap_s=0.5)
            rows.append(LatencyRow(step.phase, e2e * 1000, job.delay_time_ms, job.execution_time_ms, confirmed))
            if writer is not None:
                writer.write(
                    LoadRecord(
                        process=writer.pid,
                        seq=writer.next_seq(),
                        label="latency",
                        phase=step.phase,
                        start_unix=start_unix,
                        e2e_s=e2e,
                        delay_ms=job.delay_time_ms,
                        execution_ms=job.execution_time_ms,
                        workers_before=workers,
                        confirmed=confirmed,
                        evidence=f"{evidence}; delayTime {job.delay_time_ms} ms",
                        worker_id=job.worker_id,
                    )
                )
    finally:
        if writer is not None:
            writer.close()
    return rows


async def openai_shape_cases(oa: OpenAIClient, model: str) -> list[ProbeRow]:
    """The OpenAI-compatible server's own shapes: /v1/models lists the model; a chat streams and a chat does not."""
    rows = []
    try:
        models = await oa.models()
        listed = model in models
        rows.append(
            ProbeRow("models", listed, "openai-models", f"lists {models[:5]}" + ("" if listed else " (not ours)"))
        )
    except HarnessError as exc:
        rows.append(ProbeRow("models", False, "-", f"{type(exc).__name__}: {exc}"))
    for label, stream in (("chat stream", True), ("chat whole", False)):
        try:
            c = await oa.chat(CHAT, model=model, stream=stream, max_tokens=32)
        except HarnessError as exc:
            rows.append(ProbeRow(label, False, "-", f"{type(exc).__name__}: {exc}"))
            continue
        shape = "openai-chat-chunks" if stream else "openai-chat-completion"
        detail = f"{len(c.text)} chars, finish {c.finish_reason}, usage {c.usage is not None}"
        if c.findings:
            detail += "; " + "; ".join(f.code for f in c.findings)
        rows.append(ProbeRow(label, bool(c.text or c.finish_reason), shape, detail))
    return rows


async def openai_timing_probe(
    oa: OpenAIClient,
    model: str,
    *,
    run_dir: str | Path,
    streams: int = 5,
    whole: int = 2,
    progress: Callable[[str], None] = lambda _: None,
) -> list[LoadRecord]:
    """Sequential streamed and whole chats, each written as a LoadRecord (TTFT, gaps, tokens, errors by cause):
    the server's timing at concurrency 1 (the load tests measure it under load)."""
    records = []
    with RecordWriter(run_dir) as writer:
        for i in range(streams + whole):
            stream = i < streams
            progress(f"timing: {'stream' if stream else 'whole'} request {i + 1}/{streams + whole}")
            rec = LoadRecord(
                process=writer.pid,
                seq=writer.next_seq(),
                label="streaming" if stream else "chat",
                phase="stream" if stream else "chat",
                start_unix=time.time(),
                concurrency=1,
            )
            try:
                t = (await oa.chat(CHAT, model=model, stream=stream, max_tokens=64)).timing
                rec.e2e_s, rec.ttft_s, rec.tt_ack_s, rec.gaps_s = t.e2e, t.ttft, t.tt_ack, t.gaps
                rec.input_tokens, rec.output_tokens, rec.request_id = t.input_tokens, t.output_tokens, t.request_id
            except HarnessError as exc:
                rec.status, rec.error, rec.error_message = "error", type(exc).__name__, str(exc).splitlines()[0][:300]
            writer.write(rec)
            records.append(rec)
    return records
