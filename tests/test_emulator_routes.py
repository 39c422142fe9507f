"""Every route of docs/reference/runpod-queue.md §1 against the emulator, raw httpx and RunPodClient."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from harness import JobStatus, JobTimedOut, RunPodClient, StatusError, extract
from harness.emulator import Emulator
from tests.virtualtime import in_process, run_virtual

FAST = {"cold_start": 0.0}


@pytest.fixture
async def http(emulator: Emulator) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        base_url=emulator.endpoint_url, timeout=30, headers={"Authorization": f"Bearer {emulator.api_key}"}
    ) as client:
        yield client


async def wait_status(http: httpx.AsyncClient, job_id: str, want: set[str], limit: float = 10) -> dict[str, Any]:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        data: dict[str, Any] = (await http.get(f"/status/{job_id}")).json()
        if data["status"] in want:
            return data
        await asyncio.sleep(0.01)
    raise AssertionError(f"{job_id} never reached {want}")


@pytest.mark.emulator(**FAST)
async def test_run_then_status_get_and_post_with_every_field(http: httpx.AsyncClient) -> None:
    r = await http.post("/run", json={"input": {"prompt": "hi"}})
    assert r.status_code == 200
    submitted = r.json()
    assert set(submitted) == {"id", "status"} and submitted["status"] == "IN_QUEUE"
    done = await wait_status(http, submitted["id"], {"COMPLETED"})
    assert {"id", "status", "delayTime", "executionTime", "output", "workerId"} <= set(done)
    assert isinstance(done["delayTime"], int) and isinstance(done["executionTime"], int)
    assert (await http.post(f"/status/{submitted['id']}")).json() == done
    assert extract(done).shape == "vllm-native-tokens"


@pytest.mark.emulator(**FAST)
async def test_runsync_returns_the_finished_job_with_a_sync_id(http: httpx.AsyncClient) -> None:
    data = (await http.post("/runsync", json={"input": {"prompt": "hi"}})).json()
    assert data["id"].startswith("sync-") and data["status"] == "COMPLETED"
    assert extract(data).text


@pytest.mark.emulator(cold_start=1.5)
async def test_runsync_returns_a_non_final_job_when_it_outlives_the_wait(http: httpx.AsyncClient) -> None:
    t0 = time.monotonic()
    data = (await http.post("/runsync?wait=1000", json={"input": {"prompt": "hi"}})).json()
    assert 1.0 <= time.monotonic() - t0 < 1.5
    assert set(data) == {"id", "status"} and data["status"] in ("IN_QUEUE", "IN_PROGRESS")
    synced = (await http.get(f"/status-sync/{data['id']}?wait=5000")).json()
    assert synced["status"] == "COMPLETED"
    assert synced["delayTime"] >= 1500  # the cold start, measured, not invented


@pytest.mark.emulator(**FAST)
async def test_runsync_failure_is_http_400_with_the_failed_job(http: httpx.AsyncClient) -> None:
    r = await http.post("/runsync", json={"input": {"prompt": "x", "_fault": "raise"}})
    assert r.status_code == 400
    assert r.json()["status"] == "FAILED" and "injected handler exception" in r.json()["error"]


@pytest.mark.emulator(**FAST)
async def test_auth_and_unknown_ids(emulator: Emulator, http: httpx.AsyncClient) -> None:
    async with httpx.AsyncClient(base_url=emulator.base_url) as anon:
        assert (await anon.post(f"/{emulator.endpoint_id}/run", json={"input": {}})).status_code == 401
        bare = {"Authorization": emulator.api_key}  # RunPod's docs also show the bare key
        assert (await anon.get(f"/{emulator.endpoint_id}/health", headers=bare)).status_code == 200
        auth = {"Authorization": f"Bearer {emulator.api_key}"}
        assert (await anon.get("/other-endpoint/health", headers=auth)).status_code == 404
    for route in ("status", "stream", "status-sync"):
        assert (await http.get(f"/{route}/no-such-job")).status_code == 404
    for route in ("cancel", "retry"):
        assert (await http.post(f"/{route}/no-such-job")).status_code == 404


@pytest.mark.emulator(**FAST, max_run_bytes=1000, max_runsync_bytes=2000)
async def test_payload_limits_and_bad_bodies(http: httpx.AsyncClient) -> None:
    big = {"input": {"prompt": "x" * 1500}}
    assert (await http.post("/run", json=big)).status_code == 413
    assert (await http.post("/runsync", json=big)).status_code == 200  # runsync allows twice as much
    assert (await http.post("/run", content=b"{not json")).status_code == 400
    assert (await http.post("/run", json={"no_input": 1})).status_code == 400


@pytest.mark.emulator(cold_start=0.0, worker={"ttft_s": 0.1, "tokens_per_s": 100})
async def test_stream_drains_only_what_is_buffered_and_ends_terminal(http: httpx.AsyncClient) -> None:
    job_id = (await http.post("/run", json={"input": {"prompt": "x", "stream": True}})).json()["id"]
    outputs: list[Any] = []
    polls = 0
    while True:
        polls += 1
        data = (await http.get(f"/stream/{job_id}")).json()
        assert set(data) >= {"status", "stream", "id"}
        outputs.extend(item["output"] for item in data["stream"])
        if data["status"] == "COMPLETED" and not data["stream"]:
            break
    assert polls >= 3  # chunks arrived over several polls, not all at once
    final = (await http.get(f"/status/{job_id}")).json()
    assert final["output"] == outputs  # return_aggregate_stream: the list of every yield, in order
    assert [b for b in (len(o["choices"][0]["tokens"]) for o in outputs)][:4] == [1, 3, 9, 27]


@pytest.mark.emulator(cold_start=0.0, stream_hold_s=0.3, worker={"ttft_s": 5})
async def test_empty_stream_poll_is_held(http: httpx.AsyncClient) -> None:
    job_id = (await http.post("/run", json={"input": {"prompt": "x", "stream": True}})).json()["id"]
    t0 = time.monotonic()
    data = (await http.get(f"/stream/{job_id}")).json()
    assert data["stream"] == [] and data["status"] == "IN_PROGRESS"
    assert time.monotonic() - t0 >= 0.3
    await http.post(f"/cancel/{job_id}")


@pytest.mark.emulator(cold_start=0.0, max_workers=1, worker={"ttft_s": 5})
async def test_cancel_running_and_queued_and_purge(http: httpx.AsyncClient) -> None:
    running = (await http.post("/run", json={"input": {"prompt": "a"}})).json()["id"]
    await wait_status(http, running, {"IN_PROGRESS"})
    queued = [(await http.post("/run", json={"input": {"prompt": str(i)}})).json()["id"] for i in range(3)]
    assert (await http.post(f"/cancel/{queued[0]}")).json() == {"id": queued[0], "status": "CANCELLED"}
    purged = (await http.post("/purge-queue")).json()
    assert purged == {"removed": 2, "status": "completed"}
    assert (await http.get(f"/status/{queued[1]}")).status_code == 404
    assert (await http.post(f"/cancel/{running}")).json()["status"] == "CANCELLED"
    health = (await http.get("/health")).json()
    assert health["jobs"]["inQueue"] == 0 and health["jobs"]["inProgress"] == 0


@pytest.mark.emulator(cold_start=0.0)
async def test_retry_only_failed_or_timed_out(http: httpx.AsyncClient) -> None:
    ok = (await http.post("/runsync", json={"input": {"prompt": "x"}})).json()
    assert (await http.post(f"/retry/{ok['id']}")).status_code == 400
    failed = (await http.post("/run", json={"input": {"prompt": "x", "_fault": "raise"}})).json()["id"]
    await wait_status(http, failed, {"FAILED"})
    assert (await http.post(f"/retry/{failed}")).json() == {"id": failed, "status": "IN_QUEUE"}
    again = await wait_status(http, failed, {"FAILED"})
    assert again["retries"] == 1
    assert (await http.get("/health")).json()["jobs"]["retried"] == 1


def test_retention_windows() -> None:
    """RunPod's own windows, in virtual time: a /runsync result is kept 1 min, a /run result 30 min."""

    async def main() -> None:
        async with in_process(cold_start=0.0) as rp:
            run_id = await rp.submit({"prompt": "x"})
            assert (await rp.wait(run_id, timeout=60)).status is JobStatus.COMPLETED
            sync = await rp.runsync({"prompt": "x"}, timeout=60)
            await rp.clock.sleep(61)
            with pytest.raises(StatusError, match="job expired") as gone:
                await rp.status(sync.id)
            assert gone.value.status_code == 404
            assert (await rp.status(run_id)).status is JobStatus.COMPLETED
            await rp.clock.sleep(30 * 60)
            with pytest.raises(StatusError, match="404"):
                await rp.status(run_id)

    run_virtual(main())


@pytest.mark.emulator(cold_start=0.0, worker={"ttft_s": 5})
async def test_policy_ttl_and_execution_timeout(http: httpx.AsyncClient) -> None:
    ttl = (await http.post("/run", json={"input": {"prompt": "x"}, "policy": {"ttl": 200}})).json()["id"]
    slow = (await http.post("/run", json={"input": {"prompt": "x"}, "policy": {"executionTimeout": 200}})).json()
    timed_out = await wait_status(http, slow["id"], {"TIMED_OUT"})
    assert 200 <= timed_out["executionTime"] < 1000
    await asyncio.sleep(0.1)
    assert (await http.get(f"/status/{ttl}")).status_code == 404


@pytest.mark.emulator(cold_start=0.0, max_workers=2, concurrency=2, worker={"ttft_s": 0.05, "tokens_per_s": 0})
async def test_no_job_lost_and_health_agrees(emulator: Emulator) -> None:
    n = 120
    async with RunPodClient.of(emulator) as rp:
        ids = await asyncio.gather(*(rp.submit({"prompt": f"job {i}"}) for i in range(n)))
        jobs = await asyncio.gather(*(rp.wait(i, timeout=60) for i in ids))
        health = await rp.health()
    assert len(set(ids)) == n
    assert [j.status for j in jobs] == [JobStatus.COMPLETED] * n
    assert (health.jobs.completed, health.jobs.failed, health.jobs.in_queue, health.jobs.in_progress) == (n, 0, 0, 0)
    assert {j.worker_id for j in jobs} <= {w["id"] for w in emulator.state()["workers"]}


@pytest.mark.emulator(cold_start=0.0, worker={"ttft_s": 1})
async def test_the_client_sees_typed_errors_from_the_emulator(emulator: Emulator) -> None:
    async with RunPodClient.of(emulator) as rp:
        with pytest.raises(StatusError) as info:
            await rp.status("unknown-job")
        assert info.value.status_code == 404
        with pytest.raises(JobTimedOut):
            await rp.run({"prompt": "x"}, policy={"executionTimeout": 100}, timeout=30)


async def test_wrong_key_is_a_401_status_error(emulator: Emulator) -> None:
    async with RunPodClient(emulator.endpoint_id, "wrong-key", base_url=emulator.base_url) as rp:
        with pytest.raises(StatusError, match="401"):
            await rp.health()


def test_listening_socket_is_tcp_so_replies_are_not_delayed_by_nagle() -> None:
    """asyncio sets TCP_NODELAY only on sockets whose proto is IPPROTO_TCP; a plain socket.socket() has
    proto 0, and every keep-alive reply then waited ~40 ms for a delayed ACK (seen here: 44 ms vs 0.5 ms)."""
    with Emulator(cold_start=0.0) as emu:
        sock = emu._server.sock
        assert sock is not None
        assert sock.proto == socket.IPPROTO_TCP
