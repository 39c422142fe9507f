"""The reference worker's engines: scripted fixtures, and the openai engine proxying a loopback server."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from harness import JobFailed, extract
from harness.clients.runpod import RunPodClient
from harness.core.errors import ConfigError
from harness.emulator import Emulator
from harness.emulator.engines import GenRequest, ScriptedEngine, pieces
from harness.emulator.serving import BackgroundServer

FIXTURES = Path(__file__).parent.parent / "scenarios" / "data" / "scripted_responses.yaml"


@pytest.mark.parametrize("text", ["", "a", "  lead", "a  b\n\tc ", "città è\n"])
def test_pieces_rebuild_the_text_exactly(text: str) -> None:
    assert "".join(pieces(text)) == text


async def test_scripted_fixtures_and_max_tokens() -> None:
    engine = ScriptedEngine(fixtures=FIXTURES)
    assert "return s[::-1]" in engine.answer("user: Write a Python function that reverses a string.")
    deltas = [d async for d in engine.generate(GenRequest(prompt="reverse a string", max_tokens=3))]
    assert len(deltas) == 3 and deltas[-1].finish_reason == "length"
    full = [d async for d in engine.generate(GenRequest(prompt="reverse a string", max_tokens=10_000))]
    assert full[-1].finish_reason == "stop"
    assert "".join(d.text for d in full) == engine.answer("reverse a string")


def test_bad_fixture_files_are_config_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("responses:\n  - {match: '(', response: x}\n")
    with pytest.raises(ConfigError, match="not a regex"):
        ScriptedEngine(fixtures=bad)
    with pytest.raises(ConfigError, match="cannot read"):
        ScriptedEngine(fixtures=tmp_path / "missing.yaml")


@pytest.mark.emulator(cold_start=0.0, worker={"fixtures": str(FIXTURES)})
async def test_emulator_answers_from_fixtures(emulator: Emulator) -> None:
    async with RunPodClient.of(emulator) as rp:
        job = await rp.run(
            {"messages": [{"role": "user", "content": "Scrivi una funzione che inverte una stringa"}], "stream": True},
            timeout=10,
        )
    got = extract(job.output)
    assert "def reverse_string" in got.text
    assert got.usage is not None and got.usage.output_tokens == len(pieces(got.text))


def fake_openai(words: list[str]) -> Starlette:
    """A loopback OpenAI-compatible server streaming ``words`` (made by us for tests)."""

    async def chat(request: Request) -> Response:
        body = await request.json()
        if body.get("max_tokens", 1) > 4096:
            return JSONResponse({"error": {"message": "max_tokens too large", "code": 400}}, status_code=400)

        async def events() -> AsyncIterator[bytes]:
            yield b": keep-alive\n\n"
            for i, w in enumerate(words):
                finish = "stop" if i == len(words) - 1 else None
                chunk = {
                    "object": "chat.completion.chunk",
                    "model": body["model"],
                    "choices": [{"index": 0, "delta": {"content": w}, "finish_reason": finish}],
                }
                yield f"data: {json.dumps(chunk)}\n\n".encode()
            yield b"data: [DONE]\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")

    return Starlette(routes=[Route("/v1/chat/completions", chat, methods=["POST"])])


async def test_openai_engine_streams_a_real_server_through_the_runpod_lifecycle() -> None:
    with BackgroundServer(fake_openai(["def ", "f():", " pass"])) as upstream:
        worker = {"engine": "openai", "openai_base_url": f"{upstream.url}/v1", "model": "Qwen/Qwen2.5-Coder-7B"}
        with Emulator(cold_start=0.0, worker=worker) as emu:
            async with RunPodClient.of(emu) as rp:
                native = await rp.run({"messages": [{"role": "user", "content": "x"}], "stream": True}, timeout=10)
                routed = await rp.run(
                    {
                        "openai_route": "/v1/chat/completions",
                        "openai_input": {"messages": [{"role": "user", "content": "x"}], "stream": True},
                    },
                    timeout=10,
                )
                with pytest.raises(JobFailed, match="upstream HTTP 400"):
                    await rp.run(
                        {"messages": [{"role": "user", "content": "x"}], "sampling_params": {"max_tokens": 5000}},
                        timeout=10,
                    )
    assert extract(native.output).text == "def f(): pass"
    got = extract(routed.output)
    assert (got.text, got.shape, got.finish_reason) == ("def f(): pass", "openai-sse-events", "stop")


@pytest.mark.parametrize(
    ("worker", "message"),
    [({"engine": "openai"}, "openai_base_url"), ({"engine": "tgi"}, "unknown engine"), ({"era": "z"}, "era")],
)
def test_bad_worker_options_fail_at_construction_not_as_a_crash_loop(worker: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Emulator(cold_start=0.0, worker=worker)
