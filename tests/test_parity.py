"""One core, two drivers: the async clients and the sync (locust) driver give the same verdicts, numbers and
error types for the same bytes and the same job histories.

Both drivers talk to the same loopback server (made by us): byte streams are served as scripted pieces, and
RunPod job histories come from tests.fakes.FakeRunPod behind a small ASGI adapter. Time is fake on both sides
(the same start, the same sleeps), so even the timeout messages must match word for word.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import random
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from harness import FakeClock, PollPolicy, RetryPolicy, RunPodClient
from harness.clients.openai import OpenAIClient
from harness.core.errors import HarnessError
from harness.core.streaming import Completion
from harness.emulator.serving import BackgroundServer
from harness.load.driver import SyncOpenAI, SyncRunPod
from tests.fakes import API_KEY, ENDPOINT, FakeRunPod, health, job

ASK = [{"role": "user", "content": "hi"}]
_ids = itertools.count()

# --- byte streams -----------------------------------------------------------------------


@dataclass
class Script:
    pieces: list[bytes]
    status: int = 200
    content_type: str = "text/event-stream"
    headers: dict[str, str] = field(default_factory=dict)


SCRIPTS: dict[str, Script] = {}


async def _chat(request: Request) -> Response:
    script = SCRIPTS[(await request.json())["model"]]
    if script.status != 200:
        body = b"".join(script.pieces)
        return Response(body, status_code=script.status, media_type="application/json", headers=script.headers)

    async def pieces() -> AsyncIterator[bytes]:
        for piece in script.pieces:
            yield piece
            await asyncio.sleep(0.001)  # give the pieces a chance to arrive apart

    return StreamingResponse(pieces(), media_type=script.content_type)


@pytest.fixture(scope="module")
def sse_server() -> Iterator[str]:
    with BackgroundServer(Starlette(routes=[Route("/v1/chat/completions", _chat, methods=["POST"])])) as srv:
        yield f"{srv.url}/v1"


def chunk(content: str | None = None, *, index: int = 0, finish: str | None = None, **extra: Any) -> str:
    delta = {} if content is None else {"content": content}
    body = {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "choices": [{"index": index, "delta": delta, "finish_reason": finish}],
        **extra,
    }
    return f"data: {json.dumps(body)}\n\n"


def usage_chunk(prompt: int, completion: int) -> str:
    usage = {"prompt_tokens": prompt, "completion_tokens": completion}
    return f"data: {json.dumps({'object': 'chat.completion.chunk', 'choices': [], 'usage': usage})}\n\n"


USAGE = usage_chunk(3, 2)
DONE = "data: [DONE]\n\n"
STREAMS: dict[str, str] = {
    "complete": chunk("Hel") + chunk("lo", finish="stop") + USAGE + DONE,
    "truncated": chunk("Hel") + chunk("lo"),
    "no-done-but-finished": chunk("Hel") + chunk("lo", finish="stop"),
    "last-event-unterminated": chunk("Hel") + chunk("lo", finish="stop") + USAGE.rstrip("\n"),
    "keepalives": ": keep-alive\n\n" * 3 + chunk("ok", finish="stop") + DONE,
    "error-event-coded": chunk("a")
    + 'event: error\ndata: {"error": {"message": "CUDA out of memory", "code": 503}}\n\n',
    "error-event-no-code": chunk("a") + 'data: {"type": "error", "message": "boom"}\n\n',
    "not-sse": "\x00\x01 this is not an event stream {{{\n\n",
    "n2": (
        chunk("", index=0)
        + chunk("", index=1)
        + chunk("A", index=0)
        + chunk("B", index=1)
        + chunk("a", index=0, finish="stop")
        + chunk("b", index=1, finish="stop")
        + usage_chunk(3, 4)
        + DONE
    ),
    "continuous-usage": chunk("x", usage={"prompt_tokens": 3, "completion_tokens": 1})
    + chunk("y", finish="stop", usage={"prompt_tokens": 3, "completion_tokens": 2})
    + DONE,
}


def verdict(outcome: Completion | BaseException) -> dict[str, Any]:
    """What a user of either driver learns from a reply (timings left out: they are the clock's)."""
    if isinstance(outcome, BaseException):
        return {
            "error": type(outcome).__name__,
            "code": getattr(outcome, "code", None),
            "status": getattr(outcome, "status_code", None),
            "retry_after": getattr(outcome, "retry_after", None),
            "error_type": getattr(outcome, "error_type", None),
        }
    t = outcome.timing
    return {
        "text": outcome.text,
        "choices": outcome.choices,
        "finish_reasons": outcome.finish_reasons,
        "usage": (t.input_tokens, t.output_tokens),
        "content_chunks": t.content_chunks,
        "gaps": len(t.gaps),
        "n": t.choices,
        "keepalives": len(t.keepalives),
        "ttft_seen": t.ttft is not None,
        "findings": sorted(f.code for f in outcome.findings),
        "request_id": t.request_id,
    }


def both_streams(base: str, model: str, *, stream: bool = True) -> tuple[dict[str, Any], dict[str, Any]]:
    async def run_async() -> Completion | BaseException:
        async with OpenAIClient(base, "sk-parity-test-key", retry=RetryPolicy(max_attempts=1)) as oa:
            try:
                return await oa.chat(ASK, model=model, stream=stream, max_tokens=8)
            except HarnessError as exc:
                return exc

    def run_sync() -> Completion | BaseException:
        oa = SyncOpenAI(base, "sk-parity-test-key", retry=RetryPolicy(max_attempts=1))
        try:
            send = oa.chat_stream if stream else oa.chat
            return send(ASK, model=model, max_tokens=8)
        except HarnessError as exc:
            return exc
        finally:
            oa.close()

    return verdict(asyncio.run(run_async())), verdict(run_sync())


def serve(text: str, **kwargs: Any) -> str:
    model = f"script-{next(_ids)}"
    SCRIPTS[model] = Script([text.encode()], **kwargs)
    return model


@pytest.mark.parametrize("name", sorted(STREAMS))
def test_the_same_stream_gets_the_same_verdict(sse_server: str, name: str) -> None:
    a, s = both_streams(sse_server, serve(STREAMS[name]))
    assert a == s
    expected_errors = {
        "truncated": "StreamTruncated",
        "error-event-coded": "StreamErrorEvent",
        "error-event-no-code": "StreamErrorEvent",
        "not-sse": "StreamProtocolError",
    }
    assert a.get("error") == expected_errors.get(name)


def test_the_two_divergences_of_the_old_sync_driver_are_gone(sse_server: str) -> None:
    """Truncation is an error for both; an unterminated last event counts for both (with a finding)."""
    a, s = both_streams(sse_server, serve(STREAMS["truncated"]))
    assert a["error"] == s["error"] == "StreamTruncated"
    a, s = both_streams(sse_server, serve(STREAMS["last-event-unterminated"]))
    assert a == s and a["content_chunks"] == 2 and a["usage"] == (3, 2) and a["finish_reasons"] == ("stop",)
    assert "sse-unterminated-event" in a["findings"] and "sse-no-done" in a["findings"]


def test_n2_is_accounted_per_choice(sse_server: str) -> None:
    a, s = both_streams(sse_server, serve(STREAMS["n2"]))
    assert a == s
    assert a["choices"] == ("Aa", "Bb") and a["n"] == 2 and a["gaps"] == 2  # one gap within each choice


@pytest.mark.parametrize(
    ("status", "body", "headers", "error"),
    [
        (
            404,
            {"error": {"message": "model x does not exist", "type": "NotFoundError", "code": 404}},
            {},
            "StatusError",
        ),
        (404, {"detail": "Not Found"}, {}, "StatusError"),
        (429, {"error": "slow down"}, {"Retry-After": "7"}, "RateLimited"),
        (
            400,
            {"error": {"message": "bad", "type": "BadRequestError", "param": "max_tokens", "code": 400}},
            {},
            "StatusError",
        ),
    ],
)
@pytest.mark.parametrize("stream", [True, False])
def test_http_errors_map_the_same(
    sse_server: str, status: int, body: dict[str, Any], headers: dict[str, str], error: str, stream: bool
) -> None:
    model = serve(json.dumps(body), status=status, headers=headers)
    a, s = both_streams(sse_server, model, stream=stream)
    assert a == s and a["error"] == error and a["status"] == status


@settings(max_examples=25, deadline=None)
@given(st.data())
def test_any_split_gives_the_same_verdict(sse_server: str, data: st.DataObject) -> None:
    name = data.draw(st.sampled_from(sorted(STREAMS)))
    raw = STREAMS[name].encode()
    cuts = sorted(set(data.draw(st.lists(st.integers(1, len(raw) - 1), max_size=6))))
    model = f"script-{next(_ids)}"
    SCRIPTS[model] = Script([raw[a:b] for a, b in zip([0, *cuts], [*cuts, len(raw)], strict=True)])
    a, s = both_streams(sse_server, model)
    whole_a, _ = both_streams(sse_server, serve(STREAMS[name]))
    assert a == s == whole_a


# --- job histories ------------------------------------------------------------------------


class SyncFakeClock:
    def __init__(self) -> None:
        self.t = 0.0
        self.sleeps: list[float] = []

    def now(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.t += max(0.0, seconds)


def asgi(fake: FakeRunPod) -> Starlette:
    """FakeRunPod's scripted replies served over real HTTP."""

    async def route(request: Request) -> Response:
        req = httpx.Request(request.method, str(request.url), headers=request.headers.raw, content=await request.body())
        resp = fake.handler(req)
        return Response(resp.content, status_code=resp.status_code, headers=dict(resp.headers))

    return Starlette(routes=[Route("/{path:path}", route, methods=["GET", "POST"])])


Scenario = Callable[[FakeRunPod], None]


def zombie(fake: FakeRunPod) -> None:
    fake.script("run", job("IN_QUEUE", "z1"))
    fake.script("status", job("IN_QUEUE", "z1"))
    fake.script("health", health({"idle": 1, "ready": 1, "running": 1}, inQueue=2, completed=56))
    fake.script("cancel", job("CANCELLED", "z1"))


def field_report_001(fake: FakeRunPod) -> None:
    fake.script("run", job("IN_QUEUE", "f1"))
    fake.script("status", job("IN_QUEUE", "f1"))
    fake.script(
        "health", health({"idle": 0, "ready": 0, "running": 1, "unhealthy": 1}, completed=118, inQueue=1, inProgress=0)
    )
    fake.script("cancel", job("CANCELLED", "f1"))


def cold_start(fake: FakeRunPod) -> None:
    fake.script("run", job("IN_QUEUE"))
    fake.script("status", job("IN_QUEUE"))
    fake.script("health", health({"idle": 0, "running": 0, "initializing": 1}))
    fake.script("cancel", job("CANCELLED"))


def backlog(fake: FakeRunPod) -> None:
    counter = itertools.count()
    fake.script("run", job("IN_QUEUE"))
    fake.script("status", job("IN_QUEUE"))
    fake.script(
        "health",
        lambda _: httpx.Response(
            200, json=health({"idle": 0, "running": 3}, inProgress=3, inQueue=50, completed=next(counter))
        ),
    )
    fake.script("cancel", job("CANCELLED"))


def rate_limited(fake: FakeRunPod) -> None:
    fake.script("run", job("IN_QUEUE"))
    fake.script("status", httpx.Response(429, headers={"Retry-After": "1"}, json={"error": "slow down"}))


def failed(fake: FakeRunPod) -> None:
    fake.script("run", job("IN_QUEUE"))
    fake.script(
        "status",
        job("IN_QUEUE"),
        job("IN_PROGRESS"),
        job("FAILED", error='{"error_type": "ValueError", "error_message": "bad input: boom"}'),
    )


def completes(fake: FakeRunPod) -> None:
    fake.script("run", job("IN_QUEUE"))
    fake.script("status-sync", job("IN_QUEUE"), job("COMPLETED", output=[{"choices": [{"tokens": ["ok"]}]}]))


SCENARIOS: dict[str, tuple[Scenario, float, str]] = {
    "zombie": (zombie, 3600, "ZombieWorker"),
    "field-report-001 at a 3 s deadline": (field_report_001, 3, "ZombieWorker"),
    "cold start": (cold_start, 20, "ColdStartTooSlow"),
    "backlog": (backlog, 120, "QueueBacklog"),
    "429 storm": (rate_limited, 60, "RateLimited"),
    "FAILED job": (failed, 60, "JobFailed"),
    "long-polled to COMPLETED": (completes, 60, "COMPLETED"),
}


def job_verdict(outcome: Any, fake: FakeRunPod, base: str) -> dict[str, Any]:
    routes = [FakeRunPod._route(r) for r in fake.requests]
    if isinstance(outcome, BaseException):
        return {
            "error": type(outcome).__name__,
            "message": str(outcome).replace(base, "BASE"),  # the two servers' ports differ
            "elapsed_s": getattr(outcome, "elapsed_s", None),
            "cancelled": getattr(outcome, "cancelled", None),
            "last_status": getattr(outcome, "last_status", None),
            "diagnosis": getattr(getattr(outcome, "diagnosis", None), "kind", None),
            "worker_message": getattr(getattr(outcome, "worker_error", None), "message", None),
            "routes": routes,
        }
    return {"status": str(outcome.status), "routes": routes}


def both_jobs(scenario: Scenario, timeout: float) -> tuple[dict[str, Any], dict[str, Any]]:
    kwargs: dict[str, Any] = {
        "stuck_after_s": 30,
        "health_every_s": 5,
        "poll": PollPolicy(),
        "retry": RetryPolicy(max_attempts=3, base_s=0.1),
    }
    fake_a, fake_s = FakeRunPod(), FakeRunPod()
    scenario(fake_a)
    scenario(fake_s)

    async def run_async(base: str) -> Any:
        async with RunPodClient(
            ENDPOINT, API_KEY, base_url=base, clock=FakeClock(), rng=random.Random(0), **kwargs
        ) as rp:
            try:
                return await rp.run({"prompt": "hi"}, timeout=timeout)
            except HarnessError as exc:
                return exc

    def run_sync(base: str) -> Any:
        clock = SyncFakeClock()
        rp = SyncRunPod(base, ENDPOINT, API_KEY, now=clock.now, sleep=clock.sleep, rng=random.Random(0), **kwargs)
        try:
            return rp.run({"prompt": "hi"}, timeout=timeout)
        except HarnessError as exc:
            return exc
        finally:
            rp.close()

    with BackgroundServer(asgi(fake_a)) as a, BackgroundServer(asgi(fake_s)) as s:
        outcome_a = asyncio.run(run_async(f"{a.url}/v2"))
        outcome_s = run_sync(f"{s.url}/v2")
        return job_verdict(outcome_a, fake_a, a.url), job_verdict(outcome_s, fake_s, s.url)


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_the_same_job_history_gets_the_same_verdict(name: str) -> None:
    scenario, timeout, expected = SCENARIOS[name]
    a, s = both_jobs(scenario, timeout)
    assert a == s
    assert a.get("error", a.get("status")) == expected
    if a.get("diagnosis") is not None:
        assert a["cancelled"] is True and "cancel" in a["routes"]
