"""Real runpod SDK workers against the in-process worker, in one run: dispatch overhead, jobs/s, cold start.

* Dispatch: job submitted -> handler entered, and handler returned -> the client sees COMPLETED, split into the
  emulator's part (queue -> hand-over to a worker already waiting in its job take; job-done received -> client
  sees it) and the SDK's part (hand-over -> handler entered; handler returned -> job-done received). Goal: the
  emulator adds < 10 ms per job at the median beyond the SDK's own loop.
* Jobs/s through one worker at concurrency 1 and 8 (all jobs submitted at once), in-process and SDK.
* Cold start of a real worker: spawn -> first line of the file (interpreter start), ``import runpod``, SDK start ->
  first job take; and the same for the worker as a container (docker, vfs storage on CI) when Docker is there.

The worker is tests/workers/timed.py (made by us): it prints time.monotonic() marks and returns when its handler
was entered and returned — one clock for every process on a Linux machine, containers included.

    .venv/bin/python benchmarks/real_workers.py [--python PATH] [--jobs 30] [--image devai-worker:test] [--no-save]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import statistics
import time
from pathlib import Path
from typing import Any

from harness import RunPodClient
from harness.emulator import Emulator
from harness.emulator.processes import docker_available

ROOT = Path(__file__).parent.parent
WORKERS = ROOT / "tests" / "workers"
RESULTS = Path(__file__).parent / "results" / "real_workers.json"
PARTS = ("ours_in", "sdk_in", "sdk_out", "ours_out")


def emulator(kind: str, python: str, concurrency: int = 1, image: str | None = None) -> Emulator:
    common: dict[str, Any] = {"max_workers": 1, "idle_timeout_s": 120, "take_hold_s": 30, "worker_stop_grace_s": 3}
    if kind == "in-process":
        return Emulator(handler=f"{WORKERS / 'timed.py'}:handler", cold_start=0, concurrency=concurrency, **common)
    env = {"TIMED_CONCURRENCY": str(concurrency)}
    if kind == "container":
        return Emulator(worker_image=image, worker_env=env | {"DEVAI_WORKER_FILE": "timed.py"}, **common)
    return Emulator(worker_command=f"{python} timed.py", worker_cwd=str(WORKERS), worker_env=env, **common)


async def _until_taking(emu: Emulator, remote: bool) -> None:
    """Submit only when the worker already waits in its job take: the SDK's own pause between takes (it sleeps
    ~1 s after a job at concurrency 1) is the SDK's loop, not the emulator's dispatch."""
    deadline = time.monotonic() + 5
    while remote and time.monotonic() < deadline:
        if any(w.take is not None for w in emu.endpoint.workers.values()):
            return
        await asyncio.sleep(0.002)


async def dispatch(kind: str, python: str, n: int) -> dict[str, float]:
    rows: dict[str, list[float]] = {p: [] for p in (*PARTS, "in_total", "out_total")}
    with emulator(kind, python) as emu:
        async with RunPodClient.of(emu) as rp:
            await rp.run({}, timeout=120)  # the cold start is not dispatch
            for _ in range(n):
                await _until_taking(emu, kind != "in-process")
                t_submit = time.monotonic()
                job = await rp.run({}, timeout=60)
                t_seen = time.monotonic()
                ej = emu.endpoint.get(job.id)
                assert ej is not None
                assert ej.started_at is not None
                assert ej.finished_at is not None
                entered, returned = job.output["entered"], job.output["returned"]
                rows["ours_in"].append(ej.started_at - ej.submitted_at)
                rows["sdk_in"].append(entered - ej.started_at)
                rows["sdk_out"].append(ej.finished_at - returned)
                rows["ours_out"].append(t_seen - ej.finished_at)
                rows["in_total"].append(entered - t_submit)
                rows["out_total"].append(t_seen - returned)
    return {k: round(statistics.median(v) * 1000, 2) for k, v in rows.items()}


async def throughput(kind: str, python: str, concurrency: int, n: int) -> float:
    with emulator(kind, python, concurrency) as emu:
        async with RunPodClient.of(emu) as rp:
            await rp.run({}, timeout=120)
            t0 = time.monotonic()
            await asyncio.gather(*(rp.run({}, timeout=300) for _ in range(n)))
            return round(n / (time.monotonic() - t0), 2)


def _marks(logs: list[str]) -> dict[str, float]:
    out = {}
    for line in logs:
        if line.startswith("devai-mark "):
            _, name, value = line.split()
            out[name] = float(value)
    return out


async def cold_start(kind: str, python: str, image: str | None = None) -> dict[str, float]:
    with emulator(kind, python, image=image) as emu:
        async with RunPodClient.of(emu) as rp:
            await rp.run({}, timeout=600)
        (w,) = emu.endpoint.workers.values()
        marks = _marks(w.logs)
        spawned, take = w.spawned_at, w.spawned_at + w.milestones["first_take"]
    return {
        "start_to_first_line_ms": round((marks["start"] - spawned) * 1000, 1),
        "import_runpod_ms": round((marks["runpod"] - marks["start"]) * 1000, 1),
        "sdk_start_to_first_take_ms": round((take - marks["runpod"]) * 1000, 1),
        "total_ms": round((take - spawned) * 1000, 1),
    }


async def main(args: argparse.Namespace) -> dict[str, Any]:
    results: dict[str, Any] = {"machine": f"{platform.machine()} {platform.python_version()}", "jobs": args.jobs}
    for kind in ("in-process", "sdk-process"):
        results[f"dispatch_{kind}"] = d = await dispatch(kind, args.python, args.jobs)
        print(f"dispatch {kind:11s} median ms: " + ", ".join(f"{k} {v}" for k, v in d.items()))
    sdk = results["dispatch_sdk-process"]
    ours = round(sdk["ours_in"] + sdk["ours_out"], 2)
    results["emulator_ms_per_sdk_job"] = ours
    print(f"the emulator's part of a real worker's dispatch: {ours} ms per job at the median (goal < 10 ms)")
    for c in (1, 8):
        for kind in ("in-process", "sdk-process"):
            rate = results[f"jobs_per_s_{kind}_c{c}"] = await throughput(kind, args.python, c, args.jobs)
            print(f"jobs/s {kind:11s} concurrency {c}: {rate}")
    cold = results["cold_start_sdk-process"] = [await cold_start("sdk-process", args.python) for _ in range(3)]
    results["cold_start_sdk-process_median"] = med = {k: statistics.median(c[k] for c in cold) for k in cold[0]}
    print("cold start, real worker process (median of 3): " + ", ".join(f"{k} {v}" for k, v in med.items()))
    ok, why = docker_available()
    if ok and args.image:
        box = results["cold_start_container"] = await cold_start("container", args.python, image=args.image)
        print("cold start, container (1 run): " + ", ".join(f"{k} {v}" for k, v in box.items()))
        print(f"container / process cold start: {box['total_ms'] / med['total_ms']:.1f}x")
    else:
        results["cold_start_container"] = f"not measured: {why or 'no --image'}"
        print(results["cold_start_container"])
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--python", default=str(ROOT / ".ci-state" / "runpod-1.12" / "bin" / "python"))
    parser.add_argument("--jobs", type=int, default=30)
    parser.add_argument("--image", default="devai-worker:test")
    parser.add_argument("--no-save", action="store_true")
    args = parser.parse_args()
    results = asyncio.run(main(args))
    if not args.no_save:
        RESULTS.write_text(json.dumps(results, indent=2) + "\n")
