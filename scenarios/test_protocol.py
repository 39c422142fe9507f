"""RunPod protocol conformance through RunPodClient: every output era, polling, runsync fallback, /stream,
cancel, retry, health. Runs on replay (default), the emulator, a live endpoint (--target runpod), or runpod-python's
own local test server (--target runpod-local: only what that server can do; the rest skips saying why)."""

from __future__ import annotations

import pytest

from harness import JobFailed, JobStatus, RunPodClient, extract
from harness.conformance.probe import ERA_CASES

pytestmark = pytest.mark.devai_cassette
FAST = {"cold_start": 0.0}


def emulator_only(target: str) -> None:
    if target in ("runpod", "runpod-local"):
        pytest.skip("needs a worker configured for this era or fault: emulator or replay targets only")


def platform_only(target: str, routes: str) -> None:
    if target == "runpod-local":
        pytest.skip(f"runpod-python's local test server has no {routes}")


@pytest.mark.parametrize(
    ("label", "job_input", "shape"),
    [
        pytest.param(
            label,
            job_input,
            shape,
            id=label.replace(" ", "-").replace("(", "").replace(")", ""),
            marks=pytest.mark.emulator(cold_start=0.0, worker=options),
        )
        for label, options, job_input, shape in ERA_CASES
    ],
)
async def test_output_era(
    label: str, job_input: dict[str, object], shape: str, runpod_client: RunPodClient, target: str
) -> None:
    emulator_only(target)
    got = extract((await runpod_client.run(job_input, timeout=60)).output)
    assert got.shape == shape
    assert got.text or got.models


@pytest.mark.emulator(cold_start=0.5)
async def test_polling_until_completed(runpod_client: RunPodClient, target: str) -> None:
    job = await runpod_client.run({"prompt": "hello"}, timeout=120)
    assert job.status is JobStatus.COMPLETED and extract(job.output).text
    if target != "runpod-local":  # the SDK's local server reports no delayTime/executionTime
        assert job.delay_time_ms is not None and job.execution_time_ms is not None


@pytest.mark.emulator(cold_start=2.0)
async def test_runsync_falls_back_to_polling(runpod_client: RunPodClient, target: str) -> None:
    emulator_only(target)
    job = await runpod_client.runsync({"prompt": "hello"}, timeout=60, wait_ms=1000)
    assert job.status is JobStatus.COMPLETED and job.id.startswith("sync-")
    assert job.delay_time_ms is not None and job.delay_time_ms >= 1000  # it outlived the runsync wait


@pytest.mark.emulator(cold_start=0.0, worker={"tokens_per_s": 200})
async def test_stream_until_terminal(runpod_client: RunPodClient) -> None:
    job_id = await runpod_client.submit({"prompt": "hello", "stream": True, "sampling_params": {"max_tokens": 40}})
    chunks = [c async for c in runpod_client.stream(job_id, timeout=60)]
    assert len(chunks) >= 2
    assert extract(chunks).text


@pytest.mark.emulator(**FAST, worker={"ttft_s": 30})
async def test_cancel_stops_a_running_job(runpod_client: RunPodClient, target: str) -> None:
    platform_only(target, "/cancel")
    emulator_only(target)
    job_id = await runpod_client.submit({"prompt": "slow"})
    while (await runpod_client.status(job_id)).status is JobStatus.IN_QUEUE:
        await runpod_client.clock.sleep(0.05)
    assert (await runpod_client.cancel(job_id)).status is JobStatus.CANCELLED
    assert (await runpod_client.status(job_id)).status is JobStatus.CANCELLED


@pytest.mark.emulator(**FAST)
async def test_retry_requeues_a_failed_job(runpod_client: RunPodClient, target: str) -> None:
    platform_only(target, "/retry")
    emulator_only(target)
    with pytest.raises(JobFailed) as info:
        await runpod_client.run({"prompt": "x", "_fault": "raise"}, timeout=60)
    job_id = info.value.job.id
    assert (await runpod_client.retry(job_id)).status is JobStatus.IN_QUEUE
    again = await runpod_client.wait(job_id, timeout=60)
    assert again.status is JobStatus.FAILED and again.retries == 1


@pytest.mark.emulator(**FAST)
async def test_health_counts_agree_with_jobs(runpod_client: RunPodClient, target: str) -> None:
    platform_only(target, "/health")
    before = await runpod_client.health()
    await runpod_client.run({"prompt": "x"}, timeout=60)
    after = await runpod_client.health()
    assert (after.jobs.completed or 0) - (before.jobs.completed or 0) >= 1
    assert after.workers.total >= 1
