"""Every devai task x case, through a real or recorded endpoint, in both input forms; each answer checked.

Targets: replay (default, cassettes recorded from the emulator serving the cases' good answers),
emulator, runpod (live), openai (an OpenAI-compatible server: --openai-base-url, --model).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.clients.openai import OpenAIClient
from harness.clients.runpod import RunPodClient
from harness.conformance.results import ResultRow, Results
from harness.conformance.tasks import (
    Answer,
    TaskCase,
    grade,
    isolation_of,
    load_cases,
    native_input,
    openai_input,
    scripted_rules,
)
from harness.core.errors import HarnessError
from harness.core.shapes import extract
from harness.pytest_plugin import OpenAITarget

CASES = load_cases(Path(__file__).parent / "tasks")
MODEL = "devai-scripted"

pytestmark = [
    pytest.mark.devai_cassette,
    pytest.mark.emulator(cold_start=0.0, worker={"responses": scripted_rules(CASES), "model": MODEL}),
]


@pytest.fixture
def harness_errors() -> Iterator[list[str]]:
    """What of ours failed while checking: raised at teardown, so pytest (and JUnit) report an ERROR, not a FAIL."""
    errors: list[str] = []
    yield errors
    if errors:
        raise HarnessError("the harness could not check this answer: " + "; ".join(errors))


def run_checks(case: TaskCase, answer: Answer, row: ResultRow, errors: list[str]) -> list[str]:
    runs: list = []
    row.checks.update(grade(answer, case, runs))
    row.isolation = isolation_of(runs)
    errors += [f"{name}: {v[7:]}" for name, v in row.checks.items() if v.startswith("error: ")]
    return [f"{name}: {v[6:]}" for name, v in row.checks.items() if v.startswith("fail: ")]


@pytest.mark.parametrize("form", ["native", "openai-route"])
@pytest.mark.parametrize("case", CASES, ids=[c.test_id for c in CASES])
async def test_task_via_runpod(
    case: TaskCase, form: str, runpod_client: RunPodClient, harness_results: Results, harness_errors: list[str]
) -> None:
    payload = native_input(case) if form == "native" else openai_input(case, MODEL)
    row = ResultRow(test=f"{case.test_id}[{form}]", task=case.task, case=case.id, form=form)
    harness_results.rows.append(row)
    t0 = time.perf_counter()
    try:
        job = await runpod_client.run(payload, timeout=600)
        got = extract(job.output)
    except HarnessError as exc:
        row.checks["answer"] = f"fail: {type(exc).__name__}: {exc}"
        raise
    row.latency_ms = (job.delay_time_ms or 0) + (job.execution_time_ms or 0) or (time.perf_counter() - t0) * 1000
    row.output_tokens = got.usage.output_tokens if got.usage else None
    row.shape = got.shape
    row.checks["answer"] = "pass"
    failures = run_checks(case, Answer(got.text, got.finish_reason or "stop", got.usage), row, harness_errors)
    assert not failures, "\n".join(failures)


@pytest.mark.live
@pytest.mark.parametrize("case", CASES, ids=[c.test_id for c in CASES])
async def test_task_via_openai(
    case: TaskCase, openai_target: OpenAITarget, harness_results: Results, harness_errors: list[str]
) -> None:
    row = ResultRow(test=f"{case.test_id}[openai]", task=case.task, case=case.id, form="openai")
    harness_results.rows.append(row)
    async with OpenAIClient(openai_target.base_url, openai_target.api_key) as oa:
        model = openai_target.model or (await oa.models())[0]
        from harness.conformance.tasks import DEFAULT_MAX_TOKENS, messages_for

        c = await oa.chat(messages_for(case), model=model, max_tokens=DEFAULT_MAX_TOKENS, extra={"temperature": 0})
    row.latency_ms = (c.timing.e2e or 0) * 1000
    row.output_tokens = c.timing.output_tokens
    row.shape = "openai-chat-chunks"
    row.checks["answer"] = "pass"
    failures = run_checks(case, Answer(c.text, c.finish_reason, c.usage), row, harness_errors)
    assert not failures, "\n".join(failures)
