"""``devai-harness check``, the main job: the same stages on every target, typed results, a report that is always
written.

First a pre-flight (:mod:`harness.conformance.reach`): a bad argument stops the run before anything is asked
(ConfigError, exit 2); a target that is down makes every stage ERROR at once. Then the stages
(:mod:`harness.check.stages`). Each stage is kept as it finishes: one that fails records its error and the run goes
on; one that ran nothing is NOT CHECKED (and the run fails, saying why); one that cannot apply to a target is N/A,
with the reason.

How long it takes is bounded by ``timeout`` (``--timeout``): every request ends within it (connect, first byte, the
whole body and its retries; keep-alives never extend it), and a stage stops asking at its first request that did
not answer in time — so a silent or dripping endpoint costs the pre-flight (at most 10 s) plus about one
``timeout`` per stage, and the suite's own tests are bounded the same way. Ctrl-C keeps the finished stages, writes
the report, stops the suite's processes and says what it was doing.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import time
import traceback
from collections.abc import Awaitable
from pathlib import Path

from harness.check.report import write_check_report
from harness.check.results import CheckRun, StageResult
from harness.check.stages import PLANS, Progress, runpod_client, suite_stage
from harness.clients.openai import OpenAIClient
from harness.conformance.reach import Reach, reach_openai, reach_runpod, reach_sdk_local
from harness.core.errors import ConfigError, HarnessError
from harness.core.verdict import Verdict
from harness.reporting.files import scrub_tree
from harness.targets import Target

__all__ = ["run_check"]

NA, ERROR = Verdict.NA, Verdict.ERROR


async def _reach(target: Target, timeout: float) -> Reach:
    if target.kind == "openai":
        async with OpenAIClient(target.base_url or "", target.api_key(), request_timeout=timeout) as oa:
            return await reach_openai(oa, target.model, timeout)
    if target.kind == "runpod":
        async with runpod_client(target) as rp:
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


def run_check(
    target: Target,
    run_dir: Path,
    *,
    suite: Path | None,
    run_suite: bool = True,
    suite_target: str | None = None,
    timeout: float = 120.0,
    show: Progress = lambda _: None,
    unsafe_run_model_code: bool = False,
) -> CheckRun:
    """Every stage, kept as it finishes; the report written whatever happens. ConfigError (a bad argument the
    pre-flight found) before anything is asked; Ctrl-C ends the run with ``interrupted`` set."""
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
            kind = suite_target or target.kind
            unsafe = unsafe_run_model_code
            run.stages.append(suite_stage(target, run_dir, suite, kind, show, unsafe_run_model_code=unsafe))
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
