"""A load generator starved of CPU says so: locust pinned to one core that six busy processes share (as when a
local server and its load test fight for the same cores); its own scheduling lag (harness.load.lag) lands in its
process file and the report's "kept up" check fails, naming the lag. System stage: it needs two cores and
taskset, and it loads the machine for a few seconds."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from harness.emulator.mockopenai import MockConfig, create_mock_openai
from harness.emulator.serving import BackgroundServer
from harness.load.records import load_records
from harness.load.report import build_report
from tests.realsystems import ROOT

pytestmark = pytest.mark.system


def test_a_starved_load_generator_is_flagged(tmp_path: Path) -> None:
    if shutil.which("taskset") is None or (os.cpu_count() or 1) < 2:
        pytest.skip("needs taskset and two cores")
    pin = ["taskset", "-c", "1"]
    with BackgroundServer(create_mock_openai(MockConfig(ttft_s=0.01, itl_s=0.005))) as srv:
        hogs = [subprocess.Popen([*pin, sys.executable, "-c", "while True: pass"]) for _ in range(6)]
        try:
            cmd = [*pin, sys.executable, "-m", "locust", "-f", str(ROOT / "locustfiles" / "streaming.py")]
            cmd += ["--headless", "--host", f"{srv.url}/v1", "--model", "normal", "-u", "8", "-r", "8", "-t", "5s"]
            cmd += ["--run-dir", str(tmp_path), "--only-summary", "--skip-log-setup"]
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=90, check=False)
        finally:
            for h in hogs:
                h.kill()
                h.wait()
    assert proc.returncode == 0, proc.stderr[-1500:]
    (manifest,) = tmp_path.glob("process-*.json")
    lag = json.loads(manifest.read_text())["scheduling_lag"]
    # Starved, the probe wakes late and so wakes less often: 5 s gives anywhere from ~40 to ~400 samples.
    assert lag["samples"] >= 10 and lag["p99_ms"] > 5, lag
    data = json.loads(build_report(tmp_path)["json"].read_text())
    (check,) = [c for c in data["checks"] if c["name"].startswith("the load generator kept up")]
    assert not check["ok"] and "starved of CPU" in check["detail"]


def test_a_starved_load_generator_with_the_packet_clock_keeps_true_times(tmp_path: Path) -> None:
    """The same starvation with --packet-clock, against the ground-truth server (benchmarks/truthserver.py) on the
    other core: the process is as late as before, and its TTFT and e2e still match the server's own log."""
    if shutil.which("taskset") is None or (os.cpu_count() or 1) < 2:
        pytest.skip("needs taskset and two cores")
    from harness.load.packetclock import PacketClock

    probe = PacketClock.open()
    if probe is None:
        pytest.skip(f"the packet clock cannot run here: {PacketClock.why_not}")
    probe.close()
    truth = subprocess.Popen(
        [sys.executable, str(ROOT / "benchmarks" / "truthserver.py"), "--cpu", "0", "--ttft", "0.02", "--itl", "0.005"],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert truth.stdout is not None
    url = truth.stdout.readline().strip()
    pin = ["taskset", "-c", "1"]
    hogs = [subprocess.Popen([*pin, sys.executable, "-c", "while True: pass"]) for _ in range(6)]
    try:
        cmd = [*pin, sys.executable, "-m", "locust", "-f", str(ROOT / "locustfiles" / "streaming.py")]
        cmd += ["--headless", "--host", f"{url}/v1", "--model", "truth", "-u", "8", "-r", "8", "-t", "5s"]
        cmd += ["--run-dir", str(tmp_path), "--only-summary", "--skip-log-setup", "--packet-clock"]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=90, check=False)
        with urllib.request.urlopen(f"{url}/_log", timeout=10) as reply:
            log = {row[0]: row for row in json.load(reply)}
    finally:
        for h in hogs:
            h.kill()
            h.wait()
        truth.terminate()
        truth.wait(10)
        truth.stdout.close()
    assert proc.returncode == 0, proc.stderr[-1500:]
    (manifest,) = tmp_path.glob("process-*.json")
    process = json.loads(manifest.read_text())
    assert process["scheduling_lag"]["p99_ms"] > 5, process  # starved as before
    assert process["timing"]["source"] == "packets" and process["timing"]["fallbacks"] == 0, process
    records = [r for r in load_records(tmp_path) if r.status == "ok" and r.request_id in log]
    assert len(records) > 20
    ttft = sorted(abs(r.ttft_s - (log[r.request_id][3] - log[r.request_id][2])) * 1000 for r in records)
    e2e = sorted(abs(r.e2e_s - (log[r.request_id][4] - log[r.request_id][2])) * 1000 for r in records)
    assert ttft[len(ttft) // 2] < 1.0 and e2e[len(e2e) // 2] < 1.0, (ttft[-5:], e2e[-5:])
    data = json.loads(build_report(tmp_path)["json"].read_text())
    names = {c["name"]: c for c in data["checks"]}
    assert names["request times come from packet timestamps"]["ok"]
    assert not any(n.startswith("the load generator kept up") for n in names)  # its lag moved nothing
