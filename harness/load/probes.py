"""The main job's timing probes, at concurrency 1 (the locustfiles measure under load): cold, hot and warm jobs by
the phase plan on a RunPod-like endpoint, and sequential streamed and whole chats on an OpenAI-compatible server.
Every request is written as a :class:`~harness.load.records.LoadRecord` (its begun marker before it is sent), so
``devai-harness report`` and the check's report read them like any load run's."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from harness.clients.openai import OpenAIClient
from harness.clients.runpod import RunPodClient
from harness.core.errors import HarnessError
from harness.core.errortext import one_line, timed_out
from harness.core.prompts import SMOKE_CHAT
from harness.load.phases import PhasePlan, confirm
from harness.load.records import LoadRecord, RecordWriter
from harness.reporting.junit import JUnitCase
from harness.reporting.rows import ms

__all__ = ["LatencyRow", "latency_probe", "openai_timing_probe"]


@dataclass(frozen=True, slots=True)
class LatencyRow:
    """One cold, hot or warm request: a :class:`~harness.reporting.rows.Row` (the terminal lists them; the page
    shows the requests' own report instead)."""

    phase: str
    e2e_ms: float
    delay_ms: int | None
    execution_ms: int | None
    confirmed: bool | None = None

    COLUMNS: ClassVar[tuple[str, ...]] = ("phase", "e2e ms", "delayTime ms", "executionTime ms", "label")
    SECTION: ClassVar[str | None] = None
    TERMINAL: ClassVar[bool] = True

    def cells(self) -> list[str]:
        label = {True: "confirmed", False: "MISLABELLED", None: "-"}[self.confirmed]
        return [self.phase, ms(self.e2e_ms), ms(self.delay_ms), ms(self.execution_ms), label]

    def listed(self) -> bool:
        return False

    def junit(self) -> JUnitCase | None:
        return None


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
    job_input = {"messages": SMOKE_CHAT, "sampling_params": {"max_tokens": 32}}
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
                    rec.status, rec.error, rec.error_message = "error", type(exc).__name__, one_line(exc)
                    writer.write(rec)
                return rows, f"the {step.phase} request failed: {one_line(exc)}"
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
                rec.take((await oa.chat(SMOKE_CHAT, model=model, stream=stream, max_tokens=64)).timing)
            except HarnessError as exc:
                rec.status, rec.error, rec.error_message = "error", type(exc).__name__, one_line(exc, 300)
                writer.write(rec)
                records.append(rec)
                if timed_out(exc):
                    return records, f"request {i + 1} timed out: {one_line(exc)}"
                continue
            writer.write(rec)
            records.append(rec)
    return records, None
