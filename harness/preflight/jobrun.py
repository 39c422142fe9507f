"""Run a worker the way the platform does — under the emulator, in a subprocess — and send it jobs.

The first job is the cold one (its delayTime includes the worker's start and import), the rest are warm; each
output goes through :func:`harness.core.shapes.extract`. A worker that never takes its job (a crash loop, a file
that never starts the SDK) is diagnosed by :class:`RunPodClient` as a ZombieWorker, and the report shows the
worker's own last output (its traceback) from the emulator's introspection route.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import IO, Any

from harness.clients.runpod import RunPodClient
from harness.core.errors import DiagnosedTimeout, HarnessError, JobError, ShapeError, WorkerError, ZombieWorker
from harness.core.jobs import Job
from harness.core.shapes import extract
from harness.emulator.serving import fetch_state
from harness.preflight.report import WorkerReport

__all__ = ["run_under_emulator", "user_traceback"]

_CHECK = "run under the emulator"
_NO_AGGREGATE = (
    "empty for this generator handler: clients that poll /status or call /runsync get nothing (its chunks came "
    'through /stream); start it with "return_aggregate_stream": True if they should get them'
)


def user_traceback(text: str, folder: Path | None) -> list[str]:
    """The last traceback in ``text``, from the first frame in ``folder`` on (the SDK's and our frames dropped)."""
    lines = [line for line in text.strip().splitlines() if line.strip() and not line.startswith("[emulator]")]
    tb_start = max((i for i, line in enumerate(lines) if line.startswith("Traceback")), default=-1)
    if tb_start >= 0:
        lines = lines[tb_start:]
    where = str(folder.resolve()) if folder is not None else None
    start = next((i for i, line in enumerate(lines) if where and where in line), max(0, len(lines) - 6))
    return lines[start:][-12:]


def _emulator(emulate_args: list[str], errors: IO[str]) -> subprocess.Popen[str]:
    cmd = [sys.executable, "-m", "harness", "emulate", "--port", "0", "--max-workers", "1"]
    cmd += ["--idle-timeout", "600", "--announce-json", "--quiet-workers", *emulate_args]
    return subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=errors, text=True, env=os.environ.copy(), start_new_session=True
    )


def _stop(proc: subprocess.Popen[str]) -> None:
    """Stop the emulator, then kill what is left of its group (a daemon an in-process handler forked)."""
    proc.terminate()
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    # stdout is closed by its drain thread at EOF: closing it here would wait on that thread's read


async def _announced(proc: subprocess.Popen[str], errors: IO[str]) -> dict[str, Any]:
    assert proc.stdout is not None
    line = await asyncio.wait_for(asyncio.to_thread(proc.stdout.readline), 60)
    if not line:
        await asyncio.to_thread(proc.wait, 10)
        errors.seek(0)
        err = errors.read().strip().splitlines()
        raise HarnessError(f"the emulator did not start: {err[-1] if err else 'no output'}")
    info: dict[str, Any] = json.loads(line)
    # What an in-process handler prints goes to the emulator's stdout: drained, or a busy printer fills the pipe,
    # blocks the emulator and looks like a cold start that never ends. The worker's own logs come from its state.
    threading.Thread(target=_drain, args=(proc.stdout,), name="devai-drain", daemon=True).start()
    return info


def _drain(stream: IO[str]) -> None:
    with contextlib.suppress(OSError, ValueError), stream:
        while stream.read(1 << 16):
            pass


def _worker_output(info: dict[str, Any], folder: Path | None) -> list[str]:
    try:
        state = fetch_state(f"{info['base_url']}/{info['endpoint_id']}", info["api_key"])
    except OSError:
        return []
    for w in state.get("workers", []):
        text = "\n".join(w.get("logs") or [])
        if text:
            exits = w.get("exits") or []
            head = [f"worker {w['id']} was started {w['starts']} time(s); last exit: {exits[-1]}"] if exits else []
            return [*head, "its last output:", *user_traceback(text, folder)]
    return []


async def _jobs(
    report: WorkerReport,
    info: dict[str, Any],
    job_input: Any,
    n_jobs: int,
    job_timeout: float,
    stuck_after_s: float,
    folder: Path | None,
    streamed: bool,
) -> None:
    async with RunPodClient(
        info["endpoint_id"],
        info["api_key"],
        base_url=info["base_url"],
        stuck_after_s=stuck_after_s,
        health_every_s=0.5,
    ) as rp:
        for n in range(1, n_jobs + 1):
            phase = "cold" if n == 1 else "warm"
            row: dict[str, Any] = {"n": n, "phase": phase, "status": "-", "delay_ms": None, "execution_ms": None}
            row["shape"] = "-"
            report.jobs.append(row)
            try:
                job, output = await _one_job(rp, job_input, job_timeout, streamed)
            except ZombieWorker as exc:
                row["status"] = "STUCK"
                summary = f"job stuck IN_QUEUE for {exc.elapsed_s:.1f} s: {exc.diagnosis.reason}"
                details = await asyncio.to_thread(_worker_output, info, folder)
                report.add(_CHECK, "fail", summary, details)
                return
            except (JobError, DiagnosedTimeout) as exc:
                row["status"] = "FAILED" if isinstance(exc, JobError) else "TIMEOUT"
                report.add(f"job #{n} ({phase})", "fail", str(exc)[:300])
                return
            row.update(status=str(job.status), delay_ms=job.delay_time_ms, execution_ms=job.execution_time_ms)
            if not _shape(report, row, output, first=n == 1):
                return
            if streamed and n == 1 and not job.output:
                report.add("/status output", "warn", _NO_AGGREGATE)
    report.add(
        _CHECK,
        "pass",
        f"{n_jobs} job(s) COMPLETED; cold delay {report.jobs[0]['delay_ms']} ms, "
        f"warm delay {report.jobs[-1]['delay_ms']} ms",
    )


async def _one_job(rp: RunPodClient, job_input: Any, timeout: float, streamed: bool) -> tuple[Job, Any]:
    """(the COMPLETED job, its output): a generator worker's output is what /stream delivered."""
    if not streamed:
        job = await rp.run(job_input, timeout=timeout)
        return job, job.output
    job_id = await rp.submit(job_input)
    chunks = [chunk async for chunk in rp.stream(job_id, timeout=timeout)]
    return await rp.status(job_id), chunks


def _shape(report: WorkerReport, row: dict[str, Any], output: Any, *, first: bool) -> bool:
    try:
        got = extract(output)
    except (ShapeError, WorkerError) as exc:
        row["shape"] = "unknown" if isinstance(exc, ShapeError) else "error"
        hint = ["clients (and this harness) cannot read it; see README 'Output shapes'"]
        report.add("output shape", "fail", str(exc)[:300], hint)
        return False
    row["shape"] = got.shape
    if first:
        findings = [str(f) for f in got.findings]
        summary = f"{got.shape}: {len(got.choices)} choice(s), {len(got.text)} chars"
        report.add("output shape", "warn" if findings else "pass", summary, findings)
    return True


def run_under_emulator(
    report: WorkerReport,
    emulate_args: list[str],
    job_input: Any,
    *,
    jobs: int,
    job_timeout: float,
    stuck_after_s: float,
    folder: Path | None = None,
    streamed: bool = False,
) -> None:
    """Start ``devai-harness emulate <emulate_args>`` (one worker), run ``jobs`` jobs, stop it; ``folder`` is the
    user's code, whose frames a captured traceback is cut to; ``streamed``: read each output from /stream (a
    generator handler)."""
    with tempfile.TemporaryFile("w+", encoding="utf-8") as errors:
        proc = _emulator(emulate_args, errors)
        try:

            async def go() -> None:
                info = await _announced(proc, errors)
                await _jobs(report, info, job_input, jobs, job_timeout, stuck_after_s, folder, streamed)

            asyncio.run(go())
        except HarnessError as exc:
            report.add(_CHECK, "fail", str(exc))
        except (OSError, ValueError, TimeoutError) as exc:
            report.add(_CHECK, "fail", f"{type(exc).__name__}: {exc}")
        finally:
            _stop(proc)
