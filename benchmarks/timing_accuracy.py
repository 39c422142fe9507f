"""How exact are TTFT and end-to-end times — devai-harness vs GuideLLM vs AIPerf, against ground truth.

The ground truth is benchmarks/truthserver.py (loopback, pinned to core 0): it stamps the first byte of each
request in, its first token out and its last byte out. Each tool's own per-request record is matched to the
server's by request id, and error = the tool's duration - the server's (peers.errors): a perfect client is off
by the loopback round trip (~0.1 ms). Streams: TTFT 50 ms, then 15 more tokens 10 ms apart (~200 ms each).
Concurrency 1 (64 requests) and 32 (320 requests); each tool pinned to core 1. devai-harness twice: its load
driver (what the locust users run: gevent + geventhttpclient) and its async conformance client (httpx).

Goal (issue 9): median < 1 ms, p99 < 5 ms, and no worse than the best peer.

    .venv/bin/python benchmarks/timing_accuracy.py [--json benchmarks/results/timing_accuracy.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import peers

SERVER = {"ttft": 0.05, "itl": 0.01, "tokens": 16}
RUNS = {1: 64, 32: 320}  # concurrency: requests


def ours_load_driver(url: str, concurrency: int, n: int) -> list[peers.Seen]:
    """What devai-harness's locust users run (SyncOpenAI over geventhttpclient), in ``concurrency`` greenlets."""
    import gevent.pool

    from harness.load.driver import SyncOpenAI

    seen: list[peers.Seen] = []
    todo = iter(range(n))

    def worker() -> None:
        oa = SyncOpenAI(f"{url}/v1")
        try:
            for i in todo:  # greenlets share the iterator: n requests in all
                t = oa.chat_stream([{"role": "user", "content": f"request {i}"}], model="truth", max_tokens=64)
                assert t.request_id
                assert t.e2e is not None
                seen.append(peers.Seen(t.request_id, t.ttft, t.e2e))
        finally:
            oa.close()

    pool = gevent.pool.Pool(concurrency)
    for _ in range(concurrency):
        pool.spawn(worker)
    pool.join(raise_error=True)
    return seen


async def ours(url: str, concurrency: int, n: int) -> list[peers.Seen]:
    """The async conformance client (harness.clients.openai.OpenAIClient over httpx)."""
    from harness.clients.openai import OpenAIClient

    seen: list[peers.Seen] = []
    sem = asyncio.Semaphore(concurrency)
    async with OpenAIClient(f"{url}/v1", stall_timeout_s=60) as oa:

        async def one(i: int) -> None:
            async with sem:
                c = await oa.chat([{"role": "user", "content": f"request {i}"}], model="truth")
                assert c.timing.request_id
                assert c.timing.e2e is not None
                seen.append(peers.Seen(c.timing.request_id, c.timing.ttft, c.timing.e2e))

        await asyncio.gather(*(one(i) for i in range(n)))
    return seen


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--json", help="write results here too")
    ap.add_argument("--skip", default="", help="comma-separated peers to leave out (guidellm, aiperf)")
    args = ap.parse_args()
    skip = set(filter(None, args.skip.split(",")))
    results: dict[str, Any] = {**peers.machine(), "server": SERVER, "versions": {}, "tools": {}}
    # Each tool on core 1, the server alone on core 0: a tool spreading onto the server's core would delay the
    # server's own stamps and blame the tools for it. This process (running our clients) is pinned too.
    pin = peers.pin_to(1)
    results["pinning"] = "server on core 0, each tool on core 1" if pin else "none (one core)"
    with tempfile.TemporaryDirectory() as td, peers.truth_server(cpu=0, **SERVER) as url:
        tmp = Path(td)
        if pin and hasattr(os, "sched_setaffinity"):
            os.sched_setaffinity(0, {1})
        tools: dict[str, Path | None] = {"devai-harness load driver": None, "devai-harness OpenAIClient": None}
        results["versions"]["devai-harness"] = "this checkout"
        for name in ("guidellm", "aiperf"):
            py = None if name in skip else peers.peer_python(name)
            if py is not None:
                tools[name] = py
                results["versions"][name] = peers.peer_version(py, name)
        for name, py in tools.items():
            t0, rows = time.monotonic(), []
            for c, n in RUNS.items():
                peers.truth_log(url, reset=True)
                try:
                    if name == "devai-harness load driver":
                        seen = ours_load_driver(url, c, n)
                    elif py is None:
                        seen = asyncio.run(ours(url, c, n))
                    elif name == "guidellm":
                        seen = peers.run_guidellm(
                            py, url, tmp / f"g{c}.json", streams=[c], stream=True, count=n, pin=pin
                        )[0]
                    else:
                        seen = peers.run_aiperf(py, url, tmp / f"a{c}", concurrency=[c], stream=True, count=n, pin=pin)[
                            0
                        ]
                except (RuntimeError, OSError) as exc:
                    peers.log(f"{name} c={c}: skipped: {exc}")
                    continue
                rows.append({"concurrency": c, **peers.errors(seen, peers.truth_log(url))})
                peers.log(f"  {name} c={c}: {json.dumps(rows[-1])}")
            results["tools"][name] = {"runs": rows, "wall_s": time.monotonic() - t0}
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    print_table(results)


def print_table(results: dict[str, Any]) -> None:
    print("\ntiming error vs the server's own stamps, median / p99 (goal: median < 1 ms, p99 < 5 ms):")
    print(f"  {'tool':28s} {'c':>3s} {'TTFT error ms':>16s} {'e2e error ms':>16s}")
    best: dict[tuple[int, str], tuple[float, str]] = {}
    for name, r in results["tools"].items():
        for row in r["runs"]:
            t, e = row["ttft_error_ms"], row["e2e_error_ms"]
            print(
                f"  {name:28s} {row['concurrency']:3d} {t['median']:7.2f} / {t['p99']:6.2f} "
                f"{e['median']:7.2f} / {e['p99']:6.2f}"
            )
            if not name.startswith("devai-harness"):
                for k in ("ttft", "e2e"):
                    err = abs(row[f"{k}_error_ms"]["median"])
                    if err < best.get((row["concurrency"], k), (1e9, ""))[0]:
                        best[(row["concurrency"], k)] = (err, name)
    mine = {
        (row["concurrency"], name): row
        for name, r in results["tools"].items()
        if name.startswith("devai-harness")
        for row in r["runs"]
    }
    if best and mine:
        print("devai-harness median error / the best peer's (lower is better; goal: <= 1):")
        for (c, k), (b, peer) in sorted(best.items()):
            for (cc, name), row in mine.items():
                if cc == c:
                    ratio = abs(row[f"{k}_error_ms"]["median"]) / b
                    print(f"  c={c:<3d} {k:5s} {name:28s} {ratio:.2f}x (best peer: {peer}, {b:.2f} ms)")


if __name__ == "__main__":
    main()
