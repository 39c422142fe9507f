"""Load per core: how much load ONE core of load generator sustains before its own timing error exceeds 5 ms —
devai-harness's locust users vs plain locust FastHttpUser vs GuideLLM vs AIPerf, against the same loopback
ground-truth server (benchmarks/truthserver.py).

The server runs pinned to core 0, each tool (with every process it starts) pinned to core 1 by taskset. For
each concurrency level a tool runs ``--seconds``; its own per-request records are matched to the server's log
by request id, and its error = its duration - the server's (see peers.errors). The first second of each level
(connections, ramp-up) is left out for every tool alike.

Sustained = the highest requests/s (non-streaming) or the most concurrent streams at a level whose MEDIAN error
is <= 5 ms (p99 is printed too: on this shared 2-core VM it swings by tens of ms run to run for every tool).
Streams are judged on TTFT and e2e separately: a tool that dates the first token late fails on TTFT alone.

    .venv/bin/python benchmarks/load_per_core.py [--seconds 4] [--json benchmarks/results/load_per_core.json]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import peers

ROOT = peers.ROOT
LEVELS = {"chat": [4, 16, 32, 64], "stream": [32, 64, 128, 256]}
SERVER = {"ttft": 0.05, "itl": 0.02, "tokens": 16, "latency": 0.02}
LIMIT_MS = 5.0


def run_level(name: str, py: Path | None, mode: str, url: str, c: int, seconds: float, out: Path) -> list[peers.Seen]:
    """One tool at one concurrency level, pinned to core 1; its per-request records."""
    stream = mode == "stream"
    if name == "devai-harness":
        locustfile = ROOT / "locustfiles" / ("streaming.py" if stream else "chat.py")
        extra = ["--run-dir", str(out), "--model", "truth"]
        user = "StreamingUser" if stream else "ChatUser"
        peers.run_locust(locustfile, user, f"{url}/v1", users=c, seconds=seconds, env={}, extra=extra)
        return peers.ours_seen(out)
    if name == "locust FastHttpUser":
        locustfile, user = ROOT / "benchmarks" / "plain_locust.py", "PlainStream" if stream else "PlainChat"
        peers.run_locust(locustfile, user, f"{url}/v1", users=c, seconds=seconds, env={"PLAIN_OUT": str(out)}, extra=[])
        return peers.plain_seen(out)
    assert py is not None
    kw: dict[str, Any] = {"stream": stream, "seconds": seconds, "pin": peers.pin_to(1)}
    if name == "guidellm":
        return peers.run_guidellm(py, url, out.with_suffix(".json"), streams=[c], **kw)[0]
    return peers.run_aiperf(py, url, out, concurrency=[c], **kw)[0]


def sweep(name: str, py: Path | None, mode: str, url: str, seconds: float, tmp: Path) -> list[dict[str, Any]]:
    """Levels in order until every metric of a level is over the limit: higher ones cannot be sustained."""
    rows: list[dict[str, Any]] = []
    for c in LEVELS[mode]:
        peers.truth_log(url, reset=True)
        seen = run_level(name, py, mode, url, c, seconds, tmp / f"{name.replace(' ', '-')}-{mode}-{c}")
        rows.append({"concurrency": c, **peers.errors(seen, peers.truth_log(url), skip_s=1.0)})
        peers.log(f"  {name} {mode} c={c}: {brief(rows[-1])}")
        metrics = [rows[-1][k]["median"] for k in ("ttft_error_ms", "e2e_error_ms") if k in rows[-1]]
        if all(m > LIMIT_MS for m in metrics):
            break
    return rows


def brief(row: dict[str, Any]) -> str:
    parts = [f"{row['requests']} req", f"{row.get('requests_per_s') or 0:.0f}/s"]
    for k in ("ttft_error_ms", "e2e_error_ms"):
        if k in row:
            parts.append(f"{k[:4]} err {row[k]['median']:.2f}/{row[k]['p99']:.2f} ms")
    return ", ".join(parts)


def sustained(rows: list[dict[str, Any]], metric: str, what: str) -> float:
    """The last level before the first one over the limit (a later lucky level does not count)."""
    best = 0.0
    for r in rows:
        if metric not in r or r[metric]["median"] > LIMIT_MS or r["requests"] < 20:
            break
        best = float(r["requests_per_s"] or 0) if what == "rps" else float(r["concurrency"])
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=3.0, help="per level (the first second is left out)")
    ap.add_argument("--json", help="write results here too")
    ap.add_argument("--skip", default="", help="comma-separated tools to leave out")
    args = ap.parse_args()
    skip = set(filter(None, args.skip.split(",")))
    tools: dict[str, Path | None] = {"devai-harness": None, "locust FastHttpUser": None}
    versions = {"devai-harness": "this checkout", "locust FastHttpUser": peers.installed_version("locust")}
    for name in ("guidellm", "aiperf"):
        if name in skip:
            continue
        py = peers.peer_python(name)
        if py is not None:
            tools[name], versions[name] = py, peers.peer_version(py, name)
    results: dict[str, Any] = {**peers.machine(), "server": SERVER, "versions": versions, "limit_ms": LIMIT_MS}
    results["pinning"] = "server on core 0, each tool on core 1 (taskset)" if peers.pin_to(1) else "none"
    results["tools"] = {}
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory() as td, peers.truth_server(cpu=0, **SERVER) as url:
        tmp = Path(td)
        for name, py in tools.items():
            if name in skip:
                continue
            res: dict[str, Any] = {}
            started = time.monotonic()
            for mode in ("chat", "stream"):
                try:
                    res[mode] = sweep(name, py, mode, url, args.seconds, tmp)
                except (RuntimeError, OSError) as exc:
                    peers.log(f"{name} {mode}: skipped: {exc}")
                    res[mode] = []
            res["sustained"] = {
                "requests_per_s": sustained(res["chat"], "e2e_error_ms", "rps"),
                "streams_ttft": sustained(res["stream"], "ttft_error_ms", "streams"),
                "streams_e2e": sustained(res["stream"], "e2e_error_ms", "streams"),
            }
            res["wall_s"] = time.monotonic() - started
            peers.log(f"{name}: {res['wall_s']:.0f} s")
            results["tools"][name] = res
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir()
    results["wall_s"] = time.monotonic() - t0
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    print_table(results)


def print_table(results: dict[str, Any]) -> None:
    tools = results["tools"]
    print(f"\nload per core ({results['pinning']}; sustained = median timing error <= {results['limit_ms']:g} ms):")
    print(f"  {'tool':22s} {'requests/s':>11s} {'streams (TTFT)':>15s} {'streams (e2e)':>14s}")
    for name, r in tools.items():
        s = r["sustained"]
        print(f"  {name:22s} {s['requests_per_s']:11.0f} {s['streams_ttft']:15.0f} {s['streams_e2e']:14.0f}")
    ours = tools.get("devai-harness", {}).get("sustained")
    peers_ = {n: r["sustained"] for n, r in tools.items() if n != "devai-harness"}
    if ours and peers_:
        print("devai-harness / best peer (goal: >= 1):")
        for key in ("requests_per_s", "streams_ttft", "streams_e2e"):
            best_name, best = max(((n, s[key]) for n, s in peers_.items()), key=lambda x: x[1])
            ratio = f"{ours[key] / best:.2f}x" if best else "best peer sustained none"
            print(f"  {key:15s} {ratio} (best peer: {best_name}, {best:.0f})")


if __name__ == "__main__":
    main()
