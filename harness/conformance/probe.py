"""The main job's probes: every output era through the real client, and a cold/hot latency probe.

Each probe returns rows (no printing here); the CLI renders them. Against the emulator each era gets
its own worker configuration, as a RunPod endpoint gets one worker-vllm version."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.clients.openai import OpenAIClient
from harness.clients.runpod import RunPodClient
from harness.core.errors import DiagnosedTimeout, HarnessError, RequestTimeout, StreamStalled
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
    "probe_cases",
    "timed_out",
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


def timed_out(exc: BaseException) -> bool:
    """The endpoint did not answer in time: asking it more would only wait out more deadlines."""
    return isinstance(exc, (RequestTimeout, StreamStalled, DiagnosedTimeout))


def _said(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text}"[:400]


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
            rows.append(ProbeRow(label, False, "-", _said(exc)))
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


async def latency_probe(
    rp: RunPodClient,
    *,
    idle_timeout_s: float,
    timeout: float,
    run_dir: str | Path | None = None,
    hot: int = 2,
    warm: int = 2,
    progress: Callable[[str], None] = lambda _: None,
) -> tuple[list[LatencyRow], str | None]:
    """Cold, hot and warm requests by the phase plan (harness.load.phases), each label checked against
    /health just before it. The first step's wait is skipped on an endpoint already at zero workers.
    With ``run_dir``, every request is also written as a LoadRecord for ``devai-harness report`` (its begun
    marker before it is sent, so a run killed mid-request shows it lost). A request that fails ends the probe: the
    rows so far, and what the failure said."""
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
            rec = None
            if writer is not None:
                seq = writer.next_seq()  # begun before it is sent
                rec = LoadRecord(writer.pid, seq, "latency", step.phase, time.time(), workers_before=workers)
                rec.anomalies = list(health.anomalies)
            t0 = time.perf_counter()
            try:
                job = await rp.run(job_input, timeout=timeout)
            except HarnessError as exc:
                if writer is not None and rec is not None:
                    rec.e2e_s = time.perf_counter() - t0
                    rec.status, rec.error, rec.error_message = "error", type(exc).__name__, _said(exc)
                    writer.write(rec)
                return rows, f"the {step.phase} request failed: {_said(exc)}"
            e2e = time.perf_counter() - t0
            last_end = time.monotonic()
            confirmed, evidence = confirm(step.phase, workers, gap, hot_gap_s=0.5)
            rows.append(LatencyRow(step.phase, e2e * 1000, job.delay_time_ms, job.execution_time_ms, confirmed))
            if writer is not None and rec is not None:
                rec.e2e_s, rec.delay_ms, rec.execution_ms = e2e, job.delay_time_ms, job.execution_time_ms
                rec.confirmed, rec.evidence, rec.worker_id = (
                    confirmed,
                    f"{evidence}; delayTime {job.delay_time_ms} ms",
                    job.worker_id,
                )
                rec.anomalies += job.anomalies
                writer.write(rec)
    finally:
        if writer is not None:
            writer.close()
    return rows, None


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
        rows.append(ProbeRow("models", False, "-", _said(exc)))
        if timed_out(exc):
            return rows, "2 case(s) not asked: models timed out"
    for label, stream in (("chat stream", True), ("chat whole", False)):
        try:
            c = await oa.chat(CHAT, model=model, stream=stream, max_tokens=32)
        except HarnessError as exc:
            rows.append(ProbeRow(label, False, "-", _said(exc)))
            if timed_out(exc):
                return rows, f"{3 - len(rows)} case(s) not asked: {label} timed out"
            continue
        shape = "openai-chat-chunks" if stream else "openai-chat-completion"
        detail = f"{len(c.text)} chars, finish {c.finish_reason}, usage {c.usage is not None}"
        if c.findings:
            detail += "; " + "; ".join(f.code for f in c.findings)
        rows.append(ProbeRow(label, bool(c.text or c.finish_reason), shape, detail))
    return rows, None


async def openai_timing_probe(
    oa: OpenAIClient,
    model: str,
    *,
    run_dir: str | Path,
    streams: int = 5,
    whole: int = 2,
    progress: Callable[[str], None] = lambda _: None,
) -> tuple[list[LoadRecord], str | None]:
    """Sequential streamed and whole chats, each written as a LoadRecord (TTFT, gaps, tokens, errors by cause):
    the server's timing at concurrency 1 (the load tests measure it under load). A request that timed out ends
    it (the second value says so)."""
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
                rec.status, rec.error, rec.error_message = "error", type(exc).__name__, _said(exc)[:300]
                writer.write(rec)
                records.append(rec)
                if timed_out(exc):
                    return records, f"request {i + 1} timed out: {_said(exc)}"
                continue
            writer.write(rec)
            records.append(rec)
    return records, None
