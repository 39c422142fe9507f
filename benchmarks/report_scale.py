"""``devai-harness report`` at scale: wall time and peak memory for 10k, 30k and 100k records (goal: 100k in
under 5 s and 300 MB).

The records are made by us (synthetic, seeded): capacity steps of RunPod jobs and OpenAI streams with 64 chunk
gaps each, as a locust run writes them, split over 4 process files. Each report runs in a fresh process so its
peak RSS is its own (``ru_maxrss`` of the child). Prints one line per size, then the 100k figure against the goal.

    .venv/bin/python benchmarks/report_scale.py [--sizes 10000,30000,100000] [--no-save]
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results" / "report_scale.json"
CHILD = """
import sys, time
from harness.load.report import build_report
t0 = time.perf_counter()
build_report(sys.argv[1], slo_p95_s=2.0)
print(time.perf_counter() - t0)
"""


def write_records(folder: Path, n: int, seed: int = 0) -> None:
    rng = random.Random(seed)
    files = [(folder / f"records-bench-{p}.jsonl").open("w", encoding="utf-8") for p in range(4)]
    t0 = 1_800_000_000.0
    for i in range(n):
        process = i % 4
        stream = i % 3 == 0
        step = 1 + (i * 8 // n)
        e2e = rng.lognormvariate(-0.5, 0.4) * (1 + step / 4)
        record = {
            "process": process,
            "seq": i,
            "label": "streaming" if stream else "capacity",
            "phase": "stream" if stream else f"c{step}",
            "start_unix": t0 + i * 0.01,
            "e2e_s": e2e,
            "status": "ok" if rng.random() > 0.01 else "error",
            "error": None,
            "host": "bench",
            "concurrency": step,
            "output_tokens": 64,
        }
        if record["status"] == "error":
            record["error"], record["error_message"] = "RateLimited", "HTTP 429"
        if stream:
            record["ttft_s"] = e2e * 0.1
            record["gaps_s"] = [round(rng.expovariate(1 / (e2e * 0.9 / 63)), 6) for _ in range(63)]
        else:
            record["delay_ms"], record["execution_ms"] = rng.randint(0, 50), int(e2e * 900)
        files[process].write(json.dumps(record) + "\n")
    for f in files:
        f.close()


def measure(n: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="devai-report-scale-") as tmp:
        run = Path(tmp)
        write_records(run, n)
        before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        t0 = time.perf_counter()
        out = subprocess.run([sys.executable, "-c", CHILD, str(run)], capture_output=True, text=True, check=True)
        wall = time.perf_counter() - t0
        peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        html_kb = (run / "report.html").stat().st_size / 1024
    return {
        "records": n,
        "report_s": round(float(out.stdout.strip()), 2),
        "process_wall_s": round(wall, 2),
        "peak_rss_mb": round(max(peak_kb, before) / 1024, 1),
        "html_kb": round(html_kb, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="10000,30000,100000")
    parser.add_argument("--no-save", action="store_true")
    args = parser.parse_args()
    rows = []
    for n in (int(s) for s in args.sizes.split(",")):
        row = measure(n)
        rows.append(row)
        print(
            f"{n:>7,} records: report {row['report_s']:.2f} s (process {row['process_wall_s']:.2f} s), "
            f"peak {row['peak_rss_mb']:.0f} MB, html {row['html_kb']:.0f} kB",
            flush=True,
        )
    last = rows[-1]
    print(
        f"\n{last['records']:,} records: {last['report_s'] / 5:.2f}x the 5 s goal, "
        f"{last['peak_rss_mb'] / 300:.2f}x the 300 MB goal (below 1 = met)"
    )
    if not args.no_save:
        RESULTS.write_text(
            json.dumps(
                {
                    "date": time.strftime("%Y-%m-%d"),
                    "python": platform.python_version(),
                    "machine": platform.machine(),
                    "note": "synthetic records made by benchmarks/report_scale.py (seeded), not a recorded run",
                    "goal": {"records": 100_000, "report_s": 5, "peak_rss_mb": 300},
                    "rows": rows,
                },
                indent=2,
            )
            + "\n",
            encoding="utf-8",
        )
        print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
