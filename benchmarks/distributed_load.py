"""Load per core under locust's distributed mode: does a master + 2 workers give what one process gives?

The ground-truth server (benchmarks/truthserver.py) runs on core 0; the load runs on core 1 — one locust process,
then a master and two workers, ALL on core 1 (this VM has two cores: with the server on one, both workers must
share the other). So this measures what distributing costs per core (the zeromq reports, the master), not scaling
across machines: the goal, "load per machine = one process's per-core load x the worker count within 10%",
reduces here to the two-worker run on one core staying within 10% of the single process. Non-streaming chat
(ChatUser) at --users concurrent users, --seconds per run; requests/s from our records, timing error against the
server's log (median ms).

    .venv/bin/python benchmarks/distributed_load.py [--users 64] [--seconds 8] [--no-save]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import peers

ROOT = peers.ROOT
RESULTS = ROOT / "benchmarks" / "results" / "distributed_load.json"
LOCUSTFILE = str(ROOT / "locustfiles" / "chat.py")


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def single(url: str, users: int, seconds: float, out: Path) -> None:
    peers.run_locust(
        Path(LOCUSTFILE),
        "ChatUser",
        f"{url}/v1",
        users=users,
        seconds=seconds,
        env={},
        extra=["--run-dir", str(out), "--model", "truth"],
    )


def distributed(url: str, users: int, seconds: float, out: Path, workers: int = 2) -> None:
    port = _port()
    base = [*peers.pin_to(1), sys.executable, "-m", "locust", "-f", LOCUSTFILE, "--loglevel", "ERROR"]
    master = [*base, "--master", "--headless", "--only-summary", "--master-bind-host", "127.0.0.1"]
    master += ["--master-bind-port", str(port), "--expect-workers", str(workers), "-u", str(users), "-r", str(users)]
    master += ["-t", f"{seconds:g}s", "--host", f"{url}/v1", "--run-dir", str(out), "--model", "truth"]
    worker = [*base, "--worker", "--master-host", "127.0.0.1", "--master-port", str(port)]
    procs = [subprocess.Popen(master, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    procs += [subprocess.Popen(worker, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for _ in range(workers)]
    for p in procs:
        p.wait(seconds + 120)


def measure(url: str, run: Any, users: int, seconds: float, out: Path) -> dict[str, Any]:
    from harness.load.records import load_records

    peers.truth_log(url, reset=True)
    run(url, users, seconds, out)
    records = [r for r in load_records(out) if r.status == "ok"]
    first = min(r.start_unix for r in records)
    steady = [r for r in records if r.start_unix >= first + 1.0]  # the first second (connections, spawn) left out
    span = max(r.start_unix for r in steady) - min(r.start_unix for r in steady)
    errors = peers.errors(peers.ours_seen(out), peers.truth_log(url), skip_s=1.0)
    return {
        "requests_per_s": round(len(steady) / span, 1),
        "processes": len({r.process for r in records}),
        "e2e_error_ms_median": errors["e2e_error_ms"]["median"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--users", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--no-save", action="store_true")
    args = parser.parse_args()
    results: dict[str, Any] = {"machine": peers.machine(), "commit": peers.commit(), "users": args.users}
    results["pinning"] = "server on core 0, all load processes on core 1" if peers.pin_to(1) else "none"
    with (
        peers.truth_server(cpu=0, ttft=0.0, itl=0.0, tokens=4, latency=0.005) as url,
        tempfile.TemporaryDirectory() as t,
    ):
        for name, run in (("one process", single), ("master + 2 workers", distributed)):
            results[name] = measure(url, run, args.users, args.seconds, Path(t) / name.replace(" ", "-"))
            peers.log(f"{name}: {results[name]}")
    ratio = results["master + 2 workers"]["requests_per_s"] / results["one process"]["requests_per_s"]
    results["ratio"] = round(ratio, 3)
    print(
        f"requests/s on one core: one process {results['one process']['requests_per_s']}, master + 2 workers "
        f"{results['master + 2 workers']['requests_per_s']}: ratio {ratio:.2f} (goal >= 0.90)"
    )
    if not args.no_save:
        RESULTS.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
