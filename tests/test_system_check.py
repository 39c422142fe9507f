"""The main job against `devai-harness emulate` as a live RunPod target: the whole suite runs (the devai tasks
through both input forms and the endpoint's /openai/v1 route, the protocol scenarios that apply to a live
endpoint) and the run exits 0 — with the reference worker in-process, and as a real worker file driven by the
runpod SDK through the worker API. System stage: about a minute and a half each."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent
KEY = "local-system-test-key"
EMULATE = [sys.executable, "-m", "harness", "emulate"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def reference_worker() -> list[str]:
    """The reference worker as a real worker file under the runpod SDK, answering the task cases' good answers."""
    from harness.conformance.suite import find_suite
    from harness.conformance.tasks import load_cases, scripted_rules
    from tests.realsystems import runpod_python

    suite = find_suite()
    assert suite is not None
    options = {"responses": scripted_rules(load_cases(suite / "tasks"))}
    command = f"{runpod_python()} -m harness.emulator.refworker"
    env = [f"DEVAI_WORKER_OPTIONS={json.dumps(options)}", "DEVAI_WORKER_CONCURRENCY=8"]
    return ["--worker", command, "--worker-cwd", str(ROOT), *(a for e in env for a in ("--worker-env", e))]


@pytest.mark.system
@pytest.mark.parametrize("worker", ["in-process", "sdk-worker"])
def test_check_against_an_emulate_endpoint_runs_the_whole_suite_and_passes(tmp_path: Path, worker: str) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RUNPOD_", "OPENAI_"))} | {"RUNPOD_API_KEY": KEY}
    extra = reference_worker() if worker == "sdk-worker" else []
    emu = subprocess.Popen(
        [*EMULATE, "--port", str(port), "--api-key-env", "RUNPOD_API_KEY", "--quiet-workers", *extra],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert emu.stdout is not None and "RunPod emulator on" in emu.stdout.readline()
        run = tmp_path / "run"
        live = env | {"RUNPOD_ENDPOINT_BASE_URL": f"http://127.0.0.1:{port}/v2", "RUNPOD_ENDPOINT_ID": "emulator"}
        proc = subprocess.run(
            [sys.executable, "-m", "harness", "check", "-q", "--target", "runpod", "--run-dir", str(run)],
            env=live,
            cwd=tmp_path,  # outside the repository: the suite is found beside the package
            capture_output=True,
            text=True,
            timeout=900,
        )
    finally:
        emu.terminate()
        emu.wait(10)
        if emu.stdout is not None:
            emu.stdout.close()
    assert proc.returncode == 0, proc.stdout[-3000:]
    stages = {s["name"]: s for s in json.loads((run / "report.json").read_text())["stages"]}
    suite = stages["suite"]
    outcomes = [r["outcome"] for r in suite["rows"]]
    assert suite["verdict"] == "PASS" and outcomes.count("passed") >= 40, suite["summary"]
    openai_route = [r for r in suite["rows"] if "test_task_via_openai" in r["test"]]
    assert openai_route and all(r["outcome"] == "passed" for r in openai_route)  # through the endpoint's /openai/v1
    assert stages["latency"]["verdict"] == "PASS" and KEY not in (run / "report.json").read_text()
