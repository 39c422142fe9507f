"""``worker-check --target container``: start a worker image with testcontainers and see it stay up.

Field report 002's container started and died 5-6 s later with no logs. This starts the image, watches
it through a crash window (it must stay running, and it should log something), then sends one request:
RunPod's local API mode (``python handler.py --rp_serve_api``: POST /runsync) or, failing that, an
OpenAI-compatible server (GET /v1/models, POST /v1/chat/completions). The output goes through
:func:`harness.core.shapes.extract`.

Needs a Docker engine. Without one the check is SKIPPED with the reason (this machine has none, so
that path is what our tests cover). Where Docker exists::

    devai-harness worker-check --target container --image my-worker:latest --container-port 8000
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx

from harness.core.errors import ShapeError, WorkerError
from harness.core.shapes import extract
from harness.emulator.processes import docker_available
from harness.preflight.workercheck import WorkerReport, load_test_input

__all__ = ["check_container", "docker_available"]


def _probe_api(base: str, job_input: Any, timeout: float) -> tuple[str, Any]:
    """("runpod-local" | "openai", output) from the first API that answers."""
    with httpx.Client(base_url=base, timeout=timeout) as http:
        r = http.post("/runsync", json={"input": job_input})
        if r.status_code != 404:
            r.raise_for_status()
            return "runpod-local", r.json()
        models = http.get("/v1/models").raise_for_status().json()
        model = models["data"][0]["id"]
        body = {"model": model, "messages": [{"role": "user", "content": "Say hello."}], "max_tokens": 16}
        return "openai", http.post("/v1/chat/completions", json=body).raise_for_status().json()


def check_container(
    image: str | None,
    *,
    job_input: str | None = None,
    crash_window_s: float = 15.0,
    port: int = 8000,
    request_timeout: float = 600.0,
) -> WorkerReport:
    report = WorkerReport(handler=f"image {image}")
    if not image:
        report.add("container", "fail", "--target container needs --image IMAGE")
        return report
    ok, why = docker_available()
    if not ok:
        report.add(
            "container",
            "skip",
            f"skipped: {why}",
            ["run it where a Docker engine is available (docker info must work)"],
        )
        return report
    from testcontainers.core.container import DockerContainer

    container = DockerContainer(image).with_exposed_ports(port)
    data, source = load_test_input(Path("test_input.json").resolve(), job_input)
    try:
        container.start()
        t0 = time.monotonic()
        wrapped = container.get_wrapped_container()
        while time.monotonic() - t0 < crash_window_s:
            wrapped.reload()
            if wrapped.status != "running":
                code = wrapped.attrs.get("State", {}).get("ExitCode")
                out, err = container.get_logs()
                logs = (out + err).decode(errors="replace").strip().splitlines()
                report.add(
                    "stays up",
                    "fail",
                    f"exited with code {code} after {time.monotonic() - t0:.1f} s",
                    logs[-10:]
                    or [
                        "and printed NO logs: the crash happened before logging (field report 002);"
                        " run `devai-harness worker-check handler.py` on the handler"
                    ],
                )
                return report
            time.sleep(0.5)
        report.add("stays up", "pass", f"still running after {crash_window_s:g} s")
        out, err = container.get_logs()
        lines = (out + err).decode(errors="replace").strip().splitlines()
        report.add(
            "logs",
            "pass" if lines else "warn",
            f"{len(lines)} line(s)" if lines else "no logs at all: failures will be invisible",
            lines[-3:],
        )
        base = f"http://{container.get_container_host_ip()}:{container.get_exposed_port(port)}"
        kind, output = _probe_api(base, data, request_timeout)
        try:
            got = extract(output)
            report.add(
                "request", "pass", f"{kind} API, test input from {source}: shape {got.shape}, {len(got.text)} chars"
            )
        except (ShapeError, WorkerError) as exc:
            report.add("request", "fail", f"{kind} API answered, but: {exc}", [json.dumps(output)[:300]])
    except httpx.HTTPError as exc:
        report.add("request", "fail", f"{type(exc).__name__}: {exc}")
    finally:
        container.stop()
    return report
