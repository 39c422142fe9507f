"""One results file for every benchmark: benchmarks/results/summary.json holds the headline numbers of the
latest run of each script (read from their own JSON files) plus a history, one entry per call, with the
offline suite's wall time and the emulator's jobs/s, so a regression shows up as a line that got worse.

    .venv/bin/python benchmarks/summary.py [--suite]            # --suite: time the README test command here
    .venv/bin/python benchmarks/summary.py --show               # print the latest ratios, record nothing
    .venv/bin/python benchmarks/summary.py --suite-seconds 101 --suite-source "clean-clone .ci/run"
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import peers

RESULTS = peers.ROOT / "benchmarks" / "results"


def load(name: str) -> dict[str, Any] | None:
    path = RESULTS / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


def headline() -> dict[str, Any]:
    out: dict[str, Any] = {}
    if ta := load("timing_accuracy"):
        out["timing_accuracy_ms"] = {
            f"{name} c={row['concurrency']}": {
                "ttft": [round(row["ttft_error_ms"]["median"], 2), round(row["ttft_error_ms"]["p99"], 2)],
                "e2e": [round(row["e2e_error_ms"]["median"], 2), round(row["e2e_error_ms"]["p99"], 2)],
            }
            for name, tool in ta["tools"].items()
            for row in tool["runs"]
        }
    if lpc := load("load_per_core"):
        out["load_per_core"] = {name: tool["sustained"] for name, tool in lpc["tools"].items()}
    if rp := load("runpod_peers"):
        out["completion_overhead_ms"] = {
            r["client"]: {"median": round(r["median_ms"], 1), "requests_per_job": round(r["requests_per_job"], 1)}
            for r in rp["completion"]
        }
        out["zombie_verdict_s"] = {z["client"]: round(z["seconds"], 1) for z in rp["zombie"]}
    if et := load("emulator_throughput"):
        out["emulator_jobs_per_s"] = {r["mode"]: r["jobs_per_s"] for r in et["results"] if "mode" in r}
    return out


def time_suite() -> float:
    t0 = time.monotonic()
    r = subprocess.run([sys.executable, "-m", "pytest", "-q"], cwd=peers.ROOT, capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"the offline suite failed; not recording its time:\n{r.stdout[-1500:]}")
    return time.monotonic() - t0


def ratio(a: float | None, b: float | None) -> str:
    """``a`` as a multiple (or a percentage, when small) of the peer's ``b``."""
    if a is None or b is None:
        return "not measured"
    if not b:
        return f"ours {a:g}, the peers none"
    return f"{a / b:.2f}x the peer's" if a / b >= 0.1 else f"{a / b:.1%} of the peer's"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--suite", action="store_true", help="run and time the offline suite here")
    ap.add_argument("--suite-seconds", type=float, help="record a wall time measured elsewhere (e.g. in CI)")
    ap.add_argument("--suite-source", default="", help="where --suite-seconds was measured")
    ap.add_argument("--show", action="store_true", help="print the latest numbers; record nothing")
    args = ap.parse_args()
    path = RESULTS / "summary.json"
    summary = json.loads(path.read_text()) if path.exists() else {"history": []}
    head = headline()
    entry: dict[str, Any] = peers.machine()
    if args.suite:
        entry["offline_suite_s"], entry["offline_suite_source"] = (
            round(time_suite(), 1),
            "benchmarks/summary.py --suite",
        )
    elif args.suite_seconds is not None:
        entry["offline_suite_s"], entry["offline_suite_source"] = args.suite_seconds, args.suite_source
    entry["emulator_jobs_per_s"] = head.get("emulator_jobs_per_s")
    if not args.show:
        summary["latest"] = head
        summary["history"].append(entry)
        path.write_text(json.dumps(summary, indent=2) + "\n")

    print(f"{path.relative_to(peers.ROOT)}: {len(summary['history'])} entries")
    for e in summary["history"][-5:]:
        suite, jobs = e.get("offline_suite_s", "-"), e["emulator_jobs_per_s"]
        print(f"  {e['date']} {e['commit']:>8s}  offline suite {suite} s  emulator jobs/s {jobs}")
    ta, lpc = head.get("timing_accuracy_ms", {}), head.get("load_per_core", {})
    co, zo = head.get("completion_overhead_ms", {}), head.get("zombie_verdict_s", {})
    print("ratios (devai-harness / peer):")
    for c in (1, 32):
        mine = ta.get(f"devai-harness load driver c={c}", {}).get("ttft", [None])[0]
        theirs = [v["ttft"][0] for k, v in ta.items() if k.endswith(f" c={c}") and not k.startswith("devai")]
        print(f"  TTFT median error at c={c}: {ratio(mine, min(theirs, default=None))} (the best peer)")
    if lpc:
        ours = lpc.get("devai-harness", {})
        for key in ("requests_per_s", "streams_ttft", "streams_e2e"):
            best = max((v[key] for k, v in lpc.items() if k != "devai-harness"), default=None)
            print(f"  load per core, {key}: {ratio(ours.get(key), best)} (the best peer)")
    run = co.get("devai-harness run", {}).get("median")
    print(f"  completion overhead: {ratio(run, co.get('runpod-python output', {}).get('median'))} (runpod-python)")
    zombie = ratio(zo.get("devai-harness run"), zo.get("runpod-python Job.output"))
    print(f"  zombie verdict time: {zombie} (runpod-python)")


if __name__ == "__main__":
    main()
