"""``devai-harness worker-check``: will this handler survive a deploy?

1. Import it in a fresh subprocess with a time limit (:mod:`harness.preflight.importprobe`): import time, the
   slowest lines, heavy import-time work (frameworks, weights, network, servers, threads, CUDA) named
   by file and line, and the crash or hang itself.
2. Run it the way the platform does, under the emulator in a second subprocess: the test input first
   (a cold start: delayTime includes the import), then more jobs (warm), each output recognised by
   :func:`harness.core.shapes.extract`. A handler that dies at import shows its crash loop and traceback
   instead of a job stuck IN_QUEUE.

Everything runs in subprocesses: a handler may exit, hang or grab a GPU while it is imported.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from harness.clients.runpod import RunPodClient
from harness.core.errors import DiagnosedTimeout, HarnessError, JobError, ShapeError, WorkerError, ZombieWorker
from harness.core.shapes import extract
from harness.emulator.serving import fetch_state
from harness.preflight.importprobe import MARKER

__all__ = ["CheckResult", "WorkerReport", "check_worker", "load_test_input"]

FIX_LAZY = (
    "import-time work runs on every cold start, before runpod.serverless.start(); if it fails, the "
    "container dies with no logs and jobs sit IN_QUEUE (field report 002). Load lazily on the first "
    "request (or guard it and log before each heavy step)."
)
_EVENT_TITLES = {
    "heavy-import": "framework imported at import time",
    "weights-opened": "weight file opened at import time",
    "network": "network access at import time",
    "server": "socket bound (a server?) at import time",
    "subprocess": "subprocess started at import time",
}


_IMPORT_CHECKS = frozenset(
    {
        "import",
        "import time",
        "threads started at import time",
        "CUDA initialised at import time",
        *_EVENT_TITLES.values(),
    }
)


@dataclass(slots=True)
class CheckResult:
    name: str
    status: str  # pass | warn | fail | skip
    summary: str
    details: list[str] = field(default_factory=list)


@dataclass(slots=True)
class WorkerReport:
    handler: str
    checks: list[CheckResult] = field(default_factory=list)
    jobs: list[dict[str, Any]] = field(default_factory=list)
    import_probe: dict[str, Any] = field(default_factory=dict)
    logs: list[str] = field(default_factory=list)

    @property
    def checked(self) -> bool:
        return any(c.status != "skip" for c in self.checks)

    @property
    def ok(self) -> bool:
        """Nothing failed, and something was actually checked (all-skipped is not a pass)."""
        return self.checked and not any(c.status == "fail" for c in self.checks)

    def add(self, name: str, status: str, summary: str, details: list[str] | None = None) -> None:
        self.checks.append(CheckResult(name, status, summary, details or []))

    def to_json(self) -> dict[str, Any]:
        return {
            "handler": self.handler,
            "ok": self.ok,
            "checks": [asdict(c) for c in self.checks],
            "jobs": self.jobs,
            "import_probe": self.import_probe,
            "logs": self.logs[-50:],
        }

    def render(self) -> str:
        marks = {"pass": "PASS", "warn": "WARN", "fail": "FAIL", "skip": "SKIP"}
        out = [f"worker-check {self.handler}"]
        for c in self.checks:
            out.append(f"  {marks[c.status]}  {c.name}: {c.summary}")
            out.extend(f"          {line}" for line in c.details)
        if self.jobs:
            out.append("  jobs under the emulator (delayTime includes the cold start and the import):")
            for j in self.jobs:
                delay, ex = (("-" if v is None else v) for v in (j["delay_ms"], j["execution_ms"]))
                out.append(
                    f"          #{j['n']} {j['phase']:4s} {j['status']:9s} delay {delay} ms, "
                    f"execution {ex} ms, shape {j['shape']}"
                )
        if self.logs:
            out.append(f"  the handler printed {len(self.logs)} line(s) while importing; last: {self.logs[-1][:120]}")
        if any(c.status in ("warn", "fail") and c.name in _IMPORT_CHECKS for c in self.checks):
            out.append(f"  how to fix: {FIX_LAZY}")
        fails, warns = (sum(c.status == s for c in self.checks) for s in ("fail", "warn"))
        verdict = "OK" if self.ok else ("NOT READY" if self.checked else "NOT CHECKED")
        out.append(f"verdict: {verdict} ({fails} failed, {warns} warnings)")
        return "\n".join(out)


def load_test_input(handler_path: Path, given: str | None) -> tuple[Any, str]:
    """``--input`` JSON, else test_input.json beside the handler (RunPod's convention), else a default.
    ``{"input": {...}}`` and a bare input are both accepted."""
    if given is not None:
        source, text = "--input", given
    elif (handler_path.parent / "test_input.json").is_file():
        source, text = "test_input.json", (handler_path.parent / "test_input.json").read_text(encoding="utf-8")
    else:
        return {"prompt": "Hello"}, "default input {'prompt': 'Hello'} (no --input, no test_input.json)"
    try:
        data = json.loads(text)
    except ValueError as exc:
        from harness.core.errors import ConfigError

        raise ConfigError(f"{source} is not valid JSON: {exc}") from None
    if isinstance(data, dict) and set(data) == {"input"}:
        data = data["input"]
    return data, source


def _split(spec: str) -> tuple[Path, str]:
    target, sep, name = spec.rpartition(":")
    if not sep or not target.endswith(".py"):
        target, name = spec, "handler"
    return Path(target), name or "handler"


def run_import_probe(spec: str, timeout: float) -> tuple[dict[str, Any], list[str], str | None]:
    """(probe result, the handler's own output lines, the line it hung on if it timed out)."""
    cmd = [sys.executable, "-m", "harness.preflight.importprobe", spec]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=os.environ.copy(), check=False)
        out, err, hung = proc.stdout, proc.stderr, None
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout.decode(errors="replace") if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        err = exc.stderr.decode(errors="replace") if isinstance(exc.stderr, bytes) else (exc.stderr or "")
        beats = [line[len(MARKER) + 3 :] for line in err.splitlines() if line.startswith(MARKER + "at ")]
        hung = beats[-1] if beats else "unknown (no line of yours was on the stack)"
    result: dict[str, Any] = {}
    logs = []
    for line in (out + err).splitlines():
        if line.startswith(MARKER):
            if not line.startswith(MARKER + "at "):
                result = json.loads(line[len(MARKER) :])
        elif line.strip():
            logs.append(line)
    if not result and hung is None:
        result = {
            "ok": False,
            "error": "the import probe died without a report (killed by a signal?)",
            "error_type": "ProcessDied",
            "exit_code": proc.returncode,
        }
    return result, logs, hung


def _user_traceback(text: str, handler_file: str) -> list[str]:
    """The traceback from the first frame in the handler's folder on (our probe's frames dropped)."""
    lines = [line for line in text.strip().splitlines() if line.strip()]
    folder = str(Path(handler_file).resolve().parent)
    start = next((i for i, line in enumerate(lines) if folder in line), max(0, len(lines) - 6))
    return lines[start:][-12:]


def _import_checks(
    report: WorkerReport, probe: dict[str, Any], hung: str | None, timeout: float, slow_s: float
) -> None:
    if hung is not None:
        report.add(
            "import",
            "fail",
            f"did not finish within {timeout:g} s: hung at {hung}",
            ["RunPod marks a worker unhealthy after ~7 min of cold start; jobs wait IN_QUEUE meanwhile"],
        )
        return
    if not probe.get("ok"):
        tb = _user_traceback(str(probe.get("error", "")), report.handler.rpartition(":")[0])
        report.add(
            "import",
            "fail",
            f"importing the handler raised {probe.get('error_type')}",
            [*tb, "on RunPod this container exits before logging is set up: no logs, jobs stuck IN_QUEUE"],
        )
        return
    report.add("import", "pass", f"imported in {probe['import_s']:.2f} s")
    if not probe.get("callable"):
        report.add("handler", "fail", f"no callable {report.handler.rpartition(':')[2]!r} in the module")
    else:
        report.add("handler", "pass", f"{probe.get('kind')} handler")
    slow = [f"{s['where']}: {s['seconds']:.2f} s" for s in probe.get("slowest_lines", [])]
    if probe["import_s"] > slow_s:
        report.add("import time", "warn", f"{probe['import_s']:.2f} s > {slow_s:g} s", slow)
    by_kind: dict[str, list[str]] = {}
    for ev in probe.get("events", []):
        by_kind.setdefault(ev["kind"], []).append(f"{ev['where'] or 'in a library'}: {ev['detail']}")
    for kind, lines in by_kind.items():
        report.add(_EVENT_TITLES.get(kind, kind), "warn", f"{len(lines)} occurrence(s)", lines[:5])
    if probe.get("threads"):
        report.add("threads started at import time", "warn", ", ".join(probe["threads"][:5]))
    if probe.get("cuda_initialized"):
        report.add("CUDA initialised at import time", "warn", "torch.cuda was initialised while importing")


def _start_emulator(spec: str) -> subprocess.Popen[str]:
    cmd = [
        sys.executable,
        "-m",
        "harness.cli",
        "emulate",
        "--port",
        "0",
        "--handler",
        spec,
        "--cold-start",
        "0",
        "--max-workers",
        "1",
        "--idle-timeout",
        "600",
        "--announce-json",
    ]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=os.environ.copy())


async def _run_jobs(
    report: WorkerReport,
    proc: subprocess.Popen[str],
    job_input: Any,
    n_jobs: int,
    job_timeout: float,
    stuck_after_s: float,
) -> None:
    try:
        assert proc.stdout is not None
        line = await asyncio.wait_for(asyncio.to_thread(proc.stdout.readline), 60)
        info = json.loads(line)
        async with RunPodClient(
            info["endpoint_id"],
            info["api_key"],
            base_url=info["base_url"],
            stuck_after_s=stuck_after_s,
            health_every_s=0.5,
        ) as rp:
            for n in range(1, n_jobs + 1):
                phase = "cold" if n == 1 else "warm"
                row: dict[str, Any] = {
                    "n": n,
                    "phase": phase,
                    "status": "-",
                    "delay_ms": None,
                    "execution_ms": None,
                    "shape": "-",
                }
                report.jobs.append(row)
                try:
                    job = await rp.run(job_input, timeout=job_timeout)
                except ZombieWorker as exc:
                    row["status"] = "STUCK"
                    state = await asyncio.to_thread(
                        fetch_state, f"{info['base_url']}/{info['endpoint_id']}", info["api_key"]
                    )
                    logs = [w["logs"][-1] for w in state.get("workers", []) if w.get("logs")]
                    tb = _user_traceback(logs[-1], report.handler.rpartition(":")[0]) if logs else []
                    report.add(
                        "run under the emulator",
                        "fail",
                        str(exc).split(". Health")[0],
                        ["the worker's captured traceback:", *tb] if tb else [],
                    )
                    return
                except (JobError, DiagnosedTimeout) as exc:
                    row["status"] = "FAILED" if isinstance(exc, JobError) else "TIMEOUT"
                    report.add(f"job #{n} ({phase})", "fail", str(exc)[:300])
                    return
                row.update(status=str(job.status), delay_ms=job.delay_time_ms, execution_ms=job.execution_time_ms)
                try:
                    got = extract(job.output)
                except (ShapeError, WorkerError) as exc:
                    row["shape"] = "unknown" if isinstance(exc, ShapeError) else "error"
                    report.add(
                        "output shape",
                        "fail",
                        str(exc)[:300],
                        ["clients (and this harness) cannot read it; see README 'Output shapes'"],
                    )
                    return
                row["shape"] = got.shape
                if n == 1:
                    findings = [str(f) for f in got.findings]
                    report.add(
                        "output shape",
                        "warn" if findings else "pass",
                        f"{got.shape}: {len(got.choices)} choice(s), {len(got.text)} chars",
                        findings,
                    )
        report.add(
            "run under the emulator",
            "pass",
            f"{n_jobs} job(s) COMPLETED; cold delay "
            f"{report.jobs[0]['delay_ms']} ms, warm delay {report.jobs[-1]['delay_ms']} ms",
        )
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
        if proc.stdout is not None:
            proc.stdout.close()


def check_worker(
    spec: str,
    *,
    job_input: str | None = None,
    import_timeout: float = 120.0,
    slow_import_s: float = 10.0,
    jobs: int = 3,
    job_timeout: float = 120.0,
    stuck_after_s: float = 5.0,
) -> WorkerReport:
    path, name = _split(spec)
    report = WorkerReport(handler=f"{path}:{name}")
    if not path.is_file():
        report.add("handler file", "fail", f"{path} does not exist")
        return report
    spec = f"{path.resolve()}:{name}"
    t0 = time.perf_counter()
    probe, logs, hung = run_import_probe(spec, import_timeout)
    report.import_probe, report.logs = probe, logs
    _import_checks(report, probe, hung, import_timeout, slow_import_s)
    if hung is not None:
        return report  # it would hang under the emulator too
    data, source = load_test_input(path, job_input)
    report.add("test input", "pass", f"from {source}")
    try:
        asyncio.run(_run_jobs(report, _start_emulator(spec), data, jobs, job_timeout, stuck_after_s))
    except (HarnessError, OSError, ValueError) as exc:
        report.add("run under the emulator", "fail", f"{type(exc).__name__}: {exc}")
    report.import_probe["check_s"] = round(time.perf_counter() - t0, 2)
    return report
