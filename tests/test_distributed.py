"""Our locustfiles under locust's own distributed engine: 1 master + 2 worker processes on loopback (the README's
"Outgrowing one machine" commands), against the emulator (RunPod users) and the mock OpenAI server (streaming,
chat); against a real vLLM server in the system stage. Every request recorded exactly once and counted as locust
counts it; steps labelled by the master's schedule (a late worker too); a worker killed mid-run is reported with
its requests lost in flight; the latency locustfile refuses, saying why. Bounded: each run < 20 s."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from harness.cli import main
from harness.emulator import Emulator
from harness.emulator.mockopenai import MockConfig, create_mock_openai
from harness.emulator.serving import BackgroundServer
from harness.load.records import LoadRecord, contributors, load_records
from harness.load.report import build_report
from tests.realsystems import vllm_url

pytestmark = pytest.mark.system  # real locust masters and workers: CI's system stage (about 60 s in all)
LOCUST = [sys.executable, "-m", "locust"]
ROOT = Path(__file__).parent.parent
QUICK = {"ttft_s": 0.02, "tokens_per_s": 0}  # 20 ms a job: a few hundred jobs/s, not a CPU-bound flood


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Run:
    master: str
    workers: list[str] = field(default_factory=list)
    returncode: int = 0


def distributed(
    locustfile: str,
    run_dir: Path,
    *args: str,
    env: dict[str, str] | None = None,
    workers: int = 2,
    kill_after_records: int | None = None,
    late_after: float | None = None,
    timeout: float = 60,
) -> Run:
    """The README's commands: a headless master expecting the workers, and the workers pointed at it."""
    port = _port()
    base = [*LOCUST, "-f", str(ROOT / "locustfiles" / locustfile), "--skip-log-setup"]
    master_cmd = [*base, "--master", "--headless", "--master-bind-host", "127.0.0.1", "--master-bind-port", str(port)]
    expected = workers - (1 if late_after is not None else 0)
    master_cmd += ["--expect-workers", str(expected), "--run-dir", str(run_dir), "--csv", str(run_dir / "locust")]
    master_cmd += ["--only-summary", *args]
    worker_cmd = [*base, "--worker", "--master-host", "127.0.0.1", "--master-port", str(port)]
    full_env = {**os.environ, **(env or {})}
    pipes = {"stdout": subprocess.PIPE, "stderr": subprocess.STDOUT, "text": True, "env": full_env}
    master = subprocess.Popen(master_cmd, **pipes)  # type: ignore[call-overload]
    procs = [subprocess.Popen(worker_cmd, **pipes) for _ in range(expected)]  # type: ignore[call-overload]
    t0 = time.monotonic()
    outputs: list[str] = []
    try:
        if late_after is not None:  # counted from the run's first record
            while not any(run_dir.glob("records-*.jsonl")) and time.monotonic() < t0 + timeout:
                time.sleep(0.05)
            time.sleep(late_after)
            procs.append(subprocess.Popen(worker_cmd, **pipes))  # type: ignore[call-overload]
        if kill_after_records is not None:  # mid-run: once one worker has this many records, SIGKILL it
            victim = _wait_for_records(run_dir, procs, kill_after_records, deadline=t0 + timeout)
            victim.send_signal(signal.SIGKILL)
        out, _ = master.communicate(timeout=timeout)
    finally:
        master.kill()
        for p in procs:
            try:
                outputs.append(p.communicate(timeout=15)[0])
            except subprocess.TimeoutExpired:
                p.kill()
                outputs.append("KILLED " + p.communicate()[0])
    return Run(out, outputs, master.returncode)


def _wait_for_records(run_dir: Path, procs: list[subprocess.Popen[str]], count: int, deadline: float) -> Any:
    while time.monotonic() < deadline:
        for p in procs:
            path = next(run_dir.glob(f"records-*-{p.pid}.jsonl"), None)
            if path is not None and path.read_text().count('"seq"') >= count:
                return p
        time.sleep(0.05)
    raise AssertionError(f"no worker wrote {count} records")


def ended_records(run_dir: Path) -> list[LoadRecord]:
    """The records of requests that ended (a request the run's end cut is recorded as ``cut`` and not fired)."""
    return [r for r in load_records(run_dir) if r.status != "cut"]  # load_records refuses any record seen twice


def locust_total(run_dir: Path) -> int:
    stats = (run_dir / "locust_stats.csv").read_text().splitlines()
    return int(next(line for line in stats if ",Aggregated," in line).split(",")[2])


@pytest.fixture
def emulator() -> Iterator[Emulator]:
    with Emulator(cold_start=0.0, max_workers=2, concurrency=8, min_workers=1, worker=QUICK) as emu:
        yield emu


def runpod_args(emu: Emulator) -> tuple[list[str], dict[str, str]]:
    return ["--host", emu.base_url, "--endpoint-id", emu.endpoint_id], {"RUNPOD_API_KEY": emu.api_key}


def test_capacity_steps_are_counted_once_across_workers(emulator: Emulator, tmp_path: Path) -> None:
    args, env = runpod_args(emulator)
    run = distributed("capacity.py", tmp_path, *args, "--steps", "2,4", "--step-seconds", "2", env=env)
    assert run.returncode == 0, run.master[-2000:]
    records = ended_records(tmp_path)
    assert len(records) == locust_total(tmp_path)  # locust's own count == our merged records
    procs = contributors(tmp_path)
    assert len(procs) == 2 and all(c.role == "worker" and c.ended for c in procs), procs
    assert all(abs(c.clock_offset_s or 0) < 0.5 for c in procs)
    for step in ("c2", "c4"):  # each step's figures come from both workers
        assert {r.process for r in records if r.phase == step} == {c.process for c in procs}
    data = json.loads(build_report(tmp_path, slo_p95_s=5.0)["json"].read_text())
    assert [c["step"] for c in data["capacity"]] == ["c2", "c4"]
    (finished,) = [c for c in data["checks"] if c["name"] == "every load process finished its records"]
    assert finished["ok"] and "cut off when the run stopped" in finished["detail"]


def test_a_late_worker_labels_its_requests_by_the_masters_step(emulator: Emulator, tmp_path: Path) -> None:
    args, env = runpod_args(emulator)
    run = distributed(
        "capacity.py", tmp_path, *args, "--steps", "1,2,3", "--step-seconds", "4", env=env, late_after=4.5
    )
    assert run.returncode == 0, run.master[-2000:]
    records = ended_records(tmp_path)
    assert len(records) == locust_total(tmp_path)
    first = min(r.start_unix for r in records)
    late = max(contributors(tmp_path), key=lambda c: min(r.start_unix for r in records if r.process == c.process))
    theirs = [r for r in records if r.process == late.process]
    assert theirs and min(r.start_unix for r in theirs) - first > 4.0  # it joined after the first step
    assert "c1" not in {r.phase for r in theirs}  # its own clock would have called its first requests step 1


def test_arrivals_run_their_schedule_once(emulator: Emulator, tmp_path: Path) -> None:
    args, env = runpod_args(emulator)
    run = distributed("arrivals.py", tmp_path, *args, "--steps", "5,20", "--step-seconds", "2", "-t", "30s", env=env)
    assert run.returncode == 0, run.master[-2000:]
    records = ended_records(tmp_path)
    assert len(records) == locust_total(tmp_path)
    by_rate = {p: sum(r.phase == p for r in records) for p in ("r5", "r20")}
    # One schedule: ~10 and ~40 expected. A worker quitting alone would have made the master run it twice.
    assert 2 <= by_rate["r5"] <= 25 and 20 <= by_rate["r20"] <= 70, by_rate


@pytest.fixture(scope="module")
def mock_url() -> Iterator[str]:
    with BackgroundServer(create_mock_openai(MockConfig(ttft_s=0.02, itl_s=0.002))) as srv:
        yield f"{srv.url}/v1"


@pytest.mark.parametrize("locustfile", ["streaming.py", "chat.py"])
def test_openai_users_distributed(locustfile: str, mock_url: str, tmp_path: Path) -> None:
    run = distributed(locustfile, tmp_path, "--host", mock_url, "--model", "normal", "-u", "4", "-r", "4", "-t", "3s")
    assert run.returncode == 0, run.master[-2000:]
    records = ended_records(tmp_path)
    assert len(records) == locust_total(tmp_path) and all(r.status == "ok" for r in records)
    assert len({r.process for r in records}) == 2 and {r.concurrency for r in records} == {4}  # the total, not a share


def test_a_worker_killed_mid_run_is_reported_with_its_requests_lost(emulator: Emulator, tmp_path: Path) -> None:
    args, env = runpod_args(emulator)
    run = distributed(
        "capacity.py", tmp_path, *args, "--steps", "4", "--step-seconds", "3", env=env, kill_after_records=30
    )
    records = load_records(tmp_path)
    killed = [c for c in contributors(tmp_path) if c.ended is False]
    assert len(killed) == 1 and killed[0].records > 0, run.master[-1500:]
    paths = build_report(tmp_path, slo_p95_s=5.0)
    data = json.loads(paths["json"].read_text())
    (finished,) = [c for c in data["checks"] if c["name"] == "every load process finished its records"]
    assert not finished["ok"] and "stopped WITHOUT closing its records (killed?)" in finished["detail"]
    assert sum(c["records"] for c in data["contributors"]) == len(records)


def test_the_latency_locustfile_refuses_to_run_distributed(tmp_path: Path) -> None:
    cmd = [*LOCUST, "-f", str(ROOT / "locustfiles" / "latency.py"), "--skip-log-setup", "--master", "--headless"]
    cmd += ["--master-bind-host", "127.0.0.1", "--master-bind-port", str(_port()), "--run-dir", str(tmp_path)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "runs one user on one timeline" in proc.stderr + proc.stdout


def test_report_merges_run_dirs_from_several_hosts_and_refuses_duplicates(
    emulator: Emulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args, env = runpod_args(emulator)
    for name in ("a", "b"):
        run = distributed("capacity.py", tmp_path / name, *args, "--steps", "2", "--step-seconds", "1.5", env=env)
        assert run.returncode == 0, run.master[-1500:]
    rc = main(["report", str(tmp_path / "a"), str(tmp_path / "b"), "--out", str(tmp_path / "merged")])
    data = json.loads((tmp_path / "merged" / "report.json").read_text())
    # Four load processes on two shared cores may be starved a little: that verdict is the machine's, not merging's
    failed = [c["name"] for c in data["checks"] if not c["ok"]]
    assert all(n.startswith("the load generator kept up") for n in failed) and rc == (1 if failed else 0), failed
    assert len(data["contributors"]) == 4 and data["records"] == sum(c["records"] for c in data["contributors"])
    capsys.readouterr()
    assert main(["report", str(tmp_path / "a"), str(tmp_path / "a")]) == 2  # the same records twice
    assert "appears twice" in capsys.readouterr().err


@pytest.mark.system
@pytest.mark.parametrize("locustfile", ["streaming.py", "chat.py"])
def test_openai_users_distributed_against_real_vllm(locustfile: str, tmp_path: Path) -> None:
    run = distributed(locustfile, tmp_path, "--host", vllm_url(), "-u", "2", "-r", "2", "-t", "4s")
    assert run.returncode == 0, run.master[-2000:]
    records = ended_records(tmp_path)
    assert records and len(records) == locust_total(tmp_path) and all(r.status == "ok" for r in records)
    assert len({r.process for r in records}) == 2 and {r.concurrency for r in records} == {2}
