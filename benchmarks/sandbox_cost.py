"""What a sandbox costs per run of model-written code, and what each of its layers adds.

A one-test pytest run (and a trivial ``python -c pass``), medians of --runs runs, side by side in one run:
no isolation (a plain subprocess); bubblewrap as it was before the kernel and per-case layers (pytest started
directly, no seccomp filter, no cgroup); then each layer added on its own — our runner with its nonce (the proof a
run passed), the seccomp filter, the per-case cgroup — and all of them, as the harness runs today; and a container
when DEVAI_SANDBOX_IMAGE names an image (python3 with pytest). Goal: today's layers add < 50 ms per case over
bubblewrap before them.

    .venv/bin/python benchmarks/sandbox_cost.py [--runs 20] [--no-save]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from unittest import mock

from harness.conformance import cgroups, runners, seccomp
from harness.conformance.isolation import IMAGE_ENV, Isolation, choose, run_isolated

RESULTS = Path(__file__).parent / "results" / "sandbox_cost.json"
FLAGS = ["-q", "-p", "no:cacheprovider", "-p", "no:locust", "-o", "addopts=", "test_x.py"]
DIRECT = ["-I", "-m", "pytest", *FLAGS]  # how pytest ran before the runner
RUNNER = ["-I", "-u", "-c", runners.PYTHON_BOOTSTRAP, *FLAGS]


@contextlib.contextmanager
def layers(seccomp_on: bool, cgroup_on: bool) -> Iterator[None]:
    with contextlib.ExitStack() as stack:
        if not seccomp_on:
            stack.enter_context(mock.patch.object(seccomp, "supported", return_value=False))
        if not cgroup_on:
            stack.enter_context(mock.patch.object(cgroups, "find", return_value="switched off by the benchmark"))
        yield


def timed_ms(iso: Isolation, work: Path, args: list[str], nonce: bool) -> float:
    t0 = time.perf_counter()
    outcome = run_isolated(iso, work, "python", args, timeout=60, nonce=runners.new_nonce() if nonce else None)
    took = (time.perf_counter() - t0) * 1000
    assert outcome.returncode == 0, outcome.output
    assert not nonce or (outcome.proof is not None and outcome.proof.finished is not None), outcome.output
    return took


def variants() -> list[tuple[str, Isolation, bool, bool, bool]]:
    """(name, isolation, runner with nonce, seccomp, cgroup)."""
    plain = Isolation("none", "plain subprocess")
    rows = [("none", plain, False, False, False)]
    if choose().kind == "bubblewrap":
        bw = choose()
        rows += [
            ("bubblewrap before", bw, False, False, False),
            ("+ runner and nonce", bw, True, False, False),
            ("+ seccomp", bw, False, True, False),
            ("+ cgroup per case", bw, False, False, True),
            ("bubblewrap today", bw, True, True, True),
        ]
    if os.environ.get(IMAGE_ENV):
        rows.append(("container", Isolation("container", f"docker image {os.environ[IMAGE_ENV]}"), True, True, True))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--no-save", action="store_true")
    args = parser.parse_args()
    rows = variants()
    times: dict[str, dict[str, list[float]]] = {
        name: {"python -c pass ms": [], "pytest one test ms": []} for name, *_ in rows
    }
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        (work / "test_x.py").write_text("def test_x():\n    assert 1 + 1 == 2\n")
        (work / "test_x.py").chmod(0o644)
        for _ in range(args.runs):  # round-robin: every variant sees the same machine, drift and all
            for name, iso, nonce, seccomp_on, cgroup_on in rows:
                with layers(seccomp_on, cgroup_on):
                    times[name]["python -c pass ms"].append(timed_ms(iso, work, ["-c", "pass"], False))
                    times[name]["pytest one test ms"].append(timed_ms(iso, work, RUNNER if nonce else DIRECT, nonce))
    results: dict[str, dict[str, float | str]] = {}
    for name, *_ in rows:
        results[name] = {k: round(statistics.median(v), 1) for k, v in times[name].items()}
        bare, one = results[name]["python -c pass ms"], results[name]["pytest one test ms"]
        print(f"{name:20s} python -c pass {bare:8.1f} ms   pytest one test {one:8.1f} ms")
    if "bubblewrap before" in results:
        base = float(results["bubblewrap before"]["pytest one test ms"])
        for name in ("+ runner and nonce", "+ seccomp", "+ cgroup per case", "bubblewrap today"):
            added = round(float(results[name]["pytest one test ms"]) - base, 1)
            results[name]["added_ms"] = added
            print(f"{name:20s} adds {added:+.1f} ms per case over bubblewrap before")
    if not args.no_save:
        meta = {"date": time.strftime("%Y-%m-%d"), "runs": str(args.runs), "cpus": str(os.cpu_count())}
        results["_meta"] = {**meta, "sandbox": choose().describe()}
        RESULTS.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
