"""Every fault scenario in scenarios/faults/ through RunPodClient: each gives its typed outcome."""

from __future__ import annotations

import itertools
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from harness import (
    ColdStartTooSlow,
    ConnectError,
    JobStatus,
    JobTimedOut,
    NoCapacity,
    PollPolicy,
    ProtocolError,
    RetryPolicy,
    RunPodClient,
    SlowExecution,
    StatusError,
    WorkerError,
    ZombieWorker,
    extract,
)
from harness.emulator import Emulator, load_config

FAULTS = Path(__file__).parent.parent / "scenarios" / "faults"
FAST_RETRY = RetryPolicy(base_s=0.05, cap_s=0.2)

Check = Callable[[RunPodClient, Emulator], Awaitable[None]]


async def _defaults(rp: RunPodClient, emu: Emulator) -> None:
    cfg = emu.config
    assert (cfg.min_workers, cfg.max_workers, cfg.idle_timeout_s, cfg.cold_start.seconds) == (0, 3, 5, 2)


async def _zombie(rp: RunPodClient, emu: Emulator) -> None:
    t0 = time.monotonic()
    with pytest.raises(ZombieWorker) as info:
        await rp.run({"prompt": "x"}, timeout=60, stuck_after_s=0.5)
    assert time.monotonic() - t0 <= 0.5 + PollPolicy().cap_s + 0.5
    assert info.value.cancelled
    assert emu.state()["health"]["jobs"]["inQueue"] == 0  # cancelled, not left to bill


async def _zombie_after_jobs(rp: RunPodClient, emu: Emulator) -> None:
    for i in range(3):
        await rp.run({"prompt": str(i)}, timeout=10)
    await _zombie(rp, emu)
    workers = emu.state()["health"]["workers"]
    assert workers["idle"] == 1 and workers["ready"] == 1  # field report 000: health says fine


async def _takes_jobs(rp: RunPodClient, emu: Emulator) -> None:
    with pytest.raises(SlowExecution) as info:
        await rp.run({"prompt": "x"}, timeout=0.8)
    assert info.value.cancelled


async def _crash_at_import(rp: RunPodClient, emu: Emulator) -> None:
    with pytest.raises(ZombieWorker, match="crash loop"):
        await rp.run({"prompt": "x"}, timeout=30, stuck_after_s=0.6)
    assert "no CUDA-capable device" in emu.state()["workers"][0]["logs"][-1]


async def _no_capacity(rp: RunPodClient, emu: Emulator) -> None:
    with pytest.raises(NoCapacity, match="throttled"):
        await rp.run({"prompt": "x"}, timeout=0.5)


async def _slow_cold_start(rp: RunPodClient, emu: Emulator) -> None:
    with pytest.raises(ColdStartTooSlow) as info:  # a deadline inside the cold start
        await rp.run({"prompt": "y"}, timeout=1.0)
    assert info.value.cancelled
    job = await rp.runsync({"prompt": "x"}, timeout=30)  # the 1 s wait ends first; polling brings the result
    assert job.id.startswith("sync-")
    assert job.delay_time_ms is not None and job.delay_time_ms >= 1000


async def _rate_limit(rp: RunPodClient, emu: Emulator) -> None:
    job = await rp.run({"prompt": "x"}, timeout=30)
    assert job.status is JobStatus.COMPLETED


async def _server_errors(rp: RunPodClient, emu: Emulator) -> None:
    with pytest.raises(StatusError) as info:
        await rp.submit({"prompt": "x"})
    assert info.value.status_code == 502
    assert emu.state()["health"]["jobs"]["inQueue"] == 0  # not retried behind our back
    assert (await rp.run({"prompt": "x"}, timeout=30)).status is JobStatus.COMPLETED


async def _dropped(rp: RunPodClient, emu: Emulator) -> None:
    assert (await rp.run({"prompt": "x"}, timeout=30)).status is JobStatus.COMPLETED  # the cut poll was retried
    # The same cut on /run: had the client retried the submit, the second try would have succeeded.
    with Emulator(cold_start=0.0, http_faults=[{"route": "run", "drop": True, "count": 1}]) as cut:
        async with RunPodClient.of(cut, retry=FAST_RETRY) as client:
            with pytest.raises(ConnectError):
                await client.submit({"prompt": "x"})


async def _malformed(rp: RunPodClient, emu: Emulator) -> None:
    with pytest.raises(ProtocolError, match="not JSON"):
        await rp.run({"prompt": "x"}, timeout=10)


async def _stalled_stream(rp: RunPodClient, emu: Emulator) -> None:
    job_id = await rp.submit({"prompt": "x", "stream": True})
    arrivals: list[float] = []
    chunks = []
    async for chunk in rp.stream(job_id, timeout=30):
        arrivals.append(time.monotonic())
        chunks.append(chunk)
    gaps = [b - a for a, b in itertools.pairwise(arrivals)]
    assert max(gaps) >= 1.0  # the stall is visible to the client as a gap
    assert extract(chunks).text


async def _execution_timeout(rp: RunPodClient, emu: Emulator) -> None:
    with pytest.raises(JobTimedOut, match="execution timeout"):
        await rp.run({"prompt": "x"}, timeout=10)


async def _legacy_errors(rp: RunPodClient, emu: Emulator) -> None:
    job = await rp.run({"prompt": "x", "sampling_params": {"temperature": -1}}, timeout=10)  # COMPLETED...
    with pytest.raises(WorkerError, match="temperature") as info:  # ...with the error inside (worker-vllm #65)
        extract(job.output)
    assert info.value.code == 400


CHECKS: dict[str, Check] = {
    "defaults.yaml": _defaults,
    "zombie_ignores_queue.yaml": _zombie,
    "zombie_after_jobs.yaml": _zombie_after_jobs,
    "zombie_stuck_running.yaml": _zombie,
    "zombie_takes_jobs.yaml": _takes_jobs,
    "crash_at_import.yaml": _crash_at_import,
    "no_capacity.yaml": _no_capacity,
    "slow_cold_start.yaml": _slow_cold_start,
    "rate_limit_storm.yaml": _rate_limit,
    "server_errors.yaml": _server_errors,
    "dropped_connections.yaml": _dropped,
    "malformed_json.yaml": _malformed,
    "stalled_stream.yaml": _stalled_stream,
    "execution_timeout.yaml": _execution_timeout,
    "legacy_errors.yaml": _legacy_errors,
}


def test_every_fault_file_is_checked_and_documented() -> None:
    files = sorted(p.name for p in FAULTS.glob("*.yaml"))
    assert files == sorted(CHECKS)
    readme = (FAULTS / "README.md").read_text(encoding="utf-8")
    for name in files:
        assert name in readme
        assert load_config(FAULTS / name) is not None


@pytest.mark.parametrize("name", sorted(CHECKS))
async def test_fault_scenario(name: str) -> None:
    with Emulator(FAULTS / name) as emu:
        async with RunPodClient.of(emu, retry=FAST_RETRY, health_every_s=0.1) as rp:
            await CHECKS[name](rp, emu)
