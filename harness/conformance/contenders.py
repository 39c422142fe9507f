"""The targets of a comparison, each named: ``NAME=KIND[:WHERE][#MODEL]``.

    qwen=runpod:ENDPOINT_ID#MODEL       a RunPod endpoint (key in $RUNPOD_API_KEY); #MODEL enables the chat form
    local=runpod-local:http://127.0.0.1:8000
    llama=openai:http://127.0.0.1:8000/v1#llama-3.1-8b   (key, if any, in $OPENAI_API_KEY)
    ref=emulator[:config.yaml]          the embedded emulator; without a config it answers every case right
                                        (the scripted engine with the cases' good answers: a ceiling to rank by)

Every contender asks the same question the same way: one devai task case in one input form (``native``: the
worker-vllm job input; ``chat``: OpenAI chat messages, through the endpoint's OpenAI route or the server's
/v1/chat/completions) with the same sampling settings, and hands back the answer with its timing.
"""

from __future__ import annotations

import abc
import os
import re
import time
from collections.abc import Sequence
from contextlib import AsyncExitStack, ExitStack
from dataclasses import dataclass
from typing import Any

from harness.clients.openai import OpenAIClient
from harness.clients.runpod import DEFAULT_BASE_URL, RunPodClient
from harness.conformance.tasks import TaskCase, messages_for, native_input, openai_input, scripted_rules
from harness.core.errors import ConfigError
from harness.core.health import evident_zombie
from harness.core.shapes import Usage, extract
from harness.core.wire import check_id, check_url

__all__ = ["FORMS", "Contender", "Reply", "Sampling", "parse_contender", "unique"]

FORMS = ("native", "chat")
KINDS = ("emulator", "runpod", "runpod-local", "openai")
SCRIPTED_MODEL = "devai-scripted"
REFERENCE_PACE = {"ttft_s": 0.02, "tokens_per_s": 1000.0}
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,31}")


@dataclass(frozen=True, slots=True)
class Sampling:
    temperature: float
    max_tokens: int
    seed: int | None = None

    def params(self) -> dict[str, Any]:
        got: dict[str, Any] = {"temperature": self.temperature}
        if self.seed is not None:
            got["seed"] = self.seed
        return got


@dataclass(frozen=True, slots=True)
class Reply:
    text: str
    finish_reason: str | None
    usage: Usage | None
    e2e_s: float
    ttft_s: float | None = None  # streams only
    queue_ms: int | None = None  # RunPod delayTime
    execution_ms: int | None = None  # RunPod executionTime


class Contender(abc.ABC):
    """One named target. ``async with contender.session(cases):`` then ``preflight()`` and ``ask()``."""

    kind: str

    def __init__(self, name: str, where: str | None, model: str | None) -> None:
        self.name, self.where, self.model = name, where, model
        self._stack = AsyncExitStack()

    @property
    @abc.abstractmethod
    def forms(self) -> tuple[str, ...]: ...

    def describe(self) -> str:
        return f"{self.kind}:{self.where}" + (f"#{self.model}" if self.model else "") if self.where else self.kind

    @abc.abstractmethod
    async def start(self, cases: Sequence[TaskCase], timeout: float) -> None:
        """Open clients (and start the emulator); ``close`` undoes it."""

    async def close(self) -> None:
        await self._stack.aclose()

    @abc.abstractmethod
    async def preflight(self) -> str | None:
        """None when the target looks healthy; else why not (one line). Bad input (a model the server does not
        list) raises ConfigError."""

    @abc.abstractmethod
    async def ask(self, case: TaskCase, form: str, sampling: Sampling, timeout: float) -> Reply: ...


class OpenAIContender(Contender):
    kind = "openai"
    forms = ("chat",)
    _client: OpenAIClient

    async def start(self, cases: Sequence[TaskCase], timeout: float) -> None:
        key = os.environ.get("OPENAI_API_KEY") or None
        self._client = await self._stack.enter_async_context(
            OpenAIClient(self.where or "", key, request_timeout=timeout, stall_timeout_s=min(timeout, 60.0))
        )

    async def preflight(self) -> str | None:
        ready = await self._client.ready()
        if ready is False:
            return "GET /health does not answer 200: the server is not ready"
        listed = await self._client.models()
        if self.model is None:
            if not listed:
                raise ConfigError(f"target {self.name}: {self.where}/models lists no model: name one (URL#MODEL)")
            self.model = listed[0]
        elif self.model not in listed:
            raise ConfigError(f"target {self.name}: the server does not list model {self.model!r} (it lists {listed})")
        return None

    async def ask(self, case: TaskCase, form: str, sampling: Sampling, timeout: float) -> Reply:
        c = await self._client.chat(
            messages_for(case), model=self.model or "", max_tokens=sampling.max_tokens, extra=sampling.params()
        )
        return Reply(c.text, c.finish_reason, c.usage, c.timing.e2e or 0.0, ttft_s=c.timing.ttft)


class RunPodContender(Contender):
    """A RunPod endpoint, runpod-python's local test server, or the embedded emulator: jobs through RunPodClient."""

    def __init__(self, kind: str, name: str, where: str | None, model: str | None) -> None:
        super().__init__(name, where, model)
        self.kind = kind
        self._client: RunPodClient | None = None

    @property
    def forms(self) -> tuple[str, ...]:
        return FORMS if self.model else ("native",)

    async def start(self, cases: Sequence[TaskCase], timeout: float) -> None:
        if self.kind == "emulator":
            client = self._emulator(cases)
        elif self.kind == "runpod-local":
            client = RunPodClient.local(self.where or "")
        else:
            key = os.environ.get("RUNPOD_API_KEY")
            base = os.environ.get("RUNPOD_ENDPOINT_BASE_URL") or DEFAULT_BASE_URL
            client = RunPodClient(self.where or "", key, base_url=base, stuck_after_s=min(timeout, 120.0))
        self._client = await self._stack.enter_async_context(client)

    def _emulator(self, cases: Sequence[TaskCase]) -> RunPodClient:
        from harness.emulator import Emulator

        sync = ExitStack()
        self._stack.callback(sync.close)
        if self.where:
            emu = sync.enter_context(Emulator(self.where, cold_start=0.0))
        else:
            self.model = self.model or SCRIPTED_MODEL
            # The reference answers at a fixed, quick pace: its latency says nothing about any real model.
            worker = {"responses": scripted_rules(list(cases)), "model": self.model, **REFERENCE_PACE}
            emu = sync.enter_context(Emulator(cold_start=0.0, idle_pickup_s=0.0, worker=worker))
        return RunPodClient.of(emu)

    async def preflight(self) -> str | None:
        if self.kind != "runpod" or self._client is None:
            return None  # the local test server and the emulator have no /health; the warm-up job tells
        zombie = evident_zombie(await self._client.health())
        return None if zombie is None else f"{zombie.kind}: {zombie.reason}"

    async def ask(self, case: TaskCase, form: str, sampling: Sampling, timeout: float) -> Reply:
        assert self._client is not None, "start() first"
        if form == "native":
            payload = native_input(case, sampling.max_tokens, sampling.params())
        else:
            payload = openai_input(case, self.model or "", sampling.max_tokens, sampling.params())
        t0 = time.perf_counter()
        job = await self._client.run(payload, timeout=timeout)
        e2e = time.perf_counter() - t0
        got = extract(job.output)
        return Reply(
            got.text,
            got.finish_reason or "stop",
            got.usage,
            e2e,
            queue_ms=job.delay_time_ms,
            execution_ms=job.execution_time_ms,
        )


def parse_contender(spec: str) -> Contender:
    """``NAME=KIND[:WHERE][#MODEL]`` -> a Contender, or ConfigError with one line."""
    name, sep, rest = spec.partition("=")
    if not sep or not _NAME.fullmatch(name):
        raise ConfigError(f"target {spec!r}: write NAME=KIND[:WHERE][#MODEL], e.g. llama=openai:URL#MODEL")
    rest, _, named = rest.partition("#")
    model = named or None
    kind, _, where = rest.partition(":")
    if kind not in KINDS:
        raise ConfigError(f"target {name}: unknown kind {kind!r} (one of {', '.join(KINDS)})")
    if kind == "openai":
        return OpenAIContender(name, check_url(f"target {name}", where), model)
    if kind == "runpod-local":
        return RunPodContender(kind, name, check_url(f"target {name}", where or "http://127.0.0.1:8000"), model)
    if kind == "runpod":
        if not os.environ.get("RUNPOD_API_KEY"):
            raise ConfigError(f"target {name}: a RunPod endpoint needs an API key in $RUNPOD_API_KEY")
        return RunPodContender(kind, name, check_id("endpoint id", where), model)
    if where and not os.path.isfile(where):
        raise ConfigError(f"target {name}: emulator config {where} does not exist")
    return RunPodContender(kind, name, where or None, model or (None if where else SCRIPTED_MODEL))


def unique(contenders: Sequence[Contender]) -> None:
    seen: set[str] = set()
    for c in contenders:
        if c.name in seen:
            raise ConfigError(f"two targets are named {c.name!r}: names must differ")
        seen.add(c.name)
    if len(contenders) < 2:
        raise ConfigError("compare needs at least two targets (NAME=KIND:WHERE ...)")
