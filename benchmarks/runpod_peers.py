"""devai-harness RunPodClient vs runpod-python on RunPod's queue API, against the emulator (loopback).

1. Completion-detection overhead: the client's moment of "COMPLETED" minus the emulator's completion time
   (both CLOCK_MONOTONIC on this machine), and HTTP requests per job, for 1-3 s jobs:
   ours run (submit + adaptive polling) and runsync, vs runpod-python Endpoint.run_sync and Job.output().
2. Zombie verdict: a worker that ignores the queue; ours raises ZombieWorker (and cancels the job) at the
   stuck threshold + one poll; runpod-python can only time out.

runpod-python is installed into its own venv here (never a project dependency); skipped, saying why, if it
cannot be. Prints the ratios last. Bounded: --jobs sequential jobs per client, a 60 s zombie cap.

    .venv/bin/python benchmarks/runpod_peers.py [--jobs 10] [--json benchmarks/results/runpod_peers.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
import peers  # noqa: E402

PEER = r"""
import json, os, sys, time
import runpod
runpod.api_key = os.environ["RUNPOD_API_KEY"]
mode, n, timeout = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
ep = runpod.Endpoint(os.environ["RUNPOD_ENDPOINT_ID"])
for i in range(n):
    t0 = time.monotonic()
    try:
        if mode == "run_sync":
            ep.run_sync({"prompt": f"job {i}"}, timeout=timeout)
        else:
            ep.run({"prompt": f"job {i}"}).output(timeout=timeout)
        status = "ok"
    except Exception as exc:
        status = type(exc).__name__
    print(json.dumps({"done": time.monotonic(), "start": t0, "status": status}), flush=True)
"""


def finishes(emu: Any) -> list[tuple[float, str]]:
    return [(e["t"], e["detail"].split()[0]) for e in emu.state()["events"] if e["kind"] == "finish"]


def requests(emu: Any) -> int:
    return sum(n for route, n in emu.state()["requests"].items() if not route.startswith("_"))


def summarize(name: str, overheads: list[float], reqs: float, n: int) -> dict[str, Any]:
    return {
        "client": name,
        "jobs": n,
        "median_ms": statistics.median(overheads) * 1000,
        "max_ms": max(overheads) * 1000,
        "requests_per_job": reqs,
    }


async def ours(emu: Any, mode: str, n: int) -> dict[str, Any]:
    from harness import RunPodClient

    overheads, r0 = [], requests(emu)
    async with RunPodClient.of(emu) as rp:
        for i in range(n):
            job = await (
                rp.run({"prompt": f"job {i}"}, timeout=60)
                if mode == "run"
                else rp.runsync({"prompt": f"job {i}"}, timeout=60)
            )
            done = time.monotonic()
            t_finish = next(t for t, jid in finishes(emu) if jid == job.id)
            overheads.append(done - t_finish)
    return summarize(f"devai-harness {mode}", overheads, (requests(emu) - r0) / n, n)  # _emulator not counted


def theirs(emu: Any, py: Path, mode: str, n: int) -> dict[str, Any]:
    env = {
        **os.environ,
        "RUNPOD_API_KEY": emu.api_key,
        "RUNPOD_ENDPOINT_ID": emu.endpoint_id,
        "RUNPOD_ENDPOINT_BASE_URL": emu.base_url,
    }
    before = {jid for _, jid in finishes(emu)}
    r0 = requests(emu)
    out = subprocess.run(
        [str(py), "-c", PEER, mode, str(n), "60"], env=env, capture_output=True, text=True, timeout=600, check=True
    ).stdout
    rows = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    new = sorted((t, jid) for t, jid in finishes(emu) if jid not in before)
    overheads = [row["done"] - t for row, (t, _) in zip(rows, new, strict=True)]  # sequential: i-th with i-th
    return summarize(f"runpod-python {mode}", overheads, (requests(emu) - r0) / n, n)


async def zombie_ours(stuck: float) -> dict[str, Any]:
    from harness import RunPodClient, ZombieWorker
    from harness.emulator import Emulator

    with Emulator(cold_start=0.1, faults={"zombie": "ignores_queue"}) as emu:
        async with RunPodClient.of(emu, stuck_after_s=stuck, health_every_s=1.0) as rp:
            t0 = time.monotonic()
            try:
                await rp.run({"prompt": "x"}, timeout=60)
                verdict = "completed?!"
            except ZombieWorker as exc:
                verdict = f"ZombieWorker, job cancelled={exc.cancelled}"
            elapsed = time.monotonic() - t0
        left = emu.state()["health"]["jobs"]["inQueue"]
    return {"client": "devai-harness run", "seconds": elapsed, "verdict": verdict, "jobs_left_in_queue": left}


def zombie_theirs(py: Path, stuck: float) -> dict[str, Any]:
    from harness.emulator import Emulator

    with Emulator(cold_start=0.1, faults={"zombie": "ignores_queue"}) as emu:
        env = {
            **os.environ,
            "RUNPOD_API_KEY": emu.api_key,
            "RUNPOD_ENDPOINT_ID": emu.endpoint_id,
            "RUNPOD_ENDPOINT_BASE_URL": emu.base_url,
        }
        t0 = time.monotonic()
        out = subprocess.run(
            [str(py), "-c", PEER, "output", "1", str(stuck * 3)],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            check=True,
        ).stdout
        elapsed = time.monotonic() - t0
        status = json.loads(out.splitlines()[-1])["status"]
        left = emu.state()["health"]["jobs"]["inQueue"]
    return {
        "client": "runpod-python Job.output",
        "seconds": elapsed,
        "verdict": f"{status} (no diagnosis; waited the {stuck * 3:g} s it was given)",
        "jobs_left_in_queue": left,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--jobs", type=int, default=10)
    ap.add_argument("--stuck", type=float, default=5.0, help="our stuck threshold for the zombie run (s)")
    ap.add_argument("--json", help="write results here too")
    args = ap.parse_args()
    from harness.emulator import Emulator

    py = peers.peer_python("runpod")
    if py is None:
        print("runpod-python could not be installed in its own venv: its columns are skipped")
    results: dict[str, Any] = {**peers.machine(), "completion": [], "zombie": []}
    results["versions"] = {"runpod": peers.peer_version(py, "runpod") if py else None}
    with Emulator(
        cold_start=0.0,
        min_workers=1,
        idle_pickup_s=0,
        worker={"ttft_range_s": [1, 3], "filler_tokens": 8, "tokens_per_s": 0},
    ) as emu:
        for mode in ("run", "runsync"):
            results["completion"].append(asyncio.run(ours(emu, mode, args.jobs)))
            print(json.dumps(results["completion"][-1]), flush=True)
        if py is not None:
            for mode in ("run_sync", "output"):
                results["completion"].append(theirs(emu, py, mode, args.jobs))
                print(json.dumps(results["completion"][-1]), flush=True)
    results["zombie"].append(asyncio.run(zombie_ours(args.stuck)))
    if py is not None:
        results["zombie"].append(zombie_theirs(py, args.stuck))
    for z in results["zombie"]:
        print(json.dumps(z), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    print("\ncompletion detection, 1-3 s jobs (client 'done' minus the emulator's completion):")
    base = next((r for r in results["completion"] if r["client"] == "runpod-python output"), None)
    for r in results["completion"]:
        ratio = f"   {r['median_ms'] / base['median_ms']:.1%} of runpod-python Job.output's median" if base else ""
        print(
            f"  {r['client']:28s} median {r['median_ms']:7.1f} ms  max {r['max_ms']:7.1f} ms  "
            f"{r['requests_per_job']:.1f} requests/job{ratio}"
        )
    print(f"zombie worker (our stuck threshold {args.stuck:g} s + one poll <= {args.stuck + 2:g} s):")
    for z in results["zombie"]:
        print(
            f"  {z['client']:28s} {z['seconds']:6.1f} s  {z['verdict']}; jobs left in the queue: "
            f"{z['jobs_left_in_queue']}"
        )


if __name__ == "__main__":
    main()
