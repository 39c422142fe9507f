"""``devai-harness worker-check``: will this worker survive a deploy?

Two modes, by what is given:

* ``FILE`` — a RunPod worker file (it ends in ``runpod.serverless.start(...)``), run as the platform runs it: with
  the worker's own interpreter (``--python``; else a venv beside the file; else ``python3`` on PATH — the report
  says which), so the runpod SDK version the user pinned drives it.
* ``FILE:function`` — a plain handler function, run in-process by the emulator (the fast path).

Either way:

1. The file is imported in a fresh subprocess with a time limit (:mod:`harness.preflight.importprobe`, run by
   that interpreter): import time, the slowest lines, heavy import-time work the user's own lines did (frameworks,
   weights, network, servers, threads, CUDA), the crash or hang itself, and — for a worker file — whether and how
   it calls ``runpod.serverless.start``.
2. It runs under the emulator (:mod:`harness.preflight.jobrun`): the test input first (a cold start: delayTime
   includes the import), then more jobs (warm). A worker that dies at import shows its crash loop and traceback
   instead of a job stuck IN_QUEUE.

What cannot get better by waiting (a directory, a missing file or function, a module the interpreter lacks, a file
that never starts the SDK) is reported at once, in one line.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from harness.core.errors import ConfigError
from harness.preflight import importprobe
from harness.preflight.jobrun import run_under_emulator, user_traceback
from harness.preflight.probeprocess import ProbeRun, run_probe
from harness.preflight.report import EVENT_TITLES, WorkerReport, load_test_input

__all__ = ["WorkerReport", "check_worker", "choose_python", "run_import_probe"]

MARKER = importprobe.MARKER
_FRAME = re.compile(r'File "([^"]+)", line (\d+)')


def _split(spec: str) -> tuple[Path, str | None]:
    """``FILE`` (a worker file) or ``FILE.py:function``."""
    target, sep, name = spec.rpartition(":")
    if sep and target.endswith(".py") and name.isidentifier():
        return Path(target), name
    return Path(spec), None


def _existing_file(path: Path) -> Path:
    if path.is_dir():
        inside = path / "handler.py"
        hint = f" (e.g. {inside})" if inside.is_file() else ""
        raise ConfigError(f"{path} is a directory: give the worker file{hint}")
    if not path.is_file():
        raise ConfigError(f"{path}: no such file")
    return path.resolve()


def choose_python(handler: Path, given: str | None) -> tuple[str, str]:
    """(interpreter, how it was chosen): ``--python``, else a venv beside the handler (its folder or the one above),
    else ``python3`` on PATH."""
    if given:
        found = shutil.which(given) or given
        if not (Path(found).is_file() and os.access(found, os.X_OK)):
            raise ConfigError(f"--python {given}: no such interpreter")
        return os.path.abspath(found), "--python"
    for folder in (handler.parent, handler.parent.parent):
        for venv in (".venv", "venv"):
            candidate = folder / venv / "bin" / "python"
            if candidate.is_file():
                return str(candidate), f"the venv beside the handler ({folder / venv})"
    on_path = shutil.which("python3")
    if on_path is None:
        raise ConfigError("no python3 on PATH: give the worker's interpreter with --python")
    return on_path, "python3 on PATH"


# The probe runs as a script, but a script's own folder goes first on sys.path: a worker with a module of its own
# named like one beside the probe (datasource.py, report.py) would import ours. Run from -c instead, with -c's
# entry ('' = the current folder) taken off too: the worker's path is only what its own `python handler.py` has
# (the probe puts the handler's folder first).
_PROBE_FROM_NOWHERE = (
    "import runpy, sys; del sys.argv[0], sys.path[0]; runpy.run_path(sys.argv[0], run_name='__main__')"
)


def run_import_probe(
    target: str, timeout: float, *, python: str = sys.executable, worker: bool = False, cwd: Path | None = None
) -> ProbeRun:
    """The probe's report, a bounded tail of the handler's own output, the line it hung on if it timed out, and
    how many of its processes were still running when it ended (killed)."""
    cmd = [python, "-c", _PROBE_FROM_NOWHERE, str(Path(importprobe.__file__).resolve()), target]
    cmd += ["--worker"] if worker else []
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    run = run_probe(cmd, MARKER, timeout, env, cwd)
    if not run.result and run.hung is None:
        died = "the import probe died without a report (killed by a signal?)"
        run.result = {"ok": False, "error": died, "error_type": "ProcessDied", "exit_code": run.returncode}
    return run


def _left_running(report: WorkerReport, run: ProbeRun) -> None:
    if run.left_running > 0:
        report.add(
            "processes left running",
            "warn",
            f"{run.left_running} process(es) the import started were still running after it ended: killed",
            ["a daemon forked at import time outlives the handler: on RunPod it keeps the container busy"],
        )


def _import_failed(report: WorkerReport, probe: dict[str, Any], path: Path, python: str) -> bool:
    """Report a failed import; True when waiting for a crash loop cannot tell more (a missing module)."""
    missing = probe.get("missing_module")
    if missing:
        lines = _FRAME.findall(str(probe.get("error", "")))
        mine = [f"{os.path.relpath(f, path.parent)}:{n}" for f, n in lines if Path(f).is_relative_to(path.parent)]
        where = f" (imported at {mine[-1]})" if mine else ""
        how = f"pip install {missing.split('.')[0]} there" if missing.split(".")[0] == "runpod" else "install it there"
        summary = f"No module named {missing!r}{where} in {python}: {how}, or choose the interpreter with --python"
        report.add("missing module", "fail", summary)  # not import-time work: no "load lazily" advice
        return True
    tb = user_traceback(str(probe.get("error", "")), path.parent)
    died = "on RunPod this container exits before logging is set up: no logs, jobs stuck IN_QUEUE"
    report.add("import", "fail", f"importing the handler raised {probe.get('error_type')}", [*tb, died])
    return False


def _import_checks(
    report: WorkerReport, probe: dict[str, Any], hung: str | None, timeout: float, slow_s: float
) -> None:
    if hung is not None:
        waits = "RunPod marks a worker unhealthy after ~7 min of cold start; jobs wait IN_QUEUE meanwhile"
        report.add("import", "fail", f"did not finish within {timeout:g} s: hung at {hung}", [waits])
        return
    report.add("import", "pass", f"imported in {probe['import_s']:.2f} s")
    slow = [f"{s['where']}: {s['seconds']:.2f} s" for s in probe.get("slowest_lines", [])]
    if probe["import_s"] > slow_s:
        report.add("import time", "warn", f"{probe['import_s']:.2f} s > {slow_s:g} s", slow)
    by_kind: dict[str, list[str]] = {}
    for ev in probe.get("events", []):
        by_kind.setdefault(ev["kind"], []).append(f"{ev['where']}: {ev['detail']}")
    for kind, lines in by_kind.items():
        report.add(EVENT_TITLES.get(kind, kind), "warn", f"{len(lines)} occurrence(s)", lines[:5])
    if probe.get("threads"):
        report.add("threads started at import time", "warn", ", ".join(probe["threads"][:5]))
    if probe.get("cuda_initialized"):
        report.add("CUDA initialised at import time", "warn", "torch.cuda was initialised while importing")


def _start_check(report: WorkerReport, probe: dict[str, Any]) -> bool:
    """Did the worker file start the SDK with a callable handler? False: it never takes a job."""
    start = probe.get("start") or {}
    if not start.get("called"):
        report.add(
            "runpod.serverless.start",
            "fail",
            "the file never calls runpod.serverless.start(...): on RunPod the container exits (or idles) without "
            'taking a job. End it with runpod.serverless.start({"handler": handler}) '
            "(or give FILE:function to test a plain function)",
        )
        return False
    if not start.get("handler"):
        report.add("runpod.serverless.start", "fail", 'called without a callable "handler" in its config')
        return False
    options = ", ".join(start.get("options") or []) or "no options"
    sdk = f"runpod {start.get('runpod_version') or '(version unknown)'}"
    report.add("runpod.serverless.start", "pass", f"{start.get('kind')} handler, {options}; {sdk}")
    return True


def _check_file_worker(report: WorkerReport, path: Path, python: str | None, run: dict[str, Any]) -> list[str] | None:
    """Probe a worker file; the emulator arguments to run it with, or None when running it cannot tell more."""
    interpreter, how = choose_python(path, python)
    ran = run_import_probe(str(path), run["import_timeout"], python=interpreter, worker=True, cwd=path.parent)
    probe, hung = ran.result, ran.hung
    report.import_probe, report.logs = probe, ran.logs
    _left_running(report, ran)
    version = probe.get("python_version")
    report.add("interpreter", "pass", f"{interpreter}{f' (Python {version})' if version else ''}, from {how}")
    if hung is None and not probe.get("ok"):
        if _import_failed(report, probe, path, interpreter):
            return None
    else:
        _import_checks(report, probe, hung, run["import_timeout"], run["slow_import_s"])
        if hung is not None or not _start_check(report, probe):
            return None
    run["streamed"] = "generator" in str((probe.get("start") or {}).get("kind"))
    return ["--worker", shlex.join([interpreter, str(path)]), "--worker-cwd", str(path.parent)]


def _check_function(report: WorkerReport, path: Path, name: str, run: dict[str, Any]) -> list[str] | None:
    ran = run_import_probe(f"{path}:{name}", run["import_timeout"], cwd=path.parent)
    probe, hung = ran.result, ran.hung
    report.import_probe, report.logs = probe, ran.logs
    _left_running(report, ran)
    if hung is None and not probe.get("ok"):
        if _import_failed(report, probe, path, sys.executable):
            return None
    else:
        _import_checks(report, probe, hung, run["import_timeout"], run["slow_import_s"])
        if hung is not None:
            return None  # it would hang under the emulator too
        if not probe.get("callable"):
            report.add("handler", "fail", f"no callable {name!r} in {path.name}")
            return None
        report.add("handler", "pass", f"{probe.get('kind')} handler")
    return ["--handler", f"{path}:{name}", "--cold-start", "0"]


def check_worker(
    spec: str,
    *,
    python: str | None = None,
    job_input: str | None = None,
    import_timeout: float = 120.0,
    slow_import_s: float = 10.0,
    jobs: int = 3,
    job_timeout: float = 120.0,
    stuck_after_s: float = 5.0,
) -> WorkerReport:
    """Check ``FILE`` (a worker file) or ``FILE.py:function``; ConfigError for what is not a file to check."""
    target, name = _split(spec)
    path = _existing_file(target)
    if name is not None and python:
        raise ConfigError("--python applies to a worker FILE; FILE:function runs in devai-harness's own Python")
    report = WorkerReport(handler=str(target) if name is None else f"{target}:{name}")
    run: dict[str, Any] = {"import_timeout": import_timeout, "slow_import_s": slow_import_s, "streamed": False}
    t0 = time.perf_counter()
    data, source = load_test_input(path, job_input)  # bad --input fails before anything is started
    args = _check_file_worker(report, path, python, run) if name is None else _check_function(report, path, name, run)
    if args is not None:
        report.add("test input", "pass", f"from {source}")
        run_under_emulator(
            report,
            args,
            data,
            jobs=jobs,
            job_timeout=job_timeout,
            stuck_after_s=stuck_after_s,
            folder=path.parent,
            streamed=run["streamed"],
        )
    report.import_probe["check_s"] = round(time.perf_counter() - t0, 2)
    return report
