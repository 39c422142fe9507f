"""Engines behind the reference worker: a small interface (``count_tokens``, ``generate``) that the scripted,
OpenAI-proxy, vLLM and GPU ``transformers`` engines implement; the reference worker picks one
(``harness.emulator.worker.make_engine``).

* ``scripted`` (offline default): deterministic answers from a YAML fixture file (regex on the prompt
  -> response), else a deterministic filler; a latency model (TTFT, tokens/s, optional stall) so
  timings look like a GPU worker. Tokens are whitespace-delimited pieces (joined, they give the text
  back exactly); counts are honest counts of those pieces.
* ``openai``: proxies to any OpenAI-compatible base URL, streaming through.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import random
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import httpx

from harness.core.errors import ConfigError, StreamErrorEvent
from harness.core.sse import SSEEvent, SSEParser
from harness.core.yamltext import parse_yaml_bytes
from harness.emulator.relay import UPSTREAM_HEADER

__all__ = [
    "DEFAULT_TOKENS_PER_S",
    "DEFAULT_TTFT_S",
    "INSTANT",
    "Delta",
    "Engine",
    "GenRequest",
    "OpenAIEngine",
    "ScriptedEngine",
    "pieces",
]

# The scripted engine's default speed: a 7B model on a GPU behind RunPod's queue (a 100-token answer takes
# seconds, as field report 000 saw). Tests that want instant answers ask for INSTANT.
DEFAULT_TTFT_S = 0.1
DEFAULT_TOKENS_PER_S = 40.0
INSTANT = {"ttft_s": 0.0, "tokens_per_s": 0.0}

_PIECE = re.compile(r"\S+\s*|\s+")
_FILLER = ("the", "code", "returns", "a", "value", "for", "each", "input", "and", "checks", "edge", "cases")


def pieces(text: str) -> list[str]:
    """Split into token-like pieces whose concatenation is exactly ``text``."""
    return _PIECE.findall(text)


@dataclass(frozen=True, slots=True)
class GenRequest:
    prompt: str
    max_tokens: int
    n: int = 1
    messages: list[dict[str, Any]] | None = None
    model: str = "devai-scripted"
    chat: bool = True
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Delta:
    index: int
    text: str
    finish_reason: str | None = None  # set on the last delta of a choice
    stop_reason: str | None = None  # the stop string that ended it (vLLM's field)


async def with_stops(deltas: AsyncIterator[Delta], stops: list[str], n: int) -> AsyncIterator[Delta]:
    """Stop strings applied as vLLM applies them, for engines that generate here: text held back while it may be
    the start of a stop string, cut before a match (excluded from the output), finish_reason "stop" and
    stop_reason naming the match; generation ends once every choice has stopped."""
    if not stops:
        async for d in deltas:
            yield d
        return
    hold = max(len(s) for s in stops) - 1
    text, sent, done = [""] * n, [0] * n, [False] * n
    try:
        async for d in deltas:
            i = d.index
            if done[i]:
                continue
            text[i] += d.text
            hits = [(text[i].find(s), s) for s in stops if s in text[i]]
            if hits:
                at, stop = min(hits)
                yield Delta(i, text[i][sent[i] : at], "stop", stop)
                done[i] = True
                if all(done):
                    return
                continue
            end = len(text[i]) if d.finish_reason else max(sent[i], len(text[i]) - hold)
            if end > sent[i] or d.finish_reason:
                yield Delta(i, text[i][sent[i] : end], d.finish_reason)
                sent[i] = end
    finally:
        aclose = getattr(deltas, "aclose", None)
        if aclose is not None:
            await aclose()


class Engine(Protocol):
    name: str

    def count_tokens(self, text: str) -> int: ...

    def generate(self, req: GenRequest) -> AsyncIterator[Delta]: ...


class ScriptedEngine:
    name = "scripted"

    def __init__(
        self,
        *,
        fixtures: str | Path | None = None,
        responses: list[dict[str, str]] | None = None,
        ttft_s: float = DEFAULT_TTFT_S,
        ttft_range_s: tuple[float, float] | list[float] | None = None,
        tokens_per_s: float = DEFAULT_TOKENS_PER_S,
        stall_after_tokens: int | None = None,
        stall_s: float = 0.0,
        filler_tokens: int = 40,
    ) -> None:
        self.rules: list[tuple[re.Pattern[str], str]] = list(_rules(responses, "worker.responses")) if responses else []
        if fixtures:
            self.rules += _load_rules(Path(fixtures))
        self.ttft_s = ttft_s
        self.ttft_range_s = (float(ttft_range_s[0]), float(ttft_range_s[1])) if ttft_range_s else None
        self._rng = random.Random(0)
        self.tokens_per_s = tokens_per_s
        self.stall_after_tokens = stall_after_tokens
        self.stall_s = stall_s
        self.filler_tokens = filler_tokens

    def count_tokens(self, text: str) -> int:
        return len(pieces(text))

    def answer(self, prompt: str) -> str:
        for pattern, response in self.rules:
            if pattern.search(prompt):
                return response
        digest = hashlib.sha256(prompt.encode()).digest()
        words = [_FILLER[b % len(_FILLER)] for b in digest * (1 + self.filler_tokens // 32)][: self.filler_tokens]
        return "Scripted answer: " + " ".join(words) + "."

    async def generate(self, req: GenRequest) -> AsyncIterator[Delta]:
        toks = pieces(self.answer(req.prompt))
        finish = "length" if len(toks) > req.max_tokens else "stop"
        toks = toks[: req.max_tokens]
        ttft = self._rng.uniform(*self.ttft_range_s) if self.ttft_range_s else self.ttft_s
        if ttft > 0:
            await asyncio.sleep(ttft)
        gap = 1 / self.tokens_per_s if self.tokens_per_s > 0 else 0.0
        for i, tok in enumerate(toks):
            if i and gap:
                await asyncio.sleep(gap)
            if self.stall_after_tokens is not None and i == self.stall_after_tokens and self.stall_s > 0:
                await asyncio.sleep(self.stall_s)
            last = i == len(toks) - 1
            for c in range(req.n):
                yield Delta(c, tok, finish if last else None)
        if not toks:
            for c in range(req.n):
                yield Delta(c, "", finish)


def _load_rules(path: Path) -> list[tuple[re.Pattern[str], str]]:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read scripted fixtures {path}: {exc.strerror}") from None
    data = parse_yaml_bytes(raw, f"scripted fixtures {path}")
    return _rules(data.get("responses") if isinstance(data, dict) else None, str(path))


def _rules(rules: Any, path: str) -> list[tuple[re.Pattern[str], str]]:
    if not isinstance(rules, list):
        raise ConfigError(f"{path}: expected a 'responses' list of {{match, response}}")
    out = []
    for i, r in enumerate(rules):
        if not isinstance(r, dict) or not isinstance(r.get("match"), str) or not isinstance(r.get("response"), str):
            raise ConfigError(f"{path}: responses[{i}] needs string 'match' and 'response'")
        try:
            out.append((re.compile(r["match"], re.S | re.I), r["response"]))
        except re.error as exc:
            raise ConfigError(f"{path}: responses[{i}].match is not a regex: {exc}") from None
    return out


class OpenAIEngine:
    """Streams from an OpenAI-compatible server. The key is read from the environment variable named
    by ``api_key_env`` (never from config files)."""

    name = "openai"

    def __init__(
        self,
        *,
        base_url: str,
        model: str | None = None,
        api_key_env: str = "OPENAI_API_KEY",
        timeout_s: float = 600.0,
        transport: httpx.AsyncBaseTransport | None = None,
        relay: bool = False,
    ) -> None:
        """``relay``: the reference worker's OpenAI route passes the server's own replies through (engine vllm)."""
        key = os.environ.get(api_key_env)
        self.model = model
        self.relay = relay
        self._base_url = base_url.rstrip("/")
        self._headers = {"Authorization": f"Bearer {key}"} if key else {}
        if relay:
            self._headers[UPSTREAM_HEADER] = "1"  # the worker's own traffic: cassettes leave it out
        self._timeout = timeout_s
        self._transport = transport

    @property
    def base_url(self) -> str:
        return self._base_url

    @property
    def headers(self) -> dict[str, str]:
        return dict(self._headers)

    def count_tokens(self, text: str) -> int:
        return len(pieces(text))  # only for the native era's input count; OpenAI usage comes from the server

    async def generate(self, req: GenRequest) -> AsyncIterator[Delta]:
        body: dict[str, Any] = {
            "model": self.model or req.model,
            "max_tokens": req.max_tokens,
            "n": req.n,
            "stream": True,
            **req.extra,
        }
        if req.chat:
            body["messages"] = req.messages or [{"role": "user", "content": req.prompt}]
        else:
            body["prompt"] = req.prompt
        path = "/chat/completions" if req.chat else "/completions"
        # A client per generation: a RunPod handler has no close hook, and a pooled client outliving
        # the worker's loop would leak its connections.
        async with (
            httpx.AsyncClient(
                base_url=self._base_url, headers=self._headers, timeout=self._timeout, transport=self._transport
            ) as http,
            http.stream("POST", path, json=body) as resp,
        ):
            if resp.status_code >= 400:
                await resp.aread()
                raise StreamErrorEvent(f"upstream HTTP {resp.status_code}: {resp.text[:200]}", code=resp.status_code)
            parser = SSEParser()
            async for text in resp.aiter_text():
                for ev in parser.feed(text):
                    if not isinstance(ev, SSEEvent) or ev.is_done:
                        continue
                    chunk = json.loads(ev.data)
                    if "error" in chunk:
                        err = chunk["error"]
                        raise StreamErrorEvent(
                            str(err.get("message", err)) if isinstance(err, dict) else str(err),
                            code=err.get("code") if isinstance(err, dict) else None,
                        )
                    for c in chunk.get("choices") or ():
                        part = c.get("delta") if req.chat else c
                        text_piece = (part or {}).get("content" if req.chat else "text") or ""
                        if "role" in (part or {}) and not text_piece and c.get("finish_reason") is None:
                            continue  # vLLM's opening role chunk is not a token: it must not count as one
                        yield Delta(int(c.get("index", 0)), text_piece, c.get("finish_reason"))
