"""The main job's stages, per target kind: ``suite`` (the conformance scenarios in a pytest subprocess, with the
markers the target needs), ``shapes`` (output shapes through the real client), ``latency`` (cold, hot and warm on
RunPod-like targets; request timing on OpenAI-compatible servers), ``semantics`` (OpenAI-compatible servers). Each
returns a :class:`~harness.check.results.StageResult`; :mod:`harness.check.run` runs them in turn."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from harness.check.results import StageResult, SuiteRow
from harness.clients.openai import OpenAIClient
from harness.clients.runpod import DEFAULT_BASE_URL, RunPodClient
from harness.conformance.isolation import OPT_IN_ENV
from harness.conformance.probe import ERA_CASES, ProbeRow, openai_shape_cases, probe_cases
from harness.conformance.sandbox import sandbox_in_use
from harness.conformance.semantics import Prober, overall, run_semantics
from harness.conformance.suite import SUITE_MODULES
from harness.core.verdict import Verdict
from harness.load.phases import LATENCY_POLL
from harness.load.probes import LatencyRow, latency_probe, openai_timing_probe
from harness.targets import LIVE, Target

__all__ = ["PLANS", "Progress", "Stage", "runpod_client", "semantics_stage", "suite_stage"]

PASS, FAIL, NOT_CHECKED, NA, ERROR = Verdict.PASS, Verdict.FAIL, Verdict.NOT_CHECKED, Verdict.NA, Verdict.ERROR
SUITE_LIMIT_S = 3600.0
Progress = Callable[[str], None]


def suite_stage(
    target: Target,
    run_dir: Path,
    suite: Path | None,
    suite_target: str,
    show: Progress,
    *,
    unsafe_run_model_code: bool = False,
) -> StageResult:
    """The scenarios in a pytest subprocess; the verdict from its JUnit file, so 'nothing ran' cannot pass.
    ``unsafe_run_model_code`` lets the suite run model-written code without a sandbox (told in its environment)."""
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
    sandbox = sandbox_in_use(unsafe_run_model_code)
    show(f"suite: model-written code runs in {sandbox}")
    env = target.to_env() | ({OPT_IN_ENV: "1"} if unsafe_run_model_code else {})
    rc = _run_suite(cmd, suite.parent, env, run_dir / "suite.log")
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
        rows.append(SuiteRow(f"{case.get('classname')}::{case.get('name')}", outcome, message))
    counts = Counter(r.outcome for r in rows)
    summary = ", ".join(f"{n} {k}" for k, n in counts.most_common()) or "no tests ran"
    if not rows or counts["skipped"] == len(rows):
        reasons = Counter(r.message for r in rows).most_common(2)
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
    return StageResult("shapes", FAIL if bad or not rows else PASS, summary, rows)


def _latency_rows(rows: list[LatencyRow], failure: str | None) -> StageResult:
    labels = Counter(r.phase for r in rows)
    bad = [r for r in rows if r.confirmed is False]
    summary = ", ".join(f"{n} {p}" for p, n in labels.items()) or "no request finished"
    summary += f"; {len(bad)} mislabelled" if bad else ""
    if failure:
        return StageResult("latency", FAIL, f"{summary}; stopped: {failure}", rows)
    return StageResult("latency", FAIL if bad else PASS, summary, rows)


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


def runpod_client(target: Target) -> RunPodClient:
    if target.kind == "runpod-local":
        return RunPodClient.local(target.base_url or "", poll=LATENCY_POLL)
    return RunPodClient(
        target.endpoint_id or "", target.api_key(), base_url=target.base_url or DEFAULT_BASE_URL, poll=LATENCY_POLL
    )


def _runpod_plan(target: Target, run_dir: Path, timeout: float, show: Progress) -> list[tuple[str, Stage]]:
    cases = [("native chat", ERA_CASES[0][2], None), ("openai route chat", ERA_CASES[5][2], None)]

    async def shapes() -> StageResult:
        async with runpod_client(target) as rp:
            show("shapes: a native chat and one through the OpenAI route")
            return _probe_rows(*await probe_cases(rp, cases, timeout=timeout))

    async def latency() -> StageResult:
        if target.kind == "runpod-local":
            why = "runpod-python's local test server runs jobs in its own process: no workers scale, no cold start"
            return StageResult("latency", NA, why)
        async with runpod_client(target) as rp:
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
    return StageResult("semantics", stage, summary, verdicts)


PLANS = {"emulator": _emulator_plan, "runpod": _runpod_plan, "runpod-local": _runpod_plan, "openai": _openai_plan}
