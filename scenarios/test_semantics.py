"""Engine semantics (harness.conformance.semantics) as scenarios: one test per feature, on any model, against a
live OpenAI-compatible server (``-m live --target openai --base-url URL``) or a RunPod endpoint (``-m live --target
runpod``: its /openai/v1 route, and the native input's features through /run). A feature the server rejects
explicitly is skipped as UNSUPPORTED; a failure is the feature's finding. The checks are proven both ways in
tests/test_semantics.py; `check --target openai` runs the same features and prints READY / READY WITH
LIMITATIONS / NOT READY.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from harness.clients.openai import OpenAIClient
from harness.clients.runpod import RunPodClient
from harness.conformance.nativesemantics import NATIVE_FEATURES
from harness.conformance.semantics import FEATURES, Probe, Prober, Unsupported
from harness.pytest_plugin import OpenAITarget

pytestmark = pytest.mark.live


@pytest.fixture
async def prober(openai_target: OpenAITarget) -> AsyncIterator[Prober]:
    model = openai_target.model
    if not model:
        async with OpenAIClient(openai_target.base_url, openai_target.api_key) as client:
            model = next(iter(await client.models()), "")
    async with Prober(openai_target.base_url, openai_target.api_key, model) as p:
        yield p


@pytest.mark.parametrize(("layer", "probe"), [pytest.param(layer, probe, id=name) for name, layer, probe in FEATURES])
async def test_engine_semantics(prober: Prober, layer: str, probe: Probe) -> None:
    try:
        await probe(prober)  # a Finding fails the test with the feature's reason
    except Unsupported as exc:
        pytest.skip(f"UNSUPPORTED ({layer}): {exc}")


@pytest.mark.parametrize("probe", [pytest.param(probe, id=f"native {name}") for name, probe in NATIVE_FEATURES])
async def test_native_input_semantics(runpod_client: RunPodClient, target: str, probe: Any) -> None:
    if target not in ("runpod", "runpod-local"):
        pytest.skip("the native input is a RunPod worker's: --target runpod or runpod-local")

    async def run(job_input: dict[str, Any]) -> Any:
        return (await runpod_client.run(job_input, timeout=300)).output

    try:
        await probe(run)
    except Unsupported as exc:
        pytest.skip(f"UNSUPPORTED (compat): {exc}")
