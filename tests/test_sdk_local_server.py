"""runpod-python's own local test server (``python worker.py --rp_serve_api``), the first thing many users try: the
reference worker (harness.emulator.refworker) served by the real SDK (1.12, its own venv), driven by RunPodClient and
by ``check --target runpod-local``. System stage."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness import ConfigError, JobStatus, RunPodClient, StatusError, WorkerError, extract
from harness.cli import main
from harness.conformance.suite import find_suite
from harness.conformance.tasks import load_cases, scripted_rules
from tests.realsystems import ROOT, runpod_python

pytestmark = pytest.mark.system


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_for_port(port: int, proc: subprocess.Popen[bytes], within: float = 60) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"the SDK's local server exited with code {proc.returncode}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    pytest.fail(f"the SDK's local server did not listen on {port} within {within:g} s")


@pytest.fixture(scope="module")
def sdk_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The reference worker under ``--rp_serve_api``, answering the devai task cases with their good answers."""
    suite = find_suite()
    assert suite is not None
    options = {"ttft_s": 0, "tokens_per_s": 0, "responses": scripted_rules(load_cases(suite / "tasks"))}
    port = free_port()
    log = tmp_path_factory.mktemp("sdk-local") / "server.log"
    cmd = [runpod_python(), "-m", "harness.emulator.refworker", "--rp_serve_api", "--rp_api_port", str(port)]
    cmd += ["--rp_api_host", "127.0.0.1"]
    env = os.environ | {"DEVAI_WORKER_OPTIONS": json.dumps(options), "RUNPOD_SKIP_AUTO_SYSTEM_CHECKS": "true"}
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
        try:
            wait_for_port(port, proc)
            yield f"http://127.0.0.1:{port}"
        finally:
            proc.terminate()
            proc.wait(15)


async def test_the_client_runs_polls_and_streams_on_the_sdk_server(sdk_server: str) -> None:
    async with RunPodClient.local(sdk_server) as rp:
        synced = await rp.runsync({"prompt": "hello"}, timeout=60)
        polled = await rp.run({"prompt": "hello"}, timeout=60)
        job_id = await rp.submit({"prompt": "hello", "stream": True})
        chunks = [c async for c in rp.stream(job_id, timeout=60)]
    assert synced.status is polled.status is JobStatus.COMPLETED
    assert extract(synced.output).shape == extract(polled.output).shape == "vllm-native-tokens"
    assert len(chunks) >= 2 and extract(chunks).text == extract(polled.output).text


async def test_what_the_sdk_server_lacks_is_a_config_error_saying_so(sdk_server: str) -> None:
    async with RunPodClient.local(sdk_server) as rp:
        for call in (rp.health(), rp.cancel("some-job"), rp.purge_queue()):
            with pytest.raises(ConfigError, match="local test server has no"):
                await call


async def test_a_raising_generator_handler_is_an_http_500_that_says_what_happened(sdk_server: str) -> None:
    """The SDK's local server runs the job inside POST /status; a generator handler that raises escapes as a bare
    HTTP 500 (runpod 1.12). The error says so, and does not claim the job may still bill."""
    async with RunPodClient.local(sdk_server) as rp:
        with pytest.raises(StatusError, match="HTTP 500") as info:
            await rp.run({"prompt": "x", "_fault": "raise"}, timeout=60)
    notes = "".join(getattr(info.value, "__notes__", []))
    assert "it raised (see its console)" in str(info.value) and "billing" not in notes


async def test_a_worker_error_object_is_the_job_output(sdk_server: str) -> None:
    async with RunPodClient.local(sdk_server) as rp:
        job = await rp.run({"prompt": "x", "_fault": "yield_error"}, timeout=60)
    with pytest.raises(WorkerError, match="injected worker error"):
        extract(job.output)


def test_check_runs_the_suite_against_the_sdk_server(sdk_server: str, tmp_path: Path) -> None:
    argv = ["check", "--target", "runpod-local", "--base-url", sdk_server, "--run-dir", str(tmp_path), "-q"]
    assert main(argv) == 0, (tmp_path / "suite.log").read_text()
    report = json.loads((tmp_path / "report.json").read_text())
    stages = {s["name"]: s for s in report["stages"]}
    assert stages["suite"]["verdict"] == "PASS" and stages["latency"]["verdict"] == "N/A"
    junit = (tmp_path / "suite-junit.xml").read_text()
    assert "local test server has no /health" in junit and "local test server has no OpenAI" in junit
