"""harness.load: phases, metrics, cost model, records across processes, reports — and real headless locust
runs against the emulator (bounded in time, loopback only)."""

from __future__ import annotations

import json
import math
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.core.percentiles import percentiles
from harness.emulator import Emulator
from harness.emulator.engines import INSTANT
from harness.load.cost import CostModel, what_if
from harness.load.metrics import summarize
from harness.load.phases import PhasePlan, confirm
from harness.load.records import LoadRecord, RecordWriter, load_records
from harness.load.report import build_report
from tests.realsystems import tiny_tmpfs

LOCUST = [sys.executable, "-m", "locust"]
FAST = {"ttft_s": 0.02, "tokens_per_s": 2000}  # quick, but a measurable executionTime for the cost line
ROOT = Path(__file__).parent.parent


def test_percentiles_interpolate_like_numpy_and_count() -> None:
    p = percentiles([1, 2, 3, 4, None, 5])
    assert p["count"] == 5 and p["p50"] == 3 and p["p90"] == pytest.approx(4.6) and p["mean"] == 3
    assert percentiles([])["p99"] is None


def test_phase_plan_waits_past_the_idle_timeout_before_cold() -> None:
    plan = PhasePlan(idle_timeout_s=5, rounds=1, warm=2, hot=2, margin_s=1)
    assert [(s.phase, s.wait_s) for s in plan.steps()] == [
        ("cold", 6),
        ("hot", 0),
        ("hot", 0),
        ("warm", 2.5),
        ("warm", 2.5),
    ]


@pytest.mark.parametrize(
    ("phase", "workers", "gap", "ok"),
    [
        ("cold", {"idle": 0, "running": 0}, None, True),
        ("cold", {"idle": 1, "running": 0}, 6.0, False),  # a warm worker was there: mislabelled
        ("warm", {"idle": 1, "running": 0}, 2.5, True),
        ("warm", {"idle": 0, "running": 0}, 2.5, False),
        ("hot", {"idle": 1, "running": 0}, 0.01, True),
        ("hot", {"idle": 1, "running": 0}, 3.0, False),
    ],
)
def test_labels_are_confirmed_by_evidence(
    phase: str, workers: dict[str, int | None], gap: float | None, ok: bool
) -> None:
    confirmed, evidence = confirm(phase, workers, gap, hot_gap_s=0.5)
    assert confirmed is ok
    assert ("mislabelled" in evidence) is (not ok)


def test_cost_model_against_hand_computed_numbers() -> None:
    m = CostModel(execution_s=1.0, cold_start_s=8.0, price_per_hour=3.6, rate_per_s=0.1, idle_timeout_s=5.0)
    tail = (1 - math.exp(-0.5)) / 0.1  # E[min(gap, 5)] for gaps ~ Exp(0.1)
    assert m.billed_s_per_request == pytest.approx(1.0 + tail + math.exp(-0.5) * 8.0)
    assert m.dollars_per_request == pytest.approx(m.billed_s_per_request / 1000)
    assert m.dollars_per_month == pytest.approx(m.dollars_per_request * 0.1 * 30 * 24 * 3600)
    rows = what_if(m, idle_timeouts=(1, 120), max_workers=(1,))
    assert rows[0]["cold_fraction"] > rows[1]["cold_fraction"]  # a longer idle timeout: fewer cold starts...
    assert rows[0]["billed_s_per_request"] < rows[1]["billed_s_per_request"]  # ...but a longer billed tail
    assert CostModel(2.0, 0, 1, 1.0, 5, max_workers=1).over_capacity


def test_records_merge_across_processes_and_refuse_duplicates(tmp_path: Path) -> None:
    with RecordWriter(tmp_path) as w:
        w.write(LoadRecord(process=w.pid, seq=w.next_seq(), label="latency", phase="hot", start_unix=1.0, e2e_s=0.1))
    other = tmp_path / "records-99999.jsonl"
    other.write_text(
        json.dumps({"process": 99999, "seq": 1, "label": "latency", "phase": "cold", "start_unix": 0.5, "e2e_s": 2.0})
        + "\n"
    )
    assert [r.phase for r in load_records(tmp_path)] == ["cold", "hot"]
    other.write_text(other.read_text() * 2)
    with pytest.raises(Exception, match="appears twice"):
        load_records(tmp_path)


def test_summary_names_each_tools_convention() -> None:
    r = LoadRecord(
        process=1,
        seq=1,
        label="streaming",
        phase="stream",
        start_unix=0,
        e2e_s=1.0,
        ttft_s=0.1,
        gaps_s=[0.1] * 8,
        output_tokens=10,
    )
    s = summarize([r])["stream"]
    assert s["tpot_vllm_s"]["p50"] == pytest.approx(0.1)  # (1.0 - 0.1) / 9
    assert s["itl_guidellm_s"]["p50"] == pytest.approx(0.8 / 9)  # (last - first token) / 9
    assert s["icl_aiperf_s"]["count"] == 8


def _own_port() -> list[str]:
    """Not locust's fixed 5557: two runs on one machine must not meet (--processes children dial --master-port)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = str(s.getsockname()[1])
    return ["--master-bind-port", port, "--master-port", port]


def _locust(emu: Emulator, locustfile: str, run_dir: Path, *extra: str, timeout: float = 90) -> str:
    env = {**os.environ, "RUNPOD_API_KEY": emu.api_key}
    cmd = [
        *LOCUST,
        "-f",
        str(ROOT / "locustfiles" / locustfile),
        "--headless",
        "--host",
        emu.base_url,
        "--endpoint-id",
        emu.endpoint_id,
        "--run-dir",
        str(run_dir),
        "--only-summary",
        "--skip-log-setup",
        *extra,
    ]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    return proc.stdout + proc.stderr


@pytest.mark.system  # a whole locust run (13-18 s): the system stage keeps the offline suite under 2 min
def test_headless_latency_run_against_the_emulator(tmp_path: Path) -> None:
    """Cold start 2 s, idle timeout 1 s, bounded to 30 s: cold > warm > hot, every label confirmed,
    no errors, report files produced."""
    with Emulator(cold_start=2.0, idle_timeout_s=1.0, idle_pickup_s=0.3, flashboot=False, worker=FAST) as emu:
        _locust(emu, "latency.py", tmp_path, "-t", "30s", "--idle-timeout", "1", "--rounds", "2")
    paths = build_report(tmp_path, idle_timeout_s=1.0)
    data = json.loads(paths["json"].read_text())
    assert all(c["ok"] for c in data["checks"]), data["checks"]
    assert {p: data["phases"][p]["requests"] for p in ("cold", "warm", "hot")} == {"cold": 2, "warm": 6, "hot": 6}
    html = paths["html"].read_text()
    assert html.count("data:image/png;base64,") == 2 and "Cost" in html
    assert paths["csv"].read_text().count("\n") == 15 and paths["junit"].exists()


@pytest.mark.system  # a whole locust run (13-18 s): the system stage keeps the offline suite under 2 min
def test_processes_2_records_every_request_exactly_once(tmp_path: Path) -> None:
    with Emulator(cold_start=0.0, max_workers=2, concurrency=4, min_workers=1, worker=INSTANT) as emu:
        out = _locust(
            emu,
            "capacity.py",
            tmp_path,
            "--processes",
            "2",
            *_own_port(),
            "--steps",
            "2,4",
            "--step-seconds",
            "3",
            "--csv",
            str(tmp_path / "locust"),
        )
    records = load_records(tmp_path)  # raises on any duplicate (process, seq)
    assert len({r.process for r in records}) == 2, out[-500:]
    stats = (tmp_path / "locust_stats.csv").read_text().splitlines()
    total = next(line for line in stats if ",Aggregated," in line).split(",")
    ended = [r for r in records if r.status != "cut"]  # a job the run's end cut is recorded, not fired
    assert int(total[2]) == len(ended)  # locust's own count == our merged records
    lags = [json.loads(m.read_text())["scheduling_lag"] for m in tmp_path.glob("process-*.json")]
    assert len(lags) == 2 and all(lag["samples"] > 50 for lag in lags)  # each process measured its own lag
    data = json.loads(build_report(tmp_path, slo_p95_s=5.0)["json"].read_text())
    assert [c["step"] for c in data["capacity"]] == ["c2", "c4"] and data["max_sustainable"] is not None


@pytest.mark.skipif(shutil.which("chromium") is None, reason="Debian chromium is not installed")
def test_report_plots_render_in_a_headless_browser(tmp_path: Path) -> None:
    run = tmp_path / "run"
    with RecordWriter(run) as w:
        for i, (phase, e2e) in enumerate([("cold", 2.0), ("hot", 0.01), ("warm", 0.3)] * 3):
            w.write(
                LoadRecord(
                    process=w.pid,
                    seq=w.next_seq(),
                    label="latency",
                    phase=phase,
                    start_unix=float(i),
                    e2e_s=e2e,
                    delay_ms=int(e2e * 900),
                    execution_ms=10,
                    confirmed=True,
                    workers_before={"idle": int(phase != "cold"), "running": 0},
                )
            )
    html = build_report(run)["html"]
    shot = tmp_path / "shot.png"
    subprocess.run(
        [
            "chromium",
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            f"--screenshot={shot}",
            "--window-size=1200,1600",
            html.as_uri(),
        ],
        capture_output=True,
        timeout=120,
        check=False,
    )
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000  # a rendered page with images, not blank


@pytest.mark.slow
def test_open_loop_arrivals_at_each_rate(tmp_path: Path) -> None:
    with Emulator(cold_start=0.0, max_workers=2, concurrency=8, min_workers=1, worker=INSTANT) as emu:
        _locust(emu, "arrivals.py", tmp_path, "--steps", "5,20", "--step-seconds", "2", "-t", "30s")
    records = load_records(tmp_path)
    by_rate = {p: [r for r in records if r.phase == p] for p in ("r5", "r20")}
    assert all(r.status == "ok" for r in records)
    # Poisson arrivals: ~10 and ~40 expected; bounds wide enough for chance, narrow enough to tell the rates apart
    assert 2 <= len(by_rate["r5"]) <= 25 and 20 <= len(by_rate["r20"]) <= 70
    assert len(by_rate["r20"]) > len(by_rate["r5"])


def test_pooled_gaps_are_exact_then_a_uniform_sample() -> None:
    from harness.load.metrics import Sample

    small = Sample(limit=1000)
    small.extend([1.0, 2.0, 3.0])
    assert small.count == 3 and list(small.values) == [1.0, 2.0, 3.0] and "sampled" not in small.summary()
    big = Sample(limit=2000)
    for start in range(0, 200_000, 64):  # in stream-sized batches, as records arrive
        big.extend([float(i) for i in range(start, min(start + 64, 200_000))])
    summary = big.summary()
    assert summary["count"] == 200_000 and summary["sampled"] == 2000 and len(set(big.values)) == 2000
    assert 0.45 < summary["p50"] / 200_000 < 0.55  # every position equally likely: the median stays central
    assert sum(v < 20_000 for v in big.values) > 100  # the early values are not all overwritten


USED = {
    "latency.py": {"--endpoint-id", "--api-key-env", "--idle-timeout", "--rounds", "--hot-gap", "--job-timeout"},
    "capacity.py": {"--endpoint-id", "--api-key-env", "--steps", "--step-seconds", "--job-timeout"},
    "arrivals.py": {"--endpoint-id", "--steps", "--step-seconds", "--arrivals", "--burstiness", "--job-timeout"},
    "streaming.py": {"--model", "--job-timeout", "--packet-clock"},
    "chat.py": {"--model", "--job-timeout", "--packet-clock"},
}


@pytest.mark.parametrize("name", sorted(USED))
def test_each_locustfile_header_lists_its_flags(name: str) -> None:
    """locust prints --help before it loads a locustfile, so the header is where our flags are listed."""
    import ast

    users = ast.parse((ROOT / "harness" / "load" / "locustrun.py").read_text())
    defined = {
        n.args[0].value
        for n in ast.walk(users)
        if isinstance(n, ast.Call)
        and getattr(n.func, "attr", "") == "add_argument"
        and n.args
        and isinstance(n.args[0], ast.Constant)
    }
    header = ast.get_docstring(ast.parse((ROOT / "locustfiles" / name).read_text())) or ""
    for flag in USED[name] | {"--run-dir"}:
        assert flag in defined, f"{flag} is not an option of harness.load.locustrun"
        assert flag in header, f"locustfiles/{name}: the header does not list {flag}"


def test_lag_probe_measures_how_late_it_wakes() -> None:
    from harness.load.lag import LagProbe

    now = [0.0]
    lateness = iter([0.0, 0.0005, 0.030, 0.002] * 25)  # s late per wake: one wake in four is 30 ms late

    def sleep(seconds: float) -> None:
        now[0] += seconds + next(lateness)

    probe = LagProbe(interval_s=0.01, sleep=sleep, clock=lambda: now[0])
    assert [round(probe.tick(), 1) for _ in range(4)] == [0.0, 0.5, 30.0, 2.0]
    for _ in range(96):
        probe.tick()
    s = probe.summary()
    assert s["samples"] == 100 and s["p50_ms"] == 0.0 and s["p99_ms"] == 30.0 and s["max_ms"] == pytest.approx(30.0)


@pytest.mark.parametrize(("p99", "ok"), [(1.0, True), (40.0, False)])
def test_report_flags_a_starved_load_generator(tmp_path: Path, p99: float, ok: bool) -> None:
    with RecordWriter(tmp_path) as w:
        w.write(LoadRecord(process=w.pid, seq=w.next_seq(), label="chat", phase="chat", start_unix=1.0, e2e_s=0.1))
        w.lag = {"samples": 500, "interval_ms": 10.0, "p50_ms": 0.0, "p99_ms": p99, "max_ms": p99 + 5}
    data = json.loads(build_report(tmp_path)["json"].read_text())
    (check,) = [c for c in data["checks"] if c["name"].startswith("the load generator kept up")]
    assert check["ok"] is ok and f"p99 {p99:g} ms" in check["detail"]
    assert ("starved of CPU" in check["detail"]) is not ok


@pytest.mark.parametrize("fallbacks", [0, 3])
def test_report_trusts_packet_times_only_when_every_time_came_from_packets(tmp_path: Path, fallbacks: int) -> None:
    with RecordWriter(tmp_path) as w:
        w.write(LoadRecord(process=w.pid, seq=w.next_seq(), label="chat", phase="chat", start_unix=1.0, e2e_s=0.1))
        w.lag = {"samples": 500, "interval_ms": 10.0, "p50_ms": 0.0, "p99_ms": 40.0, "max_ms": 45.0}
        w.timing = {"source": "packets", "stamped": 120, "fallbacks": fallbacks, "dropped": 0}
    checks = {c["name"]: c for c in json.loads(build_report(tmp_path)["json"].read_text())["checks"]}
    kept_up = [c for n, c in checks.items() if n.startswith("the load generator kept up")]
    if fallbacks:  # some times came from the starved process's own clock: the lag check stands
        assert "request times come from packet timestamps" not in checks and not kept_up[0]["ok"]
    else:
        assert checks["request times come from packet timestamps"]["ok"] and not kept_up


def test_a_phase_with_nothing_confirmed_does_not_pass_its_label_check() -> None:
    from harness.load.report import ordering_checks

    phase = {"requests": 1, "confirmed": 0, "mislabelled": [], "errors": {"ConnectError": 1}, "error_messages": {}}
    checks = {name: (ok, said) for name, ok, said in ordering_checks({"cold": phase})}
    ok, said = checks["cold: every label confirmed"]
    assert not ok and "0/1 confirmed: nothing confirmed the label" in said
    confirmed = {**phase, "confirmed": 1, "errors": {}}
    assert dict((n, ok) for n, ok, _ in ordering_checks({"cold": confirmed}))["cold: every label confirmed"]


@pytest.mark.system  # 15 s of connection retries: a slow hostile case
def test_latency_against_a_dead_port_stops_after_its_first_failures(tmp_path: Path) -> None:
    """It ran its whole schedule before (7 connection refusals, tens of seconds); now the first 3 stop it."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}"  # nothing listens once the socket is closed
    cmd = [*LOCUST, "-f", str(ROOT / "locustfiles" / "latency.py"), "--headless", "--host", dead]
    secret = "rpaSECRETENDPOINT0123456789abcdef"  # a key of ours that the failure messages quote (the URL)
    cmd += ["--endpoint-id", secret, "--run-dir", str(tmp_path), "--only-summary", "-t", "60s"]
    cmd += ["--idle-timeout", "1", "--rounds", "3"]
    t0 = time.monotonic()
    env = {**os.environ, "RUNPOD_API_KEY": secret}
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=90, check=False)
    took = time.monotonic() - t0
    out = proc.stdout + proc.stderr
    assert "the first 3 requests of the latency schedule all failed" in out, out[-2000:]
    assert secret not in out, out[-2000:]
    assert took < 30, took
    lines = [json.loads(line) for f in tmp_path.glob("records-*.jsonl") for line in f.read_text().splitlines()]
    records = [r for r in lines if "seq" in r]  # without the begun markers
    assert len(records) == 3 and all(r["status"] != "ok" for r in records)


SCRUBBED_LOCUST = """
import io, logging, os, sys
os.environ["DEVAI_TEST_API_KEY"] = SECRET = "rpa_" + "S3CRET" * 6
stream = io.StringIO()
logging.getLogger("locust.main").addHandler(logging.StreamHandler(stream))
real = sys.stdout
from harness.load import locustrun  # imports locust (gevent's patching): in a process of its own
locustrun.scrub_output()
logging.getLogger("locust.main").error("echoed %s", SECRET)
print("printed", SECRET)
sys.stdout.flush()
real.write(stream.getvalue())
"""


def test_locust_output_and_logging_pass_the_scrubber() -> None:
    proc = subprocess.run([sys.executable, "-c", SCRUBBED_LOCUST], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "S3CRET" not in proc.stdout and proc.stdout.count("***") == 2, proc.stdout


def test_a_full_disk_stops_the_load_run_once_with_one_line(tmp_path: Path) -> None:
    with tiny_tmpfs(tmp_path / "full") as full, Emulator(cold_start=0.0, worker=INSTANT) as emu:
        cmd = [*LOCUST, "-f", str(ROOT / "locustfiles" / "capacity.py"), "--headless", "--host", emu.base_url]
        cmd += ["--endpoint-id", emu.endpoint_id, "--run-dir", str(full / "run"), "--only-summary", "-t", "20s"]
        cmd += ["--steps", "2", "--step-seconds", "15"]
        t0 = time.monotonic()
        env = {**os.environ, "RUNPOD_API_KEY": emu.api_key}
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60, check=False)
    out = proc.stdout + proc.stderr
    assert out.count("stopping: cannot write records to") == 1, out[-3000:]
    assert proc.returncode != 0, out[-3000:]
    assert "Traceback" not in out and time.monotonic() - t0 < 15, out[-3000:]


@pytest.mark.system  # a locust run of its own, 4 s
def test_an_endless_stream_is_cut_at_the_runs_end_and_recorded_as_cut(tmp_path: Path) -> None:
    """A server that sends SSE keep-alives forever: ``-t 3s`` ends the run, every stream in flight is written as
    ``cut`` (not lost, not an error of the endpoint), and the report counts it."""
    from tests.hostile import hostile

    with hostile("keepalive") as server:
        cmd = [*LOCUST, "-f", str(ROOT / "locustfiles" / "streaming.py"), "--headless", "--host", f"{server.url}/v1"]
        cmd += ["-u", "2", "-r", "2", "-t", "3s", "--run-dir", str(tmp_path), "--only-summary", "--skip-log-setup"]
        t0 = time.monotonic()
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)
        took = time.monotonic() - t0
    assert took < 20, took
    records = load_records(tmp_path)
    assert [r.status for r in records] == ["cut", "cut"], proc.stderr[-2000:]
    assert all(r.error == "RunEnded" and (r.e2e_s or 0) > 2 for r in records), records
    data = json.loads(build_report(tmp_path)["json"].read_text())
    assert data["phases"]["stream"]["cut"] == 2 and data["phases"]["stream"]["requests"] == 0
    (finished,) = [c for c in data["checks"] if c["name"] == "every load process finished its records"]
    assert finished["ok"] and "2 request(s) cut off when the run stopped" in finished["detail"], finished
