"""What a sandbox costs per run of model-written code: a trivial Python program and a one-test pytest run, with no
isolation (a plain subprocess, as before), under bubblewrap, and in a container when DEVAI_SANDBOX_IMAGE names an
image (python3 with pytest). Goal: bubblewrap adds < 50 ms per run. Medians of --runs runs, side by side.

    .venv/bin/python benchmarks/sandbox_cost.py [--runs 20] [--no-save]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

from harness.conformance.isolation import IMAGE_ENV, Isolation, choose, run_isolated

RESULTS = Path(__file__).parent / "results" / "sandbox_cost.json"
PYTEST = ["-I", "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:locust", "-o", "addopts=", "test_x.py"]


def median_ms(iso: Isolation, args: list[str], runs: int) -> float:
    times = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        work.chmod(0o777)
        (work / "test_x.py").write_text("def test_x():\n    assert 1 + 1 == 2\n")
        for _ in range(runs):
            t0 = time.perf_counter()
            outcome = run_isolated(iso, work, "python", args, timeout=60)
            times.append(time.perf_counter() - t0)
            assert outcome.returncode == 0, outcome.output
    return round(statistics.median(times) * 1000, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--no-save", action="store_true")
    args = parser.parse_args()
    kinds = [Isolation("none", "plain subprocess")]
    if choose().kind == "bubblewrap":
        kinds.append(choose())
    if os.environ.get(IMAGE_ENV):
        kinds.append(Isolation("container", f"docker image {os.environ[IMAGE_ENV]}"))
    results: dict[str, dict[str, float]] = {}
    for iso in kinds:
        results[iso.kind] = {
            "python -c pass ms": median_ms(iso, ["-c", "pass"], args.runs),
            "pytest one test ms": median_ms(iso, PYTEST, max(5, args.runs // 2)),
        }
        print(f"{iso.kind:10s} " + ", ".join(f"{k} {v}" for k, v in results[iso.kind].items()))
    plain = results["none"]
    for kind, row in results.items():
        if kind != "none":
            added = {k: round(v - plain[k], 1) for k, v in row.items()}
            print(f"{kind} adds: " + ", ".join(f"{k.removesuffix(' ms')} +{v} ms" for k, v in added.items()))
            results[kind]["added_ms"] = max(added.values())
    if not args.no_save:
        RESULTS.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
