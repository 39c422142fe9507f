"""Worker pool (cold start, idle timeout, FlashBoot, concurrency) and real handlers of every kind."""

from __future__ import annotations

import asyncio
import itertools
import json
import sys
from pathlib import Path

import pytest

from harness import Job, JobFailed, JobStatus, WorkerError, ZombieWorker, extract
from harness.clients.runpod import RunPodClient
from harness.emulator import Emulator, load_config
from harness.emulator.engines import INSTANT
from harness.emulator.handlers import handler_kind, load_handler
from harness.emulator.pool import Endpoint
from tests.virtualtime import in_process, run_virtual

HANDLERS = Path(__file__).parent / "handlers"


def spec(name: str, fn: str = "handler") -> str:
    return f"{HANDLERS / name}:{fn}"


def test_cold_then_hot_then_cold_again_after_idle_timeout() -> None:
    async def main() -> tuple[Job, Job, Job, int]:
        async with in_process(cold_start=3.0, idle_timeout_s=5.0, flashboot=False) as rp:
            cold = await rp.run({"prompt": "a"}, timeout=60)
            hot = await rp.run({"prompt": "b"}, timeout=60)
            await rp.clock.sleep(6.0)  # > idle timeout: the worker scales down to zero
            workers = (await rp.health()).workers.total
            return cold, hot, await rp.run({"prompt": "c"}, timeout=60), workers

    cold, hot, cold_again, workers_after_idle = run_virtual(main())  # RunPod's defaults, in virtual time
    assert workers_after_idle == 0
    assert cold.delay_time_ms is not None and cold.delay_time_ms >= 3000
    assert hot.delay_time_ms is not None and hot.delay_time_ms < 100
    assert cold_again.delay_time_ms is not None and cold_again.delay_time_ms >= 3000
    assert cold.worker_id == hot.worker_id != cold_again.worker_id


def test_flashboot_restart_is_shorter_inside_its_window() -> None:
    async def main() -> tuple[Job, Job, Job]:
        async with in_process(cold_start=10.0, idle_timeout_s=5.0, flashboot_window_s=60, flashboot_start_s=1.0) as rp:
            cold = await rp.run({"prompt": "a"}, timeout=60)
            await rp.clock.sleep(10.0)  # scaled to zero, but inside the FlashBoot window
            warm = await rp.run({"prompt": "b"}, timeout=60)
            await rp.clock.sleep(120.0)  # past the window: a full cold start again
            return cold, warm, await rp.run({"prompt": "c"}, timeout=60)

    cold, flash, cold_again = run_virtual(main())
    assert cold.delay_time_ms is not None and cold.delay_time_ms >= 10_000
    assert flash.delay_time_ms is not None and 1000 <= flash.delay_time_ms < 2000
    assert cold_again.delay_time_ms is not None and cold_again.delay_time_ms >= 10_000


def test_min_workers_are_started_ahead_of_traffic() -> None:
    async def main() -> Job:
        async with in_process(cold_start=30.0, min_workers=1, idle_pickup_s=0) as rp:
            await rp.clock.sleep(31.0)
            return await rp.run({"prompt": "a"}, timeout=60)

    assert (run_virtual(main()).delay_time_ms or 0) < 100


def test_fifo_dispatch_on_one_worker() -> None:
    async def main() -> list[float]:
        async with in_process(cold_start=0.0, max_workers=1, concurrency=1, worker={"ttft_s": 0.1}) as rp:
            submitted, ids = [], []
            for i in range(4):
                submitted.append(rp.clock.now())
                ids.append(await rp.submit({"prompt": str(i)}))
            jobs = await asyncio.gather(*(rp.wait(i, timeout=10) for i in ids))
        return [t + (j.delay_time_ms or 0) / 1000 for t, j in zip(submitted, jobs, strict=True)]

    starts = run_virtual(main())
    assert starts == sorted(starts)
    assert all(b - a >= 0.099 for a, b in itertools.pairwise(starts))  # one ~100 ms job at a time


@pytest.mark.parametrize(
    ("name", "fn", "kind"),
    [
        ("sync_handler.py", "handler", "sync"),
        ("async_handler.py", "handler", "async"),
        ("generator_handler.py", "handler", "generator"),
        ("async_generator_handler.py", "handler", "async-generator"),
    ],
)
def test_handler_kinds_are_detected_like_runpod(name: str, fn: str, kind: str) -> None:
    assert handler_kind(load_handler(spec(name, fn))) == kind


def test_each_load_is_a_fresh_import() -> None:
    a = load_handler(spec("async_handler.py"))
    b = load_handler(spec("async_handler.py"))
    assert sys.modules.get(a.__module__) is not sys.modules.get(b.__module__) or a.__module__ != b.__module__


@pytest.mark.parametrize(
    ("handler", "job_input", "output"),
    [
        pytest.param(spec("sync_handler.py"), {"text": "hi"}, {"echo": "hi"}, id="sync"),
        pytest.param(spec("async_handler.py"), {"text": "async"}, "async", id="async"),
        pytest.param(spec("generator_handler.py"), {"text": "x y"}, ["x", "y"], id="generator-aggregated"),
        pytest.param(spec("async_generator_handler.py"), {"n": 2}, [{"i": 0}, {"i": 1}], id="async-generator"),
    ],
)
async def test_real_handlers_of_every_kind(handler: str, job_input: dict[str, object], output: object) -> None:
    with Emulator(cold_start=0.0, handler=handler) as emu:
        async with RunPodClient.of(emu) as rp:
            job = await rp.run(job_input, timeout=10)
    if isinstance(output, dict) and isinstance(job.output, dict):
        assert output.items() <= job.output.items()
    else:
        assert job.output == output


async def test_generator_chunks_stream_before_the_job_ends() -> None:
    with Emulator(cold_start=0.0, handler=spec("async_generator_handler.py")) as emu:
        async with RunPodClient.of(emu) as rp:
            job_id = await rp.submit({"n": 4, "gap": 0.05})
            assert [x async for x in rp.stream(job_id, timeout=10)] == [{"i": i} for i in range(4)]


@pytest.mark.parametrize(
    ("fn", "message"),
    [("failing", "bad input: boom"), ("returns_error", "returned error dict")],
)
async def test_handler_errors_fail_the_job(fn: str, message: str) -> None:
    with Emulator(cold_start=0.0, handler=spec("sync_handler.py", fn)) as emu:
        async with RunPodClient.of(emu) as rp:
            with pytest.raises(JobFailed, match=message) as info:
                await rp.run({"text": "boom"}, timeout=10)
    if fn == "failing":  # runpod's JSON error string, parsed back
        raw = json.loads(info.value.job.error)
        assert raw["error_type"] == "<class 'ValueError'>" and "Traceback" in raw["error_traceback"]


@pytest.mark.parametrize(("semantics", "status"), [("runpod>=1.7.7", "FAILED"), ("legacy", "COMPLETED")])
async def test_yielded_error_semantics(semantics: str, status: str) -> None:
    with Emulator(
        cold_start=0.0, handler=spec("generator_handler.py", "yields_error"), error_semantics=semantics
    ) as emu:
        async with RunPodClient.of(emu) as rp:
            job = await rp.wait(await rp.submit({}), timeout=10)
    assert job.status == status
    with pytest.raises(WorkerError, match="yielded error after one chunk"):
        extract(job.raw)


async def test_cancel_really_stops_an_async_handler() -> None:
    with Emulator(cold_start=0.0, handler=spec("async_handler.py")) as emu:
        async with RunPodClient.of(emu) as rp:
            job_id = await rp.submit({"sleep": 30})
            while (await rp.status(job_id)).status is not JobStatus.IN_PROGRESS:
                await asyncio.sleep(0.01)
            assert (await rp.cancel(job_id)).status is JobStatus.CANCELLED
            await asyncio.sleep(0.1)
            state = emu.state()
    assert state["health"]["workers"]["idle"] == 1  # the worker is free again: the handler stopped
    assert any(e["kind"] == "cancel" for e in state["events"])


async def test_crash_at_import_is_a_crash_loop_the_client_diagnoses() -> None:
    """Field report 002: a handler that dies at import leaves jobs IN_QUEUE behind unhealthy workers."""
    with Emulator(
        cold_start=0.05, handler=spec("crash_at_import.py"), max_workers=1, faults={"crash_restart_s": 0.1}
    ) as emu:
        async with RunPodClient.of(emu, stuck_after_s=0.6, health_every_s=0.1) as rp:
            with pytest.raises(ZombieWorker, match="crash loop") as info:
                await rp.run({}, timeout=30)
        state = emu.state()
    assert info.value.cancelled
    (worker,) = state["workers"]
    assert worker["starts"] >= 2  # it keeps restarting
    assert "model load failed at import time" in worker["logs"][-1]
    assert "crash_at_import.py" in worker["logs"][-1]  # the traceback names the file


class _NoScans(dict):  # type: ignore[type-arg]
    def values(self):  # type: ignore[no-untyped-def]
        raise AssertionError("the emulator scanned every job")

    items = keys = __iter__ = values


def test_an_idle_emulator_does_no_work_per_retained_job() -> None:
    """After a capacity run the emulator used ~25x the CPU of a fresh one: every tick scanned every retained job.
    Now deadlines sit in a heap: ticks touch only what is due, and retention still removes every job on time."""

    async def main() -> tuple[int, int]:
        endpoint = Endpoint(load_config(None, cold_start=0.0, max_workers=3, concurrency=50, worker=INSTANT))
        endpoint.start()
        jobs = [endpoint.submit({"prompt": str(i)}, None, sync=False) for i in range(300)]
        for job in jobs:
            await endpoint.wait(job, 60)
        kept = len(endpoint.jobs)
        endpoint.jobs = _NoScans(endpoint.jobs)
        await asyncio.sleep(10)  # 200 idle ticks: nothing is due, nothing may be scanned
        await asyncio.sleep(30 * 60)  # RunPod keeps /run results 30 min: then they go, through the heap
        left = dict.__len__(endpoint.jobs)
        endpoint.jobs = dict(dict.items(endpoint.jobs))
        await endpoint.stop()
        return kept, left

    kept, left = run_virtual(main())
    assert kept == 300 and left == 0
