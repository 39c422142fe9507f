"""Streaming conformance (field report 003's list), as checks with thresholds from options.

Offline, every check is proven both ways against the loopback mock: a well-behaved mode passes and the
misbehaving mode is caught. Live (``-m live --openai-base-url URL [--model M]``), the same checks run
against a real OpenAI-compatible server.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from harness.clients.openai import Completion, OpenAIClient
from harness.conformance.streamchecks import (
    check_error_event_has_code,
    check_first_chunk_within,
    check_keepalive_interval,
    check_loading_signalled,
    check_model_listed,
    check_server_enforces_timeout,
    check_streams_not_mixed,
    check_warmup,
)
from harness.core.errors import HarnessError, StatusError, StreamErrorEvent, StreamStalled
from harness.core.findings import Finding, Severity
from harness.emulator.serving import BackgroundServer
from harness.pytest_plugin import OpenAITarget

ASK = [{"role": "user", "content": "Write a Python function that reverses a string."}]
MOCK = pytest.mark.mock_openai(slow_ttft_s=1.0, loading_s=1.0, keepalive_s=0.2, server_timeout_s=0.6, stall_s=1.0)


@pytest.fixture
async def oa(mock_openai: BackgroundServer) -> AsyncIterator[OpenAIClient]:
    async with OpenAIClient(f"{mock_openai.url}/v1", stall_timeout_s=0.8) as client:
        yield client


async def outcome(oa: OpenAIClient, model: str) -> Completion | HarnessError:
    try:
        return await oa.chat(ASK, model=model, max_tokens=64)
    except HarnessError as exc:
        return exc


@MOCK
@pytest.mark.parametrize(("model", "caught"), [("normal", False), ("slow-first-token", True)])
async def test_first_chunk_within_budget(mock_openai: BackgroundServer, model: str, caught: bool) -> None:
    async with OpenAIClient(f"{mock_openai.url}/v1", stall_timeout_s=5) as patient:
        c = await patient.chat(ASK, model=model)
    if caught:
        with pytest.raises(Finding, match="first content chunk too late"):
            check_first_chunk_within(c, budget_s=0.5)
    else:
        check_first_chunk_within(c, budget_s=0.5)


@MOCK
@pytest.mark.parametrize(("model", "caught"), [("loading", False), ("loading-silent", True)])
async def test_keepalives_during_long_waits(mock_openai: BackgroundServer, model: str, caught: bool) -> None:
    async with OpenAIClient(f"{mock_openai.url}/v1", stall_timeout_s=5) as patient:
        c = await patient.chat(ASK, model=model)
    assert c.text  # the answer arrives either way; the check is about the wait
    if caught:
        with pytest.raises(Finding, match="silent for too long"):
            check_keepalive_interval(c, max_gap_s=0.5)
    else:
        assert len(c.timing.keepalives) >= 4
        check_keepalive_interval(c, max_gap_s=0.5)


@MOCK
@pytest.mark.parametrize(("model", "caught"), [("loading", False), ("loading-503", False), ("loading-silent", True)])
async def test_model_loading_is_signalled(oa: OpenAIClient, model: str, caught: bool) -> None:
    result = await outcome(oa, model)
    if model == "loading-503":
        assert isinstance(result, StatusError) and result.retry_after == 2
    if caught:
        assert isinstance(result, StreamStalled)  # what seed 003's users saw: a hang
        with pytest.raises(Finding, match="silent"):
            check_loading_signalled(result, within_s=0.5)
    else:
        check_loading_signalled(result, within_s=0.5)


@MOCK
@pytest.mark.parametrize(
    ("model", "caught"), [("error-coded", False), ("server-timeout", False), ("error-event", True)]
)
async def test_error_events_carry_a_code(oa: OpenAIClient, model: str, caught: bool) -> None:
    result = await outcome(oa, model)
    assert isinstance(result, StreamErrorEvent)
    if caught:
        with pytest.raises(Finding, match="without a code"):
            check_error_event_has_code(result)
    else:
        check_error_event_has_code(result)


@MOCK
@pytest.mark.parametrize(("model", "caught"), [("server-timeout", False), ("loading-silent", True)])
async def test_server_enforces_its_own_timeout(oa: OpenAIClient, model: str, caught: bool) -> None:
    result = await outcome(oa, model)
    if caught:
        with pytest.raises(Finding, match="client had to give up"):
            check_server_enforces_timeout(result)
    else:
        assert isinstance(result, StreamErrorEvent) and result.code == "MODEL_LOAD_TIMEOUT"
        check_server_enforces_timeout(result)


async def test_models_lists_the_served_model_and_warmup_exists(oa: OpenAIClient, mock_openai: BackgroundServer) -> None:
    models = await oa.models()
    check_model_listed(models, "normal")
    with pytest.raises(Finding, match="does not list"):
        check_model_listed(models, "Qwen/Qwen2.5-Coder-7B")
    assert check_warmup(await oa.warmup()) is None
    none = {"warmup": 404, "../warmup": 404}
    for ready, advice in [(True, "none is needed"), (False, "may pay for loading"), (None, "unknown")]:
        note = check_warmup(none, ready=ready)  # information, not a failure
        assert note is not None and note.severity is Severity.INFO and advice in str(note)
    with pytest.raises(Finding, match="warm-up endpoint fails"):
        check_warmup({"warmup": 503})


async def test_concurrent_streams_are_not_mixed(oa: OpenAIClient) -> None:
    markers = [f"answer-{i}-{'x' * i}" for i in range(8)]
    done = await asyncio.gather(*(oa.chat([{"role": "user", "content": f"echo:{m}"}], model="normal") for m in markers))
    results = list(zip(markers, done, strict=True))
    check_streams_not_mixed(results)
    swapped = [(markers[1], done[0]), (markers[0], done[1])]
    with pytest.raises(Finding, match=r"lost its own answer|another stream"):
        check_streams_not_mixed(swapped)


# --- live -------------------------------------------------------------------------------


@pytest.fixture
async def live(openai_target: OpenAITarget, request: pytest.FixtureRequest) -> AsyncIterator[tuple[OpenAIClient, str]]:
    stall = request.config.getoption("--stall-timeout")
    async with OpenAIClient(openai_target.base_url, openai_target.api_key, stall_timeout_s=stall) as client:
        model = openai_target.model or (await client.models())[0]
        yield client, model


@pytest.mark.live
async def test_live_models_lists_the_model(live: tuple[OpenAIClient, str]) -> None:
    client, model = live
    check_model_listed(await client.models(), model)


@pytest.mark.live
async def test_live_stream_timing(live: tuple[OpenAIClient, str], request: pytest.FixtureRequest) -> None:
    client, model = live
    for _ in range(3):  # a sampled answer can be end-of-text at once (a random model's often is): no content, no TTFT
        c = await client.chat(ASK, model=model, max_tokens=64)
        if c.timing.ttft is not None or c.finish_reason is None:
            break
    else:
        pytest.skip(f"3 answers ended before any content (finish {c.finish_reason!r}): TTFT cannot be measured")
    check_first_chunk_within(c, request.config.getoption("--ttft-budget"))
    check_keepalive_interval(c, request.config.getoption("--keepalive-max-gap"))
    check_loading_signalled(c, request.config.getoption("--keepalive-max-gap"))


@pytest.mark.live
async def test_live_warmup(live: tuple[OpenAIClient, str], request: pytest.FixtureRequest) -> None:
    client, _ = live
    note = check_warmup(await client.warmup(), ready=await client.ready())
    if note is not None:  # "not offered" is information, not a failure: kept with the test's output
        request.node.user_properties.append(("finding", str(note)))
        print(note)


@pytest.mark.live
async def test_live_concurrent_streams(live: tuple[OpenAIClient, str]) -> None:
    client, model = live
    done = await asyncio.gather(*(client.chat(ASK, model=model, max_tokens=32) for _ in range(4)))
    check_streams_not_mixed([("", c) for c in done])
