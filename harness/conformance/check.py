"""The main job, ``devai-harness check``: the same stages on every target, typed results, a report that is always
written.

First a pre-flight (:mod:`harness.conformance.reach`): a bad argument stops the run before anything is asked
(ConfigError, exit 2); a target that is down makes every stage ERROR at once. Then the stages: ``suite`` (the
conformance scenarios in a pytest subprocess, with the markers the target needs), ``shapes`` (output shapes through
the real client), ``latency`` (cold, hot and warm on RunPod-like targets; request timing on OpenAI-compatible
servers), ``semantics`` (OpenAI-compatible servers). Each stage is kept as it finishes: one that fails records its
error and the run goes on; one that ran nothing is NOT CHECKED (and the run fails, saying why); one that cannot
apply to a target is N/A, with the reason.

How long it takes is bounded by ``timeout`` (``--timeout``): every request ends within it (connect, first byte, the
whole body and its retries; keep-alives never extend it), and a stage stops asking at its first request that did
not answer in time — so a silent or dripping endpoint costs the pre-flight (at most 10 s) plus about one
``timeout`` per stage, and the suite's own tests are bounded the same way. Ctrl-C keeps the finished stages, writes
the report, stops the suite's processes and says what it was doing.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime
import os
import signal
import subprocess
import sys
import time
import traceback
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from harness.clients.openai import OpenAIClient
from harness.clients.runpod import DEFAULT_BASE_URL, RunPodClient
from harness.conformance.probe import (
    ERA_CASES,
    LatencyRow,
    ProbeRow,
    latency_probe,
    openai_shape_cases,
    openai_timing_probe,
    probe_cases,
)
from harness.conformance.reach import Reach, reach_openai, reach_runpod, reach_sdk_local
from harness.conformance.sandbox import sandbox_in_use
from harness.conformance.semantics import Prober, overall, run_semantics
from harness.core.errors import ConfigError, HarnessError
from harness.core.verdict import Verdict
from harness.core.wire import check_id, check_url
from harness.load.phases import LATENCY_POLL
from harness.reporting.files import scrub_tree

__all__ = ["TARGET_KINDS", "CheckRun", "StageResult", "Target", "find_suite", "resolve_target", "run_check"]

TARGET_KINDS = ("emulator", "runpod", "runpod-local", "openai")
PASS, FAIL, NOT_CHECKED, NA, ERROR = Verdict.PASS, Verdict.FAIL, Verdict.NOT_CHECKED, Verdict.NA, Verdict.ERROR
SUITE_MODULES = {
    "emulator": ("test_devai_tasks.py", "test_protocol.py", "test_faults.py"),
    "replay": ("test_devai_tasks.py", "test_protocol.py", "test_faults.py"),
    "runpod": ("test_devai_tasks.py", "test_protocol.py", "test_faults.py"),
    "runpod-local": ("test_devai_tasks.py", "test_protocol.py"),
    "openai": ("test_devai_tasks.py", "test_streaming.py", "test_semantics.py"),
}
LIVE = frozenset({"runpod", "runpod-local", "openai"})
SUITE_LIMIT_S = 3600.0
Progress = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class Target:
    """Where the checks go. The API key is read from the environment variable ``api_key_env`` when needed, never
    stored or printed."""

    kind: str
    base_url: str | None = None
    endpoint_id: str | None = None
    api_key_env: str | None = None
    model: str | None = None
    config: str | None = None  # emulator YAML
    idle_timeout_s: float = 5.0

    def api_key(self, env: Mapping[str, str] | None = None) -> str | None:
        return (os.environ if env is None else env).get(self.api_key_env or "") or None

    def describe(self) -> str:
        if self.kind == "emulator":
            return "the embedded RunPod emulator (127.0.0.1)"
        if self.kind == "runpod":
            return f"RunPod endpoint {self.endpoint_id} at {self.base_url}"
        if self.kind == "runpod-local":
            return f"runpod-python's local test server at {self.base_url}"
        return f"OpenAI-compatible server {self.base_url}" + (f" (model {self.model})" if self.model else "")


def resolve_target(
    kind: str,
    *,
    base_url: str | None = None,
    endpoint_id: str | None = None,
    api_key_env: str | None = None,
    model: str | None = None,
    config: str | None = None,
    idle_timeout_s: float = 5.0,
    env: Mapping[str, str] | None = None,
) -> Target:
    """Everything a target needs, checked before anything runs (ConfigError with one clear line)."""
    env = os.environ if env is None else env
    if kind not in TARGET_KINDS:
        raise ConfigError(f"unknown target {kind!r}: {', '.join(TARGET_KINDS)}")
    if idle_timeout_s <= 0:
        raise ConfigError("--idle-timeout must be positive")
    if kind == "emulator":
        if config is not None and not Path(config).is_file():
            raise ConfigError(f"emulator config {config} does not exist")
        return Target(kind, config=config, idle_timeout_s=idle_timeout_s)
    if kind == "runpod":
        endpoint = endpoint_id or env.get("RUNPOD_ENDPOINT_ID")
        if not endpoint:
            raise ConfigError("--target runpod needs an endpoint: --endpoint-id ID or RUNPOD_ENDPOINT_ID")
        key_env = api_key_env or "RUNPOD_API_KEY"
        if not env.get(key_env):
            raise ConfigError(
                f"--target runpod needs an API key in ${key_env} (choose the variable with --api-key-env)"
            )
        url = check_url("--base-url", base_url or env.get("RUNPOD_ENDPOINT_BASE_URL") or DEFAULT_BASE_URL)
        return Target(kind, url, check_id("endpoint id", endpoint), key_env, idle_timeout_s=idle_timeout_s)
    if kind == "runpod-local":
        url = check_url("--base-url", base_url or env.get("RUNPOD_LOCAL_URL") or "http://127.0.0.1:8000")
        return Target(kind, url, idle_timeout_s=idle_timeout_s)
    given = base_url or env.get("OPENAI_BASE_URL")
    if not given:
        raise ConfigError("--target openai needs --base-url URL (e.g. http://127.0.0.1:8000/v1) or OPENAI_BASE_URL")
    key_env = api_key_env or "OPENAI_API_KEY"
    return Target(kind, check_url("--base-url", given), api_key_env=key_env, model=model or env.get("OPENAI_MODEL"))


@dataclass(slots=True)
class StageResult:
    name: str
    verdict: str
    summary: str
    rows: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.verdict in (PASS, NA)


@dataclass(slots=True)
class CheckRun:
    target: Target
    run_dir: Path
    started_at: str
    stages: list[StageResult] = field(default_factory=list)
    report: dict[str, Path] = field(default_factory=dict)
    interrupted: str | None = None  # what it was doing when Ctrl-C came
    requests: dict[str, Any] | None = None  # the recorded requests' report (checks, phases), once written

    @property
    def ok(self) -> bool:
        return bool(self.stages) and all(s.ok for s in self.stages) and self.interrupted is None

    @property
    def verdict(self) -> str:
        verdicts = Counter(s.verdict for s in self.stages)
        if self.ok:
            return PASS
        if ERROR in verdicts or self.interrupted:
            return ERROR if FAIL not in verdicts else FAIL
        return NOT_CHECKED if set(verdicts) <= {PASS, NA, NOT_CHECKED} else FAIL

    def to_json(self) -> dict[str, Any]:
        return {
            "target": asdict(self.target),
            "run_dir": str(self.run_dir),
            "started_at": self.started_at,
            "verdict": self.verdict,
            "interrupted": self.interrupted,
            "stages": [asdict(s) for s in self.stages],
        }


# --- the suite --------------------------------------------------------------------------------


def find_suite(given: str | Path | None = None) -> Path | None:
    """``--suite DIR``, else ./scenarios, else the scenarios/ beside this package (a source checkout)."""
    candidates = [Path(given)] if given else [Path("scenarios"), Path(__file__).resolve().parents[2] / "scenarios"]
    return next((c.resolve() for c in candidates if (c / "test_devai_tasks.py").is_file()), None)


def _suite_env(target: Target) -> dict[str, str]:
    env = dict(os.environ)
    key = target.api_key()
    if target.kind == "runpod":
        env.update(RUNPOD_ENDPOINT_ID=target.endpoint_id or "", RUNPOD_ENDPOINT_BASE_URL=target.base_url or "")
        if key:
            env["RUNPOD_API_KEY"] = key
    elif target.kind == "openai":
        env["OPENAI_BASE_URL"] = target.base_url or ""
        if key:
            env["OPENAI_API_KEY"] = key
        if target.model:
            env["OPENAI_MODEL"] = target.model
    elif target.kind == "runpod-local":
        env["RUNPOD_LOCAL_URL"] = target.base_url or ""
    return env


def suite_stage(target: Target, run_dir: Path, suite: Path | None, suite_target: str, show: Progress) -> StageResult:
    """The scenarios in a pytest subprocess; the verdict from its JUnit file, so 'nothing ran' cannot pass."""
    if suite is None:
        return StageResult(
            "suite", NOT_CHECKED, "no conformance suite found: run from the repository root or pass --suite DIR"
        )
    modules = [suite / m for m in SUITE_MODULES[suite_target] if (suite / m).is_file()]
    if not modules:
        return StageResult("suite", NOT_CHECKED, f"{suite} holds none of {', '.join(SUITE_MODULES[suite_target])}")
    live = suite_target in LIVE
    junit = run_dir / "suite-junit.xml"
    cmd = [sys.executable, "-m", "pytest", *map(str, modules), "--target", suite_target, "-q", "-p", "no:cacheprovider"]
    cmd += ["-m", "live and not load" if live else "not live and not load", "--junitxml", str(junit)]
    cmd += ["--harness-report", str(run_dir / "suite"), "-n", "0" if live else "auto"]
    show(f"suite: {len(modules)} scenario modules on target {suite_target} (pytest)")
    sandbox = sandbox_in_use()
    show(f"suite: model-written code runs in {sandbox}")
    rc = _run_suite(cmd, suite.parent, _suite_env(target), run_dir / "suite.log")
    result = _suite_verdict(junit, rc, run_dir / "suite.log")
    return dataclasses.replace(result, summary=f"{result.summary}; model-written code ran in: {sandbox}")


def _run_suite(cmd: list[str], cwd: Path, env: dict[str, str], log: Path) -> int:
    """The pytest run in a session of its own, so Ctrl-C (or its time limit) stops it and every xdist worker."""
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            return proc.wait(SUITE_LIMIT_S)
        except subprocess.TimeoutExpired:
            _stop_group(proc)
            return -9
        except BaseException:
            _stop_group(proc)
            raise


def _stop_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the process group, SIGKILL after 5 s: nothing of the suite is left running."""
    for sig, wait in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(wait)
            return
        except subprocess.TimeoutExpired:
            continue


def _suite_verdict(junit: Path, rc: int, log: Path) -> StageResult:
    try:
        root = ET.parse(junit).getroot()
    except (OSError, ET.ParseError):
        lines = (
            [line for line in log.read_text("utf-8", "replace").splitlines() if line.strip()] if log.is_file() else []
        )
        return StageResult("suite", ERROR, f"pytest wrote no results (exit {rc})", error="\n".join(lines[-3:]))
    suites = [root] if root.tag == "testsuite" else list(root)
    rows = []
    for case in (c for s in suites for c in s.iter("testcase")):
        outcome, message = "passed", ""
        for tag in ("failure", "error", "skipped"):
            node = case.find(tag)
            if node is not None:
                outcome, message = tag, (node.get("message") or "").splitlines()[0][:300] if node.get("message") else ""
                break
        rows.append({"test": f"{case.get('classname')}::{case.get('name')}", "outcome": outcome, "message": message})
    counts = Counter(r["outcome"] for r in rows)
    summary = ", ".join(f"{n} {k}" for k, n in counts.most_common()) or "no tests ran"
    if not rows or counts["skipped"] == len(rows):
        reasons = Counter(r["message"] for r in rows).most_common(2)
        why = "; ".join(f"{n} x {m}" for m, n in reasons) if reasons else f"pytest exit {rc}"
        return StageResult("suite", NOT_CHECKED, f"{summary}: {why}", rows)
    # A failure is the endpoint's; an error alone is ours (a sandbox that could not start...): never its FAIL.
    verdict = FAIL if counts["failure"] else ERROR if counts["error"] else PASS
    return StageResult("suite", verdict, summary, rows)


# --- the other stages ---------------------------------------------------------------------------


def _probe_rows(rows: list[ProbeRow], why_stopped: str | None = None) -> StageResult:
    bad = [r for r in rows if not r.ok]
    summary = f"{len(rows) - len(bad)}/{len(rows)} cases read and checked"
    if why_stopped:
        summary += f"; {why_stopped}"
    return StageResult("shapes", FAIL if bad or not rows else PASS, summary, [asdict(r) for r in rows])


def _latency_rows(rows: list[LatencyRow], failure: str | None) -> StageResult:
    labels = Counter(r.phase for r in rows)
    bad = [r for r in rows if r.confirmed is False]
    summary = ", ".join(f"{n} {p}" for p, n in labels.items()) or "no request finished"
    summary += f"; {len(bad)} mislabelled" if bad else ""
    if failure:
        return StageResult("latency", FAIL, f"{summary}; stopped: {failure}", [asdict(r) for r in rows])
    return StageResult("latency", FAIL if bad else PASS, summary, [asdict(r) for r in rows])


Stage = Callable[[], Coroutine[Any, Any, StageResult]]


def _emulator_plan(target: Target, run_dir: Path, timeout: float, show: Progress) -> list[tuple[str, Stage]]:
    from harness.emulator import Emulator, load_config
    from harness.emulator.config import describe

    base = load_config(target.config)

    async def shapes() -> StageResult:
        rows = []
        for i, (label, options, job_input, expected) in enumerate(ERA_CASES, 1):
            show(f"shapes {i}/{len(ERA_CASES)}: {label}")
            with Emulator(base, cold_start=0.0, worker={**base.worker, **options}) as emu:
                async with RunPodClient.of(emu) as rp:
                    rows.extend((await probe_cases(rp, [(label, job_input, expected)], timeout=timeout))[0])
        return _probe_rows(rows)

    async def latency() -> StageResult:
        show(f"latency: {describe(base)}")
        with Emulator(base) as emu:
            async with RunPodClient.of(emu, poll=LATENCY_POLL) as rp:
                rows, failure = await latency_probe(
                    rp, idle_timeout_s=base.idle_timeout_s, timeout=timeout, run_dir=run_dir, progress=show
                )
        stage = _latency_rows(rows, failure)
        stage.summary += f" ({describe(base)})"
        return stage

    return [("shapes", shapes), ("latency", latency)]


def _runpod_client(target: Target) -> RunPodClient:
    if target.kind == "runpod-local":
        return RunPodClient.local(target.base_url or "", poll=LATENCY_POLL)
    return RunPodClient(
        target.endpoint_id or "", target.api_key(), base_url=target.base_url or DEFAULT_BASE_URL, poll=LATENCY_POLL
    )


def _runpod_plan(target: Target, run_dir: Path, timeout: float, show: Progress) -> list[tuple[str, Stage]]:
    cases = [("native chat", ERA_CASES[0][2], None), ("openai route chat", ERA_CASES[5][2], None)]

    async def shapes() -> StageResult:
        async with _runpod_client(target) as rp:
            show("shapes: a native chat and one through the OpenAI route")
            return _probe_rows(*await probe_cases(rp, cases, timeout=timeout))

    async def latency() -> StageResult:
        if target.kind == "runpod-local":
            why = "runpod-python's local test server runs jobs in its own process: no workers scale, no cold start"
            return StageResult("latency", NA, why)
        async with _runpod_client(target) as rp:
            rows, failure = await latency_probe(
                rp, idle_timeout_s=target.idle_timeout_s, timeout=timeout, run_dir=run_dir, progress=show
            )
        return _latency_rows(rows, failure)

    return [("shapes", shapes), ("latency", latency)]


def _openai_plan(target: Target, run_dir: Path, timeout: float, show: Progress) -> list[tuple[str, Stage]]:
    model = target.model or ""

    def client() -> OpenAIClient:
        return OpenAIClient(target.base_url or "", target.api_key(), request_timeout=timeout)

    async def shapes() -> StageResult:
        show(f"shapes: /models and a chat, streamed and whole (model {model})")
        async with client() as oa:
            return _probe_rows(*await openai_shape_cases(oa, model))

    async def timing() -> StageResult:
        async with client() as oa:
            records, stopped = await openai_timing_probe(oa, model, run_dir=run_dir, progress=show)
        errors = Counter(r.error for r in records if r.status != "ok")
        summary = f"{len(records)} sequential requests (streamed and whole), errors {dict(errors) or 0}"
        summary += f"; stopped: {stopped}" if stopped else ""
        summary += "; cold/warm/hot: N/A (an OpenAI server loads its model before it answers /health)"
        return StageResult("latency", FAIL if errors else PASS, summary)

    async def semantics() -> StageResult:
        show("semantics: determinism, stream = whole, max_tokens, stop, n, seed, usage, errors")
        return await semantics_stage(target, model, timeout)

    return [("shapes", shapes), ("latency", timing), ("semantics", semantics)]


async def semantics_stage(target: Target, model: str, timeout: float) -> StageResult:
    """The engine's contract on any model (harness.conformance.semantics): READY and READY WITH LIMITATIONS
    pass, NOT READY fails, NOT CHECKED says so."""
    async with Prober(target.base_url or "", target.api_key(), model, timeout=timeout) as prober:
        verdicts = await run_semantics(prober)
    said = overall(verdicts)
    counts = Counter(f"{v.layer} {v.status}" for v in verdicts)
    summary = f"{said}: " + ", ".join(f"{n} {k}" for k, n in sorted(counts.items()))
    stage = {"READY": PASS, "READY WITH LIMITATIONS": PASS, "NOT READY": FAIL}.get(said, NOT_CHECKED)
    return StageResult("semantics", stage, summary, [asdict(v) for v in verdicts])


async def _reach(target: Target, timeout: float) -> Reach:
    if target.kind == "openai":
        async with OpenAIClient(target.base_url or "", target.api_key(), request_timeout=timeout) as oa:
            return await reach_openai(oa, target.model, timeout)
    if target.kind == "runpod":
        async with _runpod_client(target) as rp:
            return await reach_runpod(rp, timeout)
    if target.kind == "runpod-local":
        return await reach_sdk_local(target.base_url or "", timeout)
    return Reach()


async def _guard(name: str, work: Awaitable[StageResult]) -> StageResult:
    try:
        return await work
    except HarnessError as exc:
        return StageResult(name, ERROR, f"{type(exc).__name__}: {exc}", error=str(exc))
    except Exception as exc:  # a bug must not cost the report: it is written, with the error in it
        return StageResult(name, ERROR, f"{type(exc).__name__}: {exc}", error=traceback.format_exc(limit=8))


PLANS = {"emulator": _emulator_plan, "runpod": _runpod_plan, "runpod-local": _runpod_plan, "openai": _openai_plan}


def run_check(
    target: Target,
    run_dir: Path,
    *,
    suite: Path | None,
    run_suite: bool = True,
    suite_target: str | None = None,
    timeout: float = 120.0,
    show: Progress = lambda _: None,
) -> CheckRun:
    """Every stage, kept as it finishes; the report written whatever happens. ConfigError (a bad argument the
    pre-flight found) before anything is asked; Ctrl-C ends the run with ``interrupted`` set."""
    from harness.conformance.checkreport import write_check_report

    run_dir = run_dir.resolve()  # the suite runs in another working directory
    run = CheckRun(target, run_dir, datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"))
    doing = "the pre-flight"
    bad_input = False
    try:
        show(f"pre-flight: is {target.describe()} there?")
        reach = asyncio.run(_reach(target, timeout))
        if reach.model:
            target = run.target = dataclasses.replace(target, model=reach.model)
        if reach.down:
            show(f"pre-flight: {reach.down}")
        doing = "the suite"
        t0 = time.monotonic()
        if not run_suite:
            run.stages.append(StageResult("suite", NA, "not run (--no-suite)"))
        elif reach.down:
            run.stages.append(StageResult("suite", ERROR, f"not run: {reach.down}", error=reach.down))
        else:
            run.stages.append(suite_stage(target, run_dir, suite, suite_target or target.kind, show))
        run.stages[-1].seconds = round(time.monotonic() - t0, 1)
        for name, stage in PLANS[target.kind](target, run_dir, timeout, show):
            doing = f"the {name} stage"
            if reach.down:
                run.stages.append(StageResult(name, ERROR, f"not run: {reach.down}", error=reach.down))
                continue
            t0 = time.monotonic()
            result = asyncio.run(_guard(name, stage()))
            result.seconds = round(time.monotonic() - t0, 1)
            run.stages.append(result)
    except KeyboardInterrupt:
        run.interrupted = f"interrupted (Ctrl-C) during {doing}"
    except ConfigError:
        bad_input = True  # nothing was asked: nothing to report
        raise
    finally:
        if not bad_input:
            write_check_report(run)
            scrub_tree(run_dir)  # what the suite's own processes wrote (its JUnit, its log)
    return run
