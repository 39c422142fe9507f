"""``check`` against a hostile endpoint (tests/hostile.py), measured as a user would see it: the wall time within the
bound ``check --help`` states, the harness's peak RSS (its own rusage), no form of the planted key in any line or
file, a report with every stage, one exit code, no traceback. Each run takes seconds: the system stage runs them."""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import time
import urllib.parse
from pathlib import Path

import pytest

from tests.hostile import MODES, hostile

pytestmark = pytest.mark.system

ROOT = Path(__file__).parent.parent
KEY = "sk-HOSTILE-planted-9f8e7d6c5b4a"
TIMEOUT = 3.0
MAX_RSS_MB = 500
STAGES = {"openai": 3, "runpod": 2}  # besides the suite (not run here)


def bound_s(target: str) -> float:
    """What ``check --help`` promises for an endpoint that never answers: (stages + 1) x (--timeout + 2) + 10 s."""
    return (STAGES[target] + 1) * (TIMEOUT + 2) + 10


def key_forms() -> list[str]:
    """Made here, not by the scrubber under test: the key as the hostile server echoes it."""
    return [KEY, base64.b64encode(KEY.encode()).decode()[:-4], urllib.parse.quote(f"Bearer {KEY}", safe=""), KEY[:14]]


def run_check(url: str, target: str, run_dir: Path, *extra: str) -> tuple[int, float, int, str]:
    """(exit code, wall seconds, peak RSS in MB, stdout + stderr) of one ``check`` in its own process."""
    where = ["--base-url", f"{url}/v1", "--model", "hostile-model"] if target == "openai" else []
    where = where or ["--endpoint-id", "ep1", "--base-url", f"{url}/v2"]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RUNPOD_", "OPENAI_"))} | {"HOSTILE_KEY": KEY}
    cmd = [sys.executable, "-m", "harness", "check", "-q", "--target", target, *where, "--api-key-env"]
    cmd += ["HOSTILE_KEY", "--no-suite", "--timeout", str(TIMEOUT), "--run-dir", str(run_dir), *extra]
    out = run_dir.with_suffix(".out")
    t0 = time.monotonic()
    with out.open("wb") as sink:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=sink, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return proc.returncode, time.monotonic() - t0, usage.ru_maxrss // 1024, out.read_text(errors="replace")


def leaked(text: str) -> list[str]:
    return [f for f in key_forms() if f in text]


def assert_held(run_dir: Path, rc: int, wall: float, rss: int, output: str, target: str, mode: str) -> None:
    assert rc == 1, output
    assert wall <= bound_s(target) + 5, f"{wall:.1f} s is over the stated bound {bound_s(target)} s"
    assert rss < MAX_RSS_MB, f"peak RSS {rss} MB"
    assert "Traceback" not in output, output
    assert not leaked(output), f"key in the output: {leaked(output)}"
    for path in run_dir.rglob("*"):
        if path.is_file():
            assert not leaked(path.read_text(errors="replace")), f"key in {path.name}"
    report = json.loads((run_dir / "report.json").read_text())
    assert report["stages"][0]["name"] == "suite" and len(report["stages"]) == STAGES[target] + 1
    if mode != "echo":  # an echoing endpoint may answer well enough: what it must not do is leak the key
        assert report["stages"][1]["verdict"] != "PASS", report["stages"]
    assert (run_dir / "report.html").is_file() and (run_dir / "junit.xml").is_file()


@pytest.mark.parametrize("mode", [m for m in MODES if m != "numbers"])
def test_openai_target_holds(mode: str, tmp_path: Path) -> None:
    with hostile(mode) as server:
        rc, wall, rss, output = run_check(server.url, "openai", tmp_path / "run")
    assert_held(tmp_path / "run", rc, wall, rss, output, "openai", mode)


@pytest.mark.parametrize("mode", [m for m in MODES if m not in ("keepalive", "longline")])
def test_runpod_target_holds(mode: str, tmp_path: Path) -> None:
    with hostile(mode) as server:
        rc, wall, rss, output = run_check(server.url, "runpod", tmp_path / "run")
    assert_held(tmp_path / "run", rc, wall, rss, output, "runpod", mode)
    if mode == "numbers":
        assert "is not a duration in ms" in output  # named, not a traceback, not a statistic


def test_nothing_listening_is_the_runs_error_not_the_endpoints_fail(tmp_path: Path) -> None:
    rc, wall, _, output = run_check("http://127.0.0.1:9", "openai", tmp_path / "run")
    assert rc == 1 and wall < 20, output
    stages = json.loads((tmp_path / "run" / "report.json").read_text())["stages"]
    assert [s["verdict"] for s in stages[1:]] == ["ERROR"] * 3 and "down" in stages[1]["summary"], stages


def test_ctrl_c_keeps_the_finished_stages_and_exits_130(tmp_path: Path) -> None:
    with hostile("silent") as server:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("RUNPOD_", "OPENAI_"))}
        cmd = [sys.executable, "-m", "harness", "check", "-q", "--target", "openai", "--base-url"]
        cmd += [f"{server.url}/v1", "--no-suite", "--timeout", "30", "--run-dir", str(tmp_path / "run")]
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 30
        while not any("/chat/completions" in p for p in server.seen) and time.monotonic() < deadline:
            time.sleep(0.1)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, out + err
    assert "interrupted (Ctrl-C) during the shapes stage" in err and "Traceback" not in err + out
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    assert report["interrupted"] and [s["name"] for s in report["stages"]] == ["suite"]
