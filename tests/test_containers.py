"""Workers as containers on a real Docker engine: the test workers' image (tests/workers/Dockerfile, built by
.ci/system.sh from a local Debian base and runpod 1.12 wheels) run by the emulator through testcontainers, with
the host's network and RunPod's worker environment. System stage; skipped, saying why, where no Docker engine runs.
Each new container costs seconds to tens of seconds on CI's storage driver (vfs copies the image)."""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import Iterator

import pytest

from harness import RunPodClient, ZombieWorker
from harness.cli import main
from harness.emulator import Emulator
from tests.realsystems import docker_or_skip

pytestmark = pytest.mark.system
IMAGE = "devai-worker:test"


@pytest.fixture(autouse=True)
def docker_and_image() -> Iterator[None]:
    docker_or_skip()
    found = subprocess.run(["docker", "image", "inspect", IMAGE], capture_output=True, check=False)
    if found.returncode != 0:
        pytest.fail(f"no {IMAGE} image: run `bash .ci/system.sh install`", pytrace=False)
    yield
    left = subprocess.run(
        ["docker", "ps", "-aq", "--filter", f"ancestor={IMAGE}"], capture_output=True, text=True, check=False
    )
    assert not left.stdout.split(), f"containers left after the emulator stopped: {left.stdout.split()}"


def container(file: str = "canonical.py", **overrides: object) -> Emulator:
    config: dict[str, object] = {
        "worker_image": IMAGE,
        "worker_env": {"DEVAI_WORKER_FILE": file},
        "max_workers": 1,
        "idle_timeout_s": 60,
        "worker_stop_grace_s": 3,
    }
    return Emulator(**(config | overrides))


async def test_the_canonical_worker_runs_as_a_container_with_its_cold_start_measured() -> None:
    with container() as emu:
        async with RunPodClient.of(emu) as rp:
            jobs = [await rp.run({"prompt": f"hi {i}"}, timeout=180) for i in range(2)]
        (w,) = emu.state()["workers"]
    assert [j.output for j in jobs] == ["you said: hi 0", "you said: hi 1"]
    assert w["sdk"] == "1.12.0" and "Starting Serverless Worker" in "\n".join(w["logs"])
    assert w["cold_start_s"] == w["milestones"]["first_take"] > 0  # container start to its first job take
    assert jobs[0].delay_time_ms is not None and jobs[0].delay_time_ms >= 1000 * w["cold_start_s"] - 50


async def test_a_container_that_dies_at_import_is_a_crash_loop_with_its_traceback() -> None:
    with container("import_crash.py", take_hold_s=2) as emu:
        async with RunPodClient.of(emu, stuck_after_s=5, health_every_s=0.5) as rp:
            with pytest.raises(ZombieWorker, match="crash loop"):
                await rp.run({}, timeout=240)
        # One exit already reads as a crash loop; the platform's restart (1 s later, plus a container start on
        # slow storage) proves it is one.
        for _ in range(600):
            (w,) = emu.state()["workers"]
            if w["starts"] >= 2:
                break
            await asyncio.sleep(0.1)
    assert w["starts"] >= 2 and "exited with code 1" in w["exits"][0]
    assert "RuntimeError: model load failed at import time" in "\n".join(w["logs"])


def test_worker_check_runs_the_image_as_a_worker(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["worker-check", "--target", "container", "--image", IMAGE, "--jobs", "2"]) == 0
    out = capsys.readouterr().out
    assert "#1 cold COMPLETED" in out and "#2 warm COMPLETED" in out and "verdict: OK" in out
