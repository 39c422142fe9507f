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
from pathlib import Path

import pytest

from harness.emulator.mockopenai import MockConfig, create_mock_openai
from harness.emulator.serving import BackgroundServer
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
    assert lag["samples"] > 50 and lag["p99_ms"] > 5, lag
    data = json.loads(build_report(tmp_path)["json"].read_text())
    (check,) = [c for c in data["checks"] if c["name"].startswith("the load generator kept up")]
    assert not check["ok"] and "starved of CPU" in check["detail"]
