"""The client against the failures of field reports 000-003, on the emulator or from its cassettes.
Each cassette replays through the client's real polling and timeout code with the recorded clock."""

from __future__ import annotations

import pytest

from harness import (
    ColdStartTooSlow,
    JobFailed,
    JobStatus,
    JobTimedOut,
    PollPolicy,
    RetryPolicy,
    RunPodClient,
    ZombieWorker,
)

pytestmark = pytest.mark.devai_cassette
STUCK_S = 3.0


@pytest.fixture(autouse=True)
def faults_need_the_emulator(target: str) -> None:
    if target == "runpod":
        pytest.skip("fault injection needs the emulator (or its cassettes)")


@pytest.mark.emulator(cold_start=0.1, faults={"zombie": "ignores_queue"})
@pytest.mark.runpod_client(stuck_after_s=STUCK_S, health_every_s=0.5)
async def test_zombie_worker_is_diagnosed_within_threshold_and_cancelled(runpod_client: RunPodClient) -> None:
    with pytest.raises(ZombieWorker) as info:
        await runpod_client.run({"prompt": "hello"}, timeout=3600)
    assert STUCK_S <= info.value.elapsed_s <= STUCK_S + PollPolicy().cap_s
    assert info.value.cancelled
    assert info.value.health is not None and info.value.health.workers.idle == 1


@pytest.mark.emulator(cold_start=0.1, faults={"crash_at_import": "no GPU at import", "crash_restart_s": 0.3})
@pytest.mark.runpod_client(stuck_after_s=STUCK_S, health_every_s=0.5)
async def test_crash_looping_worker_is_diagnosed(runpod_client: RunPodClient) -> None:
    with pytest.raises(ZombieWorker, match="crash loop") as info:
        await runpod_client.run({"prompt": "hello"}, timeout=3600)
    assert info.value.cancelled


@pytest.mark.emulator(cold_start=2.5, runsync_wait_ms=1000)
async def test_cold_start_longer_than_runsync_wait_still_delivers(runpod_client: RunPodClient) -> None:
    job = await runpod_client.runsync({"prompt": "hello"}, timeout=60)
    assert job.status is JobStatus.COMPLETED
    assert job.delay_time_ms is not None and job.delay_time_ms >= 2500


@pytest.mark.emulator(cold_start=5.0)
async def test_cold_start_longer_than_the_deadline(runpod_client: RunPodClient) -> None:
    with pytest.raises(ColdStartTooSlow) as info:
        await runpod_client.run({"prompt": "hello"}, timeout=1.5)
    assert info.value.cancelled and 1.5 <= info.value.elapsed_s < 1.5 + PollPolicy().cap_s


@pytest.mark.emulator(
    cold_start=0.0, http_faults=[{"route": "status-sync", "status": 429, "retry_after": 0.1, "count": 3}]
)
@pytest.mark.runpod_client(retry=RetryPolicy(max_attempts=5, base_s=0.05))
async def test_429_storm_completes_within_bounded_retries(runpod_client: RunPodClient) -> None:
    assert (await runpod_client.run({"prompt": "hello"}, timeout=60)).status is JobStatus.COMPLETED


@pytest.mark.emulator(cold_start=0.0)
async def test_failed_job_carries_the_workers_message(runpod_client: RunPodClient) -> None:
    with pytest.raises(JobFailed, match="injected handler exception") as info:
        await runpod_client.run({"prompt": "x", "_fault": "raise"}, timeout=60)
    assert info.value.worker_error is not None and info.value.worker_error.error_type == "<class 'RuntimeError'>"


@pytest.mark.emulator(cold_start=0.0, execution_timeout_s=0.3, worker={"ttft_s": 2})
async def test_timed_out_job_is_typed(runpod_client: RunPodClient) -> None:
    with pytest.raises(JobTimedOut, match="execution timeout"):
        await runpod_client.run({"prompt": "x"}, timeout=60)
