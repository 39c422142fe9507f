"""RunPodClient against a scripted MockTransport (and respx) for every route, status and error path.
Time is a FakeClock: the real polling code runs, instantly, with the same decisions."""

from __future__ import annotations

import asyncio
import itertools
import logging
import random
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import respx

from harness import (
    ColdStartTooSlow,
    ConfigError,
    ConnectError,
    DiagnosedTimeout,
    FakeClock,
    JobCancelled,
    JobFailed,
    JobStatus,
    JobTimedOut,
    NoCapacity,
    PollPolicy,
    ProtocolError,
    QueueBacklog,
    RateLimited,
    RequestTimeout,
    RetryPolicy,
    RunPodClient,
    SlowExecution,
    StatusError,
    ZombieWorker,
)
from tests.fakes import API_KEY, BASE, ENDPOINT, FakeRunPod, body, health, job


@pytest.fixture
def fake() -> FakeRunPod:
    return FakeRunPod()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def rp(fake: FakeRunPod, clock: FakeClock) -> AsyncIterator[RunPodClient]:
    async with RunPodClient(
        ENDPOINT,
        API_KEY,
        transport=fake.transport,
        clock=clock,
        rng=random.Random(0),
        stuck_after_s=30,
        health_every_s=5,
    ) as client:
        yield client


# --- routes -----------------------------------------------------------------------------


async def test_submit_sends_input_policy_webhook_with_bearer(fake: FakeRunPod, rp: RunPodClient) -> None:
    fake.script("run", job("IN_QUEUE", "abc"))
    job_id = await rp.submit({"prompt": "hi"}, policy={"executionTimeout": 5000}, webhook="https://hook.example")
    assert job_id == "abc"
    (req,) = fake.calls("run")
    assert req.method == "POST"
    assert req.headers["authorization"] == f"Bearer {API_KEY}"
    assert body(req) == {
        "input": {"prompt": "hi"},
        "policy": {"executionTimeout": 5000},
        "webhook": "https://hook.example",
    }


async def test_status_parses_every_field(fake: FakeRunPod, rp: RunPodClient) -> None:
    fake.script(
        "status",
        job(
            "COMPLETED",
            "j1",
            delayTime=638,
            executionTime=3344,
            workerId="w1",
            retries=0,
            output=[{"choices": [{"tokens": ["x"]}]}],
        ),
    )
    got = await rp.status("j1")
    assert (got.id, got.status, got.delay_time_ms, got.execution_time_ms, got.worker_id, got.retries) == (
        "j1",
        JobStatus.COMPLETED,
        638,
        3344,
        "w1",
        0,
    )
    assert got.output == [{"choices": [{"tokens": ["x"]}]}]


@pytest.mark.parametrize(
    ("reply", "error"),
    [
        pytest.param(httpx.Response(200, text="<html>oops"), ProtocolError, id="not-json"),
        pytest.param(httpx.Response(200, json={"id": "j1", "status": "WEIRD"}), ProtocolError, id="unknown-status"),
        pytest.param(httpx.Response(200, json=[1, 2]), ProtocolError, id="not-an-object"),
        pytest.param(httpx.Response(404, text="not found"), StatusError, id="404"),
        pytest.param(httpx.Response(400, json={"error": "bad"}), StatusError, id="400"),
    ],
)
async def test_status_errors(fake: FakeRunPod, rp: RunPodClient, reply: httpx.Response, error: type[Exception]) -> None:
    fake.script("status", reply)
    with pytest.raises(error):
        await rp.status("j1")


async def test_cancel_retry_purge_health(fake: FakeRunPod, rp: RunPodClient) -> None:
    fake.script("cancel", job("CANCELLED", "j1"))
    fake.script("retry", job("IN_QUEUE", "j1"))
    fake.script("purge-queue", {"removed": 2, "status": "completed"})
    fake.script("health", health({"idle": 1, "running": 0}, inQueue=0, completed=3))
    assert (await rp.cancel("j1")).status is JobStatus.CANCELLED
    assert (await rp.retry("j1")).status is JobStatus.IN_QUEUE
    assert await rp.purge_queue() == 2
    h = await rp.health()
    assert (h.workers.idle, h.jobs.completed, h.workers.unhealthy) == (1, 3, None)
    assert [r.method for r in fake.requests] == ["POST", "POST", "POST", "GET"]


async def test_unsafe_job_id_is_refused_before_any_request(fake: FakeRunPod, rp: RunPodClient) -> None:
    with pytest.raises(ConfigError):
        await rp.status("../../other-endpoint/run")
    assert fake.requests == []


# --- retries ----------------------------------------------------------------------------


async def test_submit_is_never_blind_retried_on_5xx(fake: FakeRunPod, rp: RunPodClient) -> None:
    fake.script("run", httpx.Response(502, text="bad gateway"), job("IN_QUEUE", "x"))
    with pytest.raises(StatusError) as info:
        await rp.submit({})
    assert info.value.status_code == 502
    assert len(fake.calls("run")) == 1


async def test_submit_is_never_retried_on_connection_errors(fake: FakeRunPod, rp: RunPodClient) -> None:
    fake.script("run", httpx.ConnectError("refused"), job("IN_QUEUE", "x"))
    with pytest.raises(ConnectError):
        await rp.submit({})
    assert len(fake.calls("run")) == 1


async def test_429_honours_retry_after_even_for_submit(fake: FakeRunPod, rp: RunPodClient, clock: FakeClock) -> None:
    fake.script("run", httpx.Response(429, headers={"Retry-After": "3"}), job("IN_QUEUE", "x"))
    assert await rp.submit({}) == "x"
    assert len(fake.calls("run")) == 2
    assert 3.0 <= clock.sleeps[0] <= 3.0 * 1.25


async def test_429_storm_ends_in_rate_limited_after_bounded_attempts(fake: FakeRunPod, rp: RunPodClient) -> None:
    fake.script("status", httpx.Response(429, headers={"Retry-After": "1"}))
    with pytest.raises(RateLimited) as info:
        await rp.status("j1")
    assert info.value.retry_after == 1.0
    assert len(fake.calls("status")) == RetryPolicy().max_attempts


@pytest.mark.parametrize(
    "failure",
    [httpx.Response(503, text="busy"), httpx.ConnectError("reset"), httpx.ReadTimeout("slow")],
    ids=["503", "connect", "read-timeout"],
)
async def test_idempotent_calls_are_retried(fake: FakeRunPod, rp: RunPodClient, failure: Any) -> None:
    fake.script("status", failure, failure, job("COMPLETED", "j1", output="ok"))
    assert (await rp.status("j1")).status is JobStatus.COMPLETED
    assert len(fake.calls("status")) == 3


async def test_timeouts_map_to_request_timeout(fake: FakeRunPod, rp: RunPodClient) -> None:
    fake.script("status", httpx.ReadTimeout("slow"))
    with pytest.raises(RequestTimeout):
        await rp.status("j1")


async def test_https_429_retry_with_respx(clock: FakeClock) -> None:
    """runpod-python mounts its retry adapter on http:// only; ours works on the https default."""
    async with respx.mock(base_url=f"{BASE}/{ENDPOINT}", assert_all_called=True) as router:
        route = router.get("/health").mock(
            side_effect=[
                httpx.Response(429, headers={"Retry-After": "0.5"}),
                httpx.Response(200, json=health()),
            ]
        )
        async with RunPodClient(ENDPOINT, API_KEY, clock=clock) as rp:
            await rp.health()
        assert route.call_count == 2
        assert route.calls[0].request.url.scheme == "https"


# --- waiting and results ----------------------------------------------------------------


async def test_run_polls_adaptively_until_completed(fake: FakeRunPod, rp: RunPodClient, clock: FakeClock) -> None:
    fake.script("run", job("IN_QUEUE"))
    fake.script(
        "status",
        job("IN_QUEUE"),
        job("IN_QUEUE"),
        job("IN_PROGRESS"),
        job("COMPLETED", output=[{"choices": [{"tokens": ["hi"]}]}]),
    )
    got = await rp.run({"prompt": "x"}, timeout=60)
    assert got.output == [{"choices": [{"tokens": ["hi"]}]}]
    assert len(fake.calls("status")) == 4
    assert clock.sleeps == sorted(clock.sleeps) and clock.sleeps[0] < 0.1  # quick first, then backing off


@pytest.mark.parametrize(
    ("final", "error", "text"),
    [
        (job("FAILED", error='{"error_type": "ValueError", "error_message": "bad input"}'), JobFailed, "bad input"),
        (job("TIMED_OUT"), JobTimedOut, "TIMED_OUT"),
        (job("CANCELLED"), JobCancelled, "CANCELLED"),
    ],
    ids=["failed", "timed-out", "cancelled"],
)
async def test_run_raises_typed_job_errors(
    fake: FakeRunPod, rp: RunPodClient, final: dict[str, Any], error: type[Exception], text: str
) -> None:
    fake.script("run", job("IN_QUEUE"))
    fake.script("status", final)
    with pytest.raises(error, match=text) as info:
        await rp.run({}, timeout=10)
    if isinstance(info.value, JobFailed):
        assert info.value.worker_error is not None and info.value.worker_error.message == "bad input"


async def test_wait_returns_failed_job_instead_of_raising(fake: FakeRunPod, rp: RunPodClient) -> None:
    fake.script("status", job("FAILED", error="boom"))
    assert (await rp.wait("job-1", timeout=5)).status is JobStatus.FAILED


async def test_runsync_completed_in_one_call(fake: FakeRunPod, rp: RunPodClient) -> None:
    fake.script("runsync", job("COMPLETED", "sync-1", output="ok"))
    got = await rp.runsync({"prompt": "x"}, timeout=120, wait_ms=5000)
    assert got.output == "ok"
    (req,) = fake.calls("runsync")
    assert req.url.params["wait"] == "5000"
    assert fake.calls("status") == []


async def test_runsync_non_final_reply_falls_back_to_polling_with_its_id(fake: FakeRunPod, rp: RunPodClient) -> None:
    fake.script("runsync", job("IN_QUEUE", "sync-abc"))
    fake.script("status", job("IN_PROGRESS", "sync-abc"), job("COMPLETED", "sync-abc", output="late"))
    got = await rp.runsync({}, timeout=300)
    assert (got.id, got.output) == ("sync-abc", "late")
    assert all(r.url.path.endswith("/status/sync-abc") for r in fake.calls("status"))


async def test_runsync_wait_is_clamped_to_the_deadline_and_the_platform_range(
    fake: FakeRunPod, rp: RunPodClient
) -> None:
    fake.script("runsync", job("COMPLETED", "s", output="ok"))
    await rp.runsync({}, timeout=10)
    await rp.runsync({}, timeout=0.2)
    await rp.runsync({}, timeout=900, wait_ms=10**9)
    assert [r.url.params["wait"] for r in fake.calls("runsync")] == ["10000", "1000", "300000"]


async def test_runsync_http_400_with_failed_job(fake: FakeRunPod, rp: RunPodClient) -> None:
    fake.script("runsync", httpx.Response(400, json=job("FAILED", "sync-a1", error="width must be divisible by 64")))
    with pytest.raises(JobFailed, match="divisible by 64"):
        await rp.runsync({}, timeout=30)


async def test_runsync_lost_reply_says_the_job_may_still_bill(fake: FakeRunPod, rp: RunPodClient) -> None:
    fake.script("runsync", httpx.ReadTimeout("no reply"))
    with pytest.raises(RequestTimeout) as info:
        await rp.runsync({}, timeout=30)
    assert any("bill" in n for n in info.value.__notes__)
    assert len(fake.calls("runsync")) == 1


async def test_stream_yields_chunks_until_completed(fake: FakeRunPod, rp: RunPodClient) -> None:
    fake.script(
        "stream",
        {"id": "job-1", "status": "IN_QUEUE", "stream": []},
        {"id": "job-1", "status": "IN_PROGRESS", "stream": [{"output": "A"}, {"output": "B"}]},
        {"id": "job-1", "status": "IN_PROGRESS", "stream": []},
        {"id": "job-1", "status": "COMPLETED", "stream": [{"output": "C"}]},
        {"id": "job-1", "status": "COMPLETED", "stream": []},
    )
    assert [x async for x in rp.stream("job-1", timeout=30)] == ["A", "B", "C"]
    assert len(fake.calls("stream")) == 5


async def test_stream_stops_at_cancelled(fake: FakeRunPod, rp: RunPodClient) -> None:
    """runpod-python's Job.stream() never stops on CANCELLED."""
    fake.script(
        "stream",
        {"id": "job-1", "status": "IN_PROGRESS", "stream": [{"output": "A"}]},
        {"id": "job-1", "status": "CANCELLED", "stream": []},
    )
    fake.script("status", job("CANCELLED"))
    got: list[Any] = []
    with pytest.raises(JobCancelled):
        async for x in rp.stream("job-1", timeout=30):
            got.append(x)
    assert got == ["A"]
    assert len(fake.calls("stream")) == 2


async def test_stream_failed_raises_with_the_workers_message(fake: FakeRunPod, rp: RunPodClient) -> None:
    fake.script("stream", {"id": "job-1", "status": "FAILED", "stream": []})
    fake.script("status", job("FAILED", error="CUDA out of memory"))
    with pytest.raises(JobFailed, match="CUDA out of memory"):
        async for _ in rp.stream("job-1", timeout=30):
            pass


# --- deadlines and diagnosis ------------------------------------------------------------


async def test_zombie_worker_is_called_out_within_threshold_plus_one_poll(
    fake: FakeRunPod, rp: RunPodClient, clock: FakeClock
) -> None:
    """Field report 000: idle 1, ready 1, running 1, inQueue 2 stuck for hours."""
    fake.script("run", job("IN_QUEUE", "z1"))
    fake.script("status", job("IN_QUEUE", "z1"))
    fake.script(
        "health",
        health(
            {"idle": 1, "initializing": 0, "ready": 1, "running": 1, "throttled": 0, "unhealthy": 0},
            completed=56,
            inQueue=2,
        ),
    )
    fake.script("cancel", job("CANCELLED", "z1"))
    with pytest.raises(ZombieWorker) as info:
        await rp.run({}, timeout=3600)
    err = info.value
    assert 30 <= err.elapsed_s <= 30 + PollPolicy().cap_s
    assert err.cancelled and len(fake.calls("cancel")) == 1
    assert "z1" in str(err) and "idle=1" in str(err) and "inQueue=2" in str(err)


async def test_crash_loop_is_a_zombie_with_a_hint(fake: FakeRunPod, rp: RunPodClient) -> None:
    fake.script("run", job("IN_QUEUE"))
    fake.script("status", job("IN_QUEUE"))
    fake.script("health", health({"idle": 0, "running": 0, "initializing": 0, "unhealthy": 2}))
    fake.script("cancel", job("CANCELLED"))
    with pytest.raises(ZombieWorker, match="crash loop"):
        await rp.run({}, timeout=3600)


async def test_running_workers_that_finish_nothing_are_zombies(fake: FakeRunPod, rp: RunPodClient) -> None:
    fake.script("run", job("IN_QUEUE"))
    fake.script("status", job("IN_QUEUE"))
    fake.script("health", health({"idle": 0, "running": 2}, inProgress=2, inQueue=5, completed=10))
    fake.script("cancel", job("CANCELLED"))
    with pytest.raises(ZombieWorker, match="no job finished"):
        await rp.run({}, timeout=3600)


@pytest.mark.parametrize(
    ("status", "health_reply", "error"),
    [
        pytest.param(
            "IN_QUEUE", health({"idle": 0, "running": 0, "initializing": 1}), ColdStartTooSlow, id="cold-start"
        ),
        pytest.param("IN_QUEUE", health({"idle": 0, "running": 0, "throttled": 3}), NoCapacity, id="throttled"),
        pytest.param("IN_QUEUE", health({"idle": 0, "running": 0}), NoCapacity, id="no-workers"),
        pytest.param(
            "IN_PROGRESS", health({"idle": 0, "running": 1}, inProgress=1), SlowExecution, id="slow-execution"
        ),
        pytest.param("IN_QUEUE", httpx.Response(500), DiagnosedTimeout, id="health-unavailable"),
    ],
)
async def test_deadline_diagnosis(
    fake: FakeRunPod, rp: RunPodClient, status: str, health_reply: Any, error: type[DiagnosedTimeout]
) -> None:
    fake.script("run", job("IN_QUEUE"))
    fake.script("status", job(status))
    fake.script("health", health_reply)
    fake.script("cancel", job("CANCELLED"))
    with pytest.raises(error) as info:
        await rp.run({}, timeout=20)
    assert type(info.value) is error
    assert 20 <= info.value.elapsed_s < 21
    assert info.value.cancelled


async def test_backlog_when_the_queue_moves(fake: FakeRunPod, rp: RunPodClient) -> None:
    counter = itertools.count()

    def moving(_: httpx.Request) -> httpx.Response:
        return httpx.Response(
            200, json=health({"idle": 0, "running": 3}, inProgress=3, inQueue=50, completed=next(counter))
        )

    fake.script("run", job("IN_QUEUE"))
    fake.script("status", job("IN_QUEUE"))
    fake.script("health", moving)
    fake.script("cancel", job("CANCELLED"))
    with pytest.raises(QueueBacklog, match="job\\(s\\) finished"):
        await rp.run({}, timeout=120)


async def test_failed_cancel_is_reported(fake: FakeRunPod, rp: RunPodClient) -> None:
    fake.script("run", job("IN_QUEUE"))
    fake.script("status", job("IN_PROGRESS"))
    fake.script("health", health())
    fake.script("cancel", httpx.Response(500))
    with pytest.raises(SlowExecution, match="may still bill") as info:
        await rp.run({}, timeout=5)
    assert not info.value.cancelled


async def test_caller_giving_up_cancels_the_remote_job(fake: FakeRunPod) -> None:
    fake.script("run", job("IN_QUEUE", "bill-me"))
    fake.script("status", job("IN_QUEUE", "bill-me"))
    fake.script("cancel", job("CANCELLED", "bill-me"))
    async with RunPodClient(
        ENDPOINT, API_KEY, transport=fake.transport, poll=PollPolicy(first_s=0.001, cap_s=0.002)
    ) as rp:
        task = asyncio.create_task(rp.run({}, timeout=60))
        while not fake.calls("status"):
            await asyncio.sleep(0.001)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert [r.url.path for r in fake.calls("cancel")] == [f"/v2/{ENDPOINT}/cancel/bill-me"]


# --- configuration and secrets ----------------------------------------------------------


def test_config_errors() -> None:
    with pytest.raises(ConfigError, match="RUNPOD_API_KEY"):
        RunPodClient(ENDPOINT, None)
    with pytest.raises(ConfigError, match="endpoint id"):
        RunPodClient("a/b", API_KEY)
    with pytest.raises(ConfigError, match="RUNPOD_ENDPOINT_ID"):
        RunPodClient.from_env({"RUNPOD_API_KEY": API_KEY})


async def test_from_env_reads_base_url() -> None:
    rp = RunPodClient.from_env(
        {"RUNPOD_API_KEY": API_KEY, "RUNPOD_ENDPOINT_ID": ENDPOINT, "RUNPOD_ENDPOINT_BASE_URL": "http://127.0.0.1:9/v2"}
    )
    assert rp.base_url == "http://127.0.0.1:9/v2"
    await rp.aclose()


async def test_api_key_never_leaks(fake: FakeRunPod, rp: RunPodClient, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    assert API_KEY not in repr(rp) and API_KEY not in str(rp)
    echo = httpx.Response(401, text=f"invalid key {API_KEY} for endpoint")
    fake.script("status", echo)
    fake.script("run", httpx.ConnectError(f"proxy refused Authorization: Bearer {API_KEY}"))
    fake.script("health", httpx.Response(500, text=f"{{'key': '{API_KEY}'}}"))
    errors: list[BaseException] = []
    for call in (rp.status("j1"), rp.submit({}), rp.health()):
        try:
            await call
        except Exception as exc:
            errors.append(exc)
    assert len(errors) == 3
    for exc in errors:
        assert API_KEY not in str(exc) and API_KEY not in repr(exc)
        assert API_KEY not in repr(vars(exc))
    assert "***" in str(errors[0])
    assert API_KEY not in caplog.text


async def test_wait_long_polls_status_sync_within_one_poll_cap(fake: FakeRunPod, rp: RunPodClient) -> None:
    fake.script("status-sync", job("IN_PROGRESS"), job("COMPLETED", output="ok"))
    got = await rp.wait("job-1", timeout=60)
    assert got.output == "ok"
    calls = fake.calls("status-sync")
    assert len(calls) == 2 and fake.calls("status") == []
    assert all(1000 <= int(c.url.params["wait"]) <= PollPolicy().cap_s * 1000 for c in calls)


async def test_endpoints_without_status_sync_fall_back_to_polling_once(fake: FakeRunPod, rp: RunPodClient) -> None:
    fake.script("status", job("IN_QUEUE"), job("COMPLETED", output="ok"))  # no status-sync script: 404
    assert (await rp.wait("job-1", timeout=60)).output == "ok"
    assert (await rp.wait("job-1", timeout=60)).output == "ok"
    assert len(fake.calls("status-sync")) == 1  # tried once, remembered


async def test_unknown_job_is_still_an_error_with_long_polling(fake: FakeRunPod, rp: RunPodClient) -> None:
    fake.script("status-sync", httpx.Response(404, text="not found"))
    fake.script("status", httpx.Response(404, text="not found"))
    with pytest.raises(StatusError) as info:
        await rp.wait("job-1", timeout=60)
    assert info.value.status_code == 404
