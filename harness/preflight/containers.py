"""``worker-check --target container --image IMAGE``: the worker image, run as RunPod runs it.

The image is started through testcontainers by the emulator (``emulate --image``, host network, RunPod's worker
environment), so the SDK inside it takes jobs from the emulator's worker API: the first job's delayTime is the
container's real cold start (start to first job take). A container that dies at start (field report 002: 5-6 s
after start, no logs) shows as a crash loop with whatever it printed.

Needs a Docker engine. Without one the check is SKIPPED with the reason and the verdict is NOT CHECKED.
"""

from __future__ import annotations

from pathlib import Path

from harness.emulator.processes import docker_available
from harness.preflight.jobrun import run_under_emulator
from harness.preflight.report import WorkerReport, load_test_input

__all__ = ["check_container", "docker_available"]


def check_container(
    image: str | None,
    *,
    job_input: str | None = None,
    jobs: int = 3,
    job_timeout: float = 600.0,
    stuck_after_s: float = 30.0,
) -> WorkerReport:
    report = WorkerReport(handler=f"image {image}")
    if not image:
        report.add("container", "fail", "--target container needs --image IMAGE")
        return report
    data, source = load_test_input(Path("test_input.json").resolve(), job_input)
    ok, why = docker_available()
    if not ok:
        hint = ["run it where a Docker engine is available (docker info must work)"]
        report.add("container", "skip", f"skipped: {why}", hint)
        return report
    report.add("test input", "pass", f"from {source}")
    run_under_emulator(
        report, ["--image", image], data, jobs=jobs, job_timeout=job_timeout, stuck_after_s=stuck_after_s
    )
    return report
