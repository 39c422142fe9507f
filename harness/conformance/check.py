"""The main job, ``devai-harness check``: the same stages on every target, typed results, a report that is always
written.

Stages: ``suite`` (the conformance scenarios in a pytest subprocess, with the markers the target needs),
``shapes`` (output shapes through the real client), ``latency`` (cold, hot and warm on RunPod-like targets;
request timing on OpenAI-compatible servers). A stage that fails records its error and the run goes on; a stage
that ran nothing is NOT CHECKED (and the run fails, saying why); a stage that cannot apply to a target is N/A,
with the reason. The report (JSON, HTML, JUnit, and the requests' CSV) holds every stage.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import json
import os
import subprocess
import sys
import time
import traceback
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
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
    probe_case,
)
from harness.conformance.results import JUnitCase, write_junit
from harness.conformance.sandbox import sandbox_in_use
from harness.conformance.semantics import Prober, overall, run_semantics
from harness.core.errors import ConfigError, HarnessError
from harness.core.wire import check_id, check_url
from harness.load.phases import LATENCY_POLL
from harness.load.report import checks_html, load_sections, plots, render_page, report_data, scan, table

__all__ = ["TARGET_KINDS", "CheckRun", "StageResult", "Target", "find_suite", "resolve_target", "run_check"]

TARGET_KINDS = ("emulator", "runpod", "runpod-local", "openai")
PASS, FAIL, NOT_CHECKED, NA, ERROR = "PASS", "FAIL", "NOT CHECKED", "N/A", "ERROR"
SUITE_MODULES = {
    "emulator": ("test_devai_tasks.py", "test_protocol.py", "test_faults.py"),
    "replay": ("test_devai_tasks.py", "test_protocol.py", "test_faults.py"),
    "runpod": ("test_devai_tasks.py", "test_protocol.py", "test_faults.py"),
    "runpod-local": ("test_devai_tasks.py", "test_protocol.py"),
    "openai": ("test_devai_tasks.py", "test_streaming.py", "test_semantics.py"),
}
LIVE = frozenset({"runpod", "runpod-local", "openai"})
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

    @property
    def ok(self) -> bool:
        return bool(self.stages) and all(s.ok for s in self.stages)

    @property
    def verdict(self) -> str:
        verdicts = Counter(s.verdict for s in self.stages)
        if self.ok:
            return PASS
        return NOT_CHECKED if set(verdicts) <= {PASS, NA, NOT_CHECKED} else FAIL

    def to_json(self) -> dict[str, Any]:
        target = asdict(self.target)
        return {
            "target": target,
            "run_dir": str(self.run_dir),
            "started_at": self.started_at,
            "verdict": self.verdict,
            "stages": [asdict(s) for s in self.stages],
        }


# --- stages -----------------------------------------------------------------------------------


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
    proc = subprocess.run(
        cmd, cwd=suite.parent, env=_suite_env(target), capture_output=True, text=True, check=False, timeout=3600
    )
    (run_dir / "suite.log").write_text(proc.stdout + proc.stderr, encoding="utf-8")
    result = _suite_verdict(junit, proc.returncode, proc.stdout + proc.stderr)
    return dataclasses.replace(result, summary=f"{result.summary}; model-written code ran in: {sandbox}")


def _suite_verdict(junit: Path, rc: int, output: str) -> StageResult:
    if not junit.is_file():
        tail = [line for line in output.splitlines() if line.strip()][-3:]
        return StageResult("suite", ERROR, f"pytest wrote no results (exit {rc})", error="\n".join(tail))
    root = ET.parse(junit).getroot()
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
    bad = counts["failure"] + counts["error"]
    return StageResult("suite", FAIL if bad else PASS, summary, rows)


def _probe_rows(rows: list[ProbeRow]) -> StageResult:
    bad = [r for r in rows if not r.ok]
    summary = f"{len(rows) - len(bad)}/{len(rows)} cases read and checked"
    return StageResult("shapes", FAIL if bad or not rows else PASS, summary, [asdict(r) for r in rows])


def _latency_rows(rows: list[LatencyRow]) -> StageResult:
    labels = Counter(r.phase for r in rows)
    bad = [r for r in rows if r.confirmed is False]
    summary = ", ".join(f"{n} {p}" for p, n in labels.items()) + (f"; {len(bad)} mislabelled" if bad else "")
    return StageResult("latency", FAIL if bad else PASS, summary, [asdict(r) for r in rows])


async def _emulator_stages(target: Target, run_dir: Path, timeout: float, show: Progress) -> list[StageResult]:
    from harness.emulator import Emulator, load_config
    from harness.emulator.config import describe

    base = load_config(target.config)
    rows = []
    t0 = time.monotonic()
    for i, (label, options, job_input, expected) in enumerate(ERA_CASES, 1):
        show(f"shapes {i}/{len(ERA_CASES)}: {label}")
        with Emulator(base, cold_start=0.0, worker={**base.worker, **options}) as emu:
            async with RunPodClient.of(emu) as rp:
                rows.append(await probe_case(rp, label, job_input, expected, timeout=timeout))
    shapes = _probe_rows(rows)
    shapes.seconds, t0 = round(time.monotonic() - t0, 1), time.monotonic()
    show(f"latency: {describe(base)}")
    with Emulator(base) as emu:
        async with RunPodClient.of(emu, poll=LATENCY_POLL) as rp:
            latency = await latency_probe(
                rp, idle_timeout_s=base.idle_timeout_s, timeout=timeout, run_dir=run_dir, progress=show
            )
    stage = _latency_rows(latency)
    stage.summary += f" ({describe(base)})"
    stage.seconds = round(time.monotonic() - t0, 1)
    return [shapes, stage]


def _runpod_client(target: Target) -> RunPodClient:
    if target.kind == "runpod-local":
        return RunPodClient.local(target.base_url or "", poll=LATENCY_POLL)
    return RunPodClient(
        target.endpoint_id or "", target.api_key(), base_url=target.base_url or DEFAULT_BASE_URL, poll=LATENCY_POLL
    )


async def _runpod_stages(target: Target, run_dir: Path, timeout: float, show: Progress) -> list[StageResult]:
    cases = (("native chat", ERA_CASES[0][2]), ("openai route chat", ERA_CASES[5][2]))
    async with _runpod_client(target) as rp:
        rows = []
        for label, job_input in cases:
            show(f"shapes: {label}")
            rows.append(await probe_case(rp, label, job_input, None, timeout=timeout))
        if target.kind == "runpod-local":
            why = "runpod-python's local test server runs jobs in its own process: no workers scale, no cold start"
            return [_probe_rows(rows), StageResult("latency", NA, why)]
        latency = await latency_probe(
            rp, idle_timeout_s=target.idle_timeout_s, timeout=timeout, run_dir=run_dir, progress=show
        )
    return [_probe_rows(rows), _latency_rows(latency)]


async def _openai_stages(target: Target, run_dir: Path, timeout: float, show: Progress) -> list[StageResult]:
    async with OpenAIClient(target.base_url or "", target.api_key(), request_timeout=timeout) as oa:
        model = target.model or next(iter(await oa.models()), None)
        if model is None:
            raise ConfigError(f"{target.base_url}/models lists no model: give --model")
        show(f"shapes: /models and a chat, streamed and whole (model {model})")
        shapes = _probe_rows(await openai_shape_cases(oa, model))
        records = await openai_timing_probe(oa, model, run_dir=run_dir, progress=show)
        show("semantics: determinism, stream = whole, max_tokens, stop, n, seed, usage, errors")
        semantics = await semantics_stage(target, model, timeout)
    errors = Counter(r.error for r in records if r.status != "ok")
    summary = f"{len(records)} sequential requests (streamed and whole), errors {dict(errors) or 0}"
    timing = StageResult("latency", FAIL if errors else PASS, summary)
    timing.summary += "; cold/warm/hot: N/A (an OpenAI server loads its model before it answers /health)"
    return [shapes, semantics, timing]


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


async def _guard(name: str, work: Awaitable[list[StageResult]]) -> list[StageResult]:
    try:
        return await work
    except HarnessError as exc:
        return [StageResult(name, ERROR, f"{type(exc).__name__}: {exc}", error=str(exc))]
    except Exception as exc:  # a bug must not cost the report: it is written, with the error in it
        return [StageResult(name, ERROR, f"{type(exc).__name__}: {exc}", error=traceback.format_exc(limit=8))]


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
    run_dir = run_dir.resolve()  # the suite runs in another working directory
    run = CheckRun(target, run_dir, datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"))
    try:
        t0 = time.monotonic()
        if run_suite:
            run.stages.append(suite_stage(target, run_dir, suite, suite_target or target.kind, show))
        else:
            run.stages.append(StageResult("suite", NA, "not run (--no-suite)"))
        run.stages[-1].seconds = round(time.monotonic() - t0, 1)
        stages = {"emulator": _emulator_stages, "runpod": _runpod_stages, "runpod-local": _runpod_stages}
        t0 = time.monotonic()
        runner = stages.get(target.kind, _openai_stages)
        results = asyncio.run(_guard("shapes and latency", runner(target, run_dir, timeout, show)))
        for r in results:
            r.seconds = r.seconds or round(time.monotonic() - t0, 1)  # stages that did not time themselves
        run.stages.extend(results)
    finally:
        run.report = write_check_report(run)
    return run


# --- the report -------------------------------------------------------------------------------

_CLASS = {PASS: "ok", NA: "na"}


def write_check_report(run: CheckRun) -> dict[str, Path]:
    """report.json / report.html / junit.xml with every stage, whatever happened; plus the requests' CSV, plots,
    timing and cost when requests were recorded."""
    out = run.run_dir
    paths = {"json": out / "report.json", "html": out / "report.html", "junit": out / "junit.xml"}
    data = run.to_json()
    sections: list[tuple[str, str]] = []
    stage_rows = [[s.name, s.verdict, s.summary, f"{s.seconds:g}"] for s in run.stages]
    sections.append(("Stages", table(["stage", "verdict", "summary", "s"], stage_rows)))
    for s in run.stages:
        if s.name == "suite" and s.rows:
            failed = [r for r in s.rows if r["outcome"] != "passed"]
            body = table(["test", "outcome", "message"], [[r["test"], r["outcome"], r["message"]] for r in failed])
            sections.append((f"Suite: {s.summary}", body if failed else "<p>every test passed</p>"))
        elif s.name == "shapes" and s.rows:
            head = ["case", "ok", "shape", "delay ms", "exec ms", "detail"]
            rows = [[r["label"], r["ok"], r["shape"], r["delay_ms"], r["execution_ms"], r["detail"]] for r in s.rows]
            sections.append(("Output shapes", table(head, rows)))
        elif s.name == "semantics" and s.rows:
            rows = [[r["feature"], r["layer"], r["status"].upper(), r["detail"]] for r in s.rows]
            sections.append((f"Engine semantics: {s.summary}", table(["feature", "layer", "verdict", "detail"], rows)))
        if s.error:
            sections.append((f"Error in {s.name}", f"<pre>{_escape(s.error)}</pre>"))
    if any(out.glob("records-*.jsonl")):
        paths["csv"] = out / "records.csv"
        recorded = scan(out, paths["csv"])
        load = report_data(recorded, [out], 2.49, run.target.idle_timeout_s, None, 10.0)
        data["requests"] = load
        sections.append(("Request checks", checks_html(load["checks"])))
        sections.extend(s for s in load_sections(load, plots(recorded, [])) if s[0] != "Checks")
    title = f"devai-harness check: {run.target.describe()}, {run.started_at}: {run.verdict}"
    data["title"] = title
    paths["json"].write_text(json.dumps(data, indent=2, default=str), encoding="utf-8")
    intro = f"Verdict <b class='{_CLASS.get(run.verdict, 'bad')}'>{run.verdict}</b>; results in {_escape(str(out))}."
    paths["html"].write_text(render_page(title, intro, sections), encoding="utf-8")
    write_junit(paths["junit"], "devai-harness check", _junit_cases(run, data))
    return paths


def _escape(text: str) -> str:
    import html

    return html.escape(text)


def _junit_cases(run: CheckRun, data: dict[str, Any]) -> list[JUnitCase]:
    cases = []
    for s in run.stages:
        fail = s.summary if s.verdict == FAIL else None
        skip = f"{s.verdict}: {s.summary}" if s.verdict in (NOT_CHECKED, NA) else None
        cases.append(JUnitCase("check.stage", s.name, failure=fail, skipped=skip, error=s.error, time_s=s.seconds))
        for r in s.rows:
            if s.name == "suite":
                outcome = r["outcome"]
                cases.append(
                    JUnitCase(
                        "check.suite",
                        r["test"],
                        failure=r["message"] if outcome in ("failure", "error") else None,
                        skipped=r["message"] if outcome == "skipped" else None,
                    )
                )
            elif s.name == "shapes":
                cases.append(JUnitCase("check.shapes", r["label"], failure=None if r["ok"] else r["detail"]))
            elif s.name == "semantics":
                fail, skip = (r["detail"] if r["status"] == "fail" else None), None
                if r["status"] in ("unsupported", "not-checked"):
                    skip = f"{r['status'].upper()}: {r['detail']}"
                cases.append(JUnitCase(f"check.semantics.{r['layer']}", r["feature"], failure=fail, skipped=skip))
    for c in (data.get("requests") or {}).get("checks", []):
        cases.append(JUnitCase("check.requests", c["name"], failure=None if c["ok"] else c["detail"]))
    return cases
