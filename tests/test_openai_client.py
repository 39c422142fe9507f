"""OpenAIClient: timing record, stream errors, stream_options fallback, secrets; with respx streams that
sleep per chunk, the loopback mock, transcripts, and RunPod's /openai/v1 route on the emulator."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterable
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx

from harness.clients.openai import OpenAIClient
from harness.clients.runpod import RunPodClient
from harness.clients.transcript import RecordingTransport, ReplayTransport, Transcript
from harness.core.errors import (
    ConfigError,
    JobFailed,
    RateLimited,
    StatusError,
    StreamErrorEvent,
    StreamProtocolError,
    StreamStalled,
    StreamTruncated,
)
from harness.core.polling import RetryPolicy
from harness.emulator import Emulator
from harness.emulator.mockopenai import MockConfig, create_mock_openai
from harness.emulator.serving import BackgroundServer

BASE = "http://127.0.0.1:9/v1"
KEY = "sk-TESTSECRET-0123456789"
ASK = [{"role": "user", "content": "hi"}]


class Paced(httpx.AsyncByteStream):
    """Yields (delay, bytes) pairs, sleeping before each: a stream with real timing (single use)."""

    def __init__(self, parts: Iterable[tuple[float, str]]) -> None:
        self.parts = list(parts)

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for delay, data in self.parts:
            if delay:
                await asyncio.sleep(delay)
            yield data.encode()


def ev(
    content: str | None = None,
    *,
    finish: str | None = None,
    reasoning: str | None = None,
    usage: dict[str, int] | None = None,
    cid: str = "c1",
) -> str:
    delta: dict[str, Any] = {}
    if content is not None:
        delta["content"] = content
    if reasoning is not None:
        delta["reasoning_content"] = reasoning
    chunk: dict[str, Any] = {
        "id": cid,
        "object": "chat.completion.chunk",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}] if usage is None else [],
    }
    if usage is not None:
        chunk["usage"] = usage
    return f"data: {json.dumps(chunk)}\n\n"


def sse_route(router: respx.MockRouter, parts: list[tuple[float, str]], status: int = 200) -> respx.Route:
    return router.post("/chat/completions").mock(
        side_effect=lambda request: httpx.Response(
            status, stream=Paced(parts), headers={"content-type": "text/event-stream"}
        )
    )


async def test_timing_record_from_a_paced_stream() -> None:
    parts = [
        (0.0, ": keep-alive\n\n"),
        (0.15, ev(reasoning="thinking")),
        (0.05, ev("Hel")),
        (0.02, ev("lo")),
        (0.02, ev("!", finish="stop")),
        (0.0, ev(usage={"prompt_tokens": 5, "completion_tokens": 3})),
        (0.0, "data: [DONE]\n\n"),
    ]
    async with respx.mock(base_url=BASE) as router:
        route = sse_route(router, parts)
        async with OpenAIClient(BASE) as oa:
            c = await oa.chat(ASK, model="m")
    sent = json.loads(route.calls[0].request.content)
    assert sent["stream"] is True and sent["stream_options"] == {"include_usage": True}
    t = c.timing
    assert (c.text, c.reasoning, c.finish_reason) == ("Hello!", ("thinking",), "stop")
    assert t.tt_ack is not None and t.tt_ack < 0.1  # the keep-alive was the first line
    assert t.first_reasoning is not None and t.ttft is not None and t.first_reasoning < t.ttft  # reasoning apart
    assert t.ttft >= 0.2
    assert len(t.gaps) == 2 and len(t.keepalives) == 1 and t.content_chunks == 3
    assert (t.input_tokens, t.output_tokens) == (5, 3)
    assert t.tpot is not None and t.itl_guidellm is not None
    assert c.ids == ("c1",)


async def test_stream_options_can_be_left_out_for_strict_servers() -> None:
    async with respx.mock(base_url=BASE) as router:
        route = sse_route(router, [(0, ev("x", finish="stop")), (0, "data: [DONE]\n\n")])
        async with OpenAIClient(BASE, stream_options=False) as oa:
            c = await oa.chat(ASK, model="m")
    assert "stream_options" not in json.loads(route.calls[0].request.content)
    assert c.usage is None and c.timing.output_tokens is None  # no tokenizer guesswork


@pytest.mark.parametrize(
    ("parts", "error", "text"),
    [
        pytest.param(
            [(0, ev("a")), (0, 'data: {"type": "error", "message": "boom", "code": "E42"}\n\n')],
            StreamErrorEvent,
            "E42",
            id="typed-error-event",
        ),
        pytest.param(
            [(0, ev("a")), (0, 'event: error\ndata: {"error": {"message": "oom"}}\n\n')],
            StreamErrorEvent,
            "oom",
            id="openai-error-no-code",
        ),
        pytest.param(
            [(0, ev("a")), (0, ev("b"))], StreamTruncated, "without \\[DONE\\] or a finish_reason", id="truncated"
        ),
        pytest.param([(0, "\x00garbage without lines")], StreamProtocolError, "not an SSE stream", id="garbage"),
        pytest.param([(0, "data: {not json\n\n")], Exception, "not JSON", id="bad-json"),
    ],
)
async def test_stream_errors(parts: list[tuple[float, str]], error: type[Exception], text: str) -> None:
    async with respx.mock(base_url=BASE) as router:
        sse_route(router, parts)
        async with OpenAIClient(BASE) as oa:
            with pytest.raises(error, match=text):
                await oa.chat(ASK, model="m")


async def test_no_bytes_for_too_long_is_a_stall() -> None:
    async with respx.mock(base_url=BASE) as router:
        sse_route(router, [(0, ev("a")), (1.0, ev("b", finish="stop"))])
        async with OpenAIClient(BASE, stall_timeout_s=0.2) as oa:
            with pytest.raises(StreamStalled, match=r"no bytes for 0\.2 s") as info:
                await oa.chat(ASK, model="m")
    assert 0.2 <= info.value.waited_s < 0.9


async def test_keepalives_do_not_stretch_the_ttft_budget() -> None:
    keepalives = [(0.05, ": keep-alive\n\n")] * 20
    async with respx.mock(base_url=BASE) as router:
        sse_route(router, [*keepalives, (0, ev("late", finish="stop"))])
        async with OpenAIClient(BASE, stall_timeout_s=0.5, ttft_timeout_s=0.3) as oa:
            with pytest.raises(StreamStalled, match="TTFT budget"):
                await oa.chat(ASK, model="m")


@pytest.mark.parametrize(
    ("response", "error"),
    [
        (httpx.Response(429, headers={"Retry-After": "0"}), RateLimited),
        (httpx.Response(500, json={"error": {"message": "engine dead", "code": 500}}), StatusError),
        (httpx.Response(502, text="bad gateway"), StatusError),
    ],
)
async def test_http_errors_are_mapped(response: httpx.Response, error: type[Exception]) -> None:
    async with respx.mock(base_url=BASE) as router:
        router.post("/chat/completions").mock(return_value=response)
        async with OpenAIClient(BASE, retry=RetryPolicy(max_attempts=2, base_s=0.01)) as oa:
            with pytest.raises(error):
                await oa.chat(ASK, model="m", stream=False)


async def test_key_is_sent_but_never_shown() -> None:
    async with respx.mock(base_url=BASE) as router:
        route = router.post("/chat/completions").mock(return_value=httpx.Response(401, text=f"bad key {KEY}"))
        async with OpenAIClient(BASE, KEY) as oa:
            assert KEY not in repr(oa)
            with pytest.raises(StatusError) as info:
                await oa.chat(ASK, model="m", stream=False)
    assert route.calls[0].request.headers["authorization"] == f"Bearer {KEY}"
    assert KEY not in str(info.value) and "***" in str(info.value)


async def test_mock_lmstudio_rejects_stream_options_and_the_client_recovers(mock_openai: BackgroundServer) -> None:
    async with OpenAIClient(f"{mock_openai.url}/v1") as oa:
        c = await oa.chat(ASK, model="lmstudio")
    assert c.text and [f.code for f in c.findings] == ["stream-options-rejected"]


@pytest.mark.mock_openai(stall_s=0.8)
async def test_transcripts_keep_chunks_and_timing(mock_openai: BackgroundServer, tmp_path: Path) -> None:
    recorder = RecordingTransport(source="mock_openai stall mode", note="made by a test")
    async with OpenAIClient(f"{mock_openai.url}/v1", KEY, transport=recorder, stall_timeout_s=5) as oa:
        live = await oa.chat(ASK, model="stall")
    path = tmp_path / "stall.yaml"
    recorder.transcript.save(path, secrets=(KEY,))
    saved = path.read_text()
    assert KEY not in saved and "REDACTED" in saved and "made_by" in saved
    assert len(Transcript.load(path).interactions[0]["response"]["chunks"]) > 5  # chunk boundaries kept

    async with OpenAIClient(BASE, transport=ReplayTransport(path, speed=0)) as fast:
        replayed = await fast.chat(ASK, model="stall")
    assert replayed.text == live.text and replayed.timing.content_chunks == live.timing.content_chunks
    async with OpenAIClient(BASE, transport=ReplayTransport(path, speed=1), stall_timeout_s=0.4) as paced:
        with pytest.raises(StreamStalled):  # the recorded 0.8 s stall is replayed, so the check still fires
            await paced.chat(ASK, model="stall")
    replay = ReplayTransport(path, speed=0)
    async with OpenAIClient(BASE, transport=replay) as once:
        await once.chat(ASK, model="stall")
        assert replay.all_played
        with pytest.raises(ConfigError, match="no unplayed interaction"):
            await once.chat(ASK, model="stall")


@pytest.mark.parametrize("era", ["E", "F"])
async def test_runpod_openai_passthrough_on_the_emulator(era: str) -> None:
    with Emulator(cold_start=0.2, worker={"openai_era": era, "tokens_per_s": 500}) as emu:
        async with OpenAIClient(f"{emu.endpoint_url}/openai/v1", emu.api_key) as oa:
            assert await oa.models() == ["devai-scripted"]
            streamed = await oa.chat(ASK, model="devai-scripted", max_tokens=12)
            whole = await oa.chat(ASK, model="devai-scripted", max_tokens=12, stream=False)
            with pytest.raises(StreamErrorEvent, match="max_tokens") as info:
                await oa.chat(ASK, model="devai-scripted", max_tokens=0)
            completion = await oa.complete("def f():", model="devai-scripted", max_tokens=5)
    assert streamed.text == whole.text and streamed.finish_reason == "length"
    assert streamed.usage is not None and streamed.usage.output_tokens == 12
    assert streamed.timing.content_chunks >= 12 // 3  # relayed as produced, not in one piece
    assert info.value.code == 400
    assert completion.finish_reason == "length" and completion.usage is not None
    assert completion.usage.output_tokens == 5 and completion.text


async def test_mock_faults_seen_through_the_runpod_lifecycle() -> None:
    """The emulator's openai engine proxies the mock: a coded upstream error fails the RunPod job."""
    with BackgroundServer(create_mock_openai(MockConfig())) as upstream:
        worker = {"engine": "openai", "openai_base_url": f"{upstream.url}/v1", "model": "error-coded"}
        with Emulator(cold_start=0.0, worker=worker) as emu:
            async with RunPodClient.of(emu) as rp:
                with pytest.raises(JobFailed, match="CUDA out of memory"):
                    await rp.run({"messages": ASK, "stream": True}, timeout=10)


async def test_e2e_ends_at_done_not_when_the_server_closes_the_body() -> None:
    parts = [(0, ev("a", finish="stop")), (0, "data: [DONE]\n\n"), (0.3, ": the server lingers\n\n")]
    async with respx.mock(base_url=BASE) as router:
        sse_route(router, parts)
        async with OpenAIClient(BASE) as oa:
            c = await oa.chat(ASK, model="m")
    assert c.timing.e2e is not None and c.timing.e2e < 0.2
