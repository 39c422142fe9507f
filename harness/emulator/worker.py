"""The reference RunPod handler: worker-vllm's input schema and every output era, over an engine.

``make_handler(options)`` returns an async-generator handler (as worker-vllm's is). Options:

Every option key is checked: a typo (``engin: scripted``) is a ConfigError naming the known keys.

era                 native (default, worker-vllm 0.2.0..v2.23) | era-a | era-b | era-c
openai_era          E (default: RAW_OPENAI_OUTPUT strings, one batch of events each) | F (v2.24+: raw SSE
                    text cut at arbitrary byte boundaries, decoded with errors="replace")
raw_openai_output   True (default) | False (each item a list of chunk dicts)
engine              scripted (default; first token after ttft_s = 0.1, then tokens_per_s = 40, as a 7B model on a
                    GPU behind RunPod's queue: a 100-token answer takes seconds; set both to 0 for instant answers)
                    | openai (openai_base_url, api_key_env) | transformers (model_dir, config, cache_dir, ...)
model               served model name (default devai-scripted)
batch sizes         max_batch_size 50, min_batch_size 1, batch_size_growth_factor 3 (per job input too)

Test hooks a job's input may carry (documented, emulator-only): ``"_fault": "raise" | "yield_error" |
"huge"`` — raise an exception, yield a worker-vllm error object, or produce a multi-megabyte output.
Invalid sampling params yield worker-vllm's BadRequestError object, as the real worker does.
"""

from __future__ import annotations

import json
import random
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

from harness.core.errors import ConfigError
from harness.emulator.engines import (
    DEFAULT_TOKENS_PER_S,
    DEFAULT_TTFT_S,
    Delta,
    Engine,
    GenRequest,
    OpenAIEngine,
    ScriptedEngine,
    with_stops,
)
from harness.emulator.relay import ByteCutter, relay_openai

__all__ = ["WORKER_KEYS", "check_options", "make_engine", "make_handler"]

Handler = Callable[[dict[str, Any]], AsyncIterator[Any]]

_ERAS = ("native", "era-a", "era-b", "era-c")


def _bad_request(message: str) -> dict[str, Any]:
    return {"error": {"object": "error", "message": message, "type": "BadRequestError", "param": None, "code": 400}}


def _prompt(messages: list[dict[str, Any]]) -> str:
    return "\n".join(f"{m.get('role', 'user')}: {m.get('content', '')}" for m in messages if isinstance(m, dict))


class _Batcher:
    """worker-vllm's dynamic batching: batch sizes 1, 3, 9, 27, 50, 50, ..."""

    def __init__(self, n: int, lo: int, growth: float, hi: int) -> None:
        self.size, self.growth, self.hi = max(1, lo), max(1.0, growth), max(1, hi)
        self.pending: list[list[str]] = [[] for _ in range(n)]
        self.count = 0

    def add(self, d: Delta) -> list[list[str]] | None:
        if d.index < len(self.pending):
            self.pending[d.index].append(d.text)
        self.count += 1
        if self.count >= self.size * len(self.pending):
            return self.flush()
        return None

    def flush(self) -> list[list[str]] | None:
        if not self.count:
            return None
        out, self.pending = self.pending, [[] for _ in self.pending]
        self.count = 0
        self.size = min(self.hi, int(self.size * self.growth))
        return out


WORKER_KEYS = frozenset(
    {
        "era",
        "openai_era",
        "raw_openai_output",
        "engine",
        "model",
        "seed",
        # scripted
        "fixtures",
        "responses",
        "ttft_s",
        "ttft_range_s",
        "tokens_per_s",
        "stall_after_tokens",
        "stall_s",
        "filler_tokens",
        # openai
        "openai_base_url",
        "api_key_env",
        # transformers
        "model_dir",
        "config",
        "cache_dir",
        "device",
        "compile",
        "static_cache",
    }
)


def check_options(options: dict[str, Any]) -> None:
    unknown = sorted(set(options) - WORKER_KEYS)
    if unknown:
        raise ConfigError(
            f"worker: unknown key(s) {', '.join(map(str, unknown))}; known: {', '.join(sorted(WORKER_KEYS))}"
        )


def make_handler(options: dict[str, Any]) -> Handler:
    check_options(options)
    era = options.get("era", "native")
    if era not in _ERAS:
        raise ConfigError(f"worker.era must be one of {', '.join(_ERAS)}")
    engine = make_engine(options)
    model = str(options.get("model", "devai-scripted"))
    openai_era = str(options.get("openai_era", "E")).upper()
    raw_default = bool(options.get("raw_openai_output", True))
    rng = random.Random(int(options.get("seed", 0)))

    async def handler(job: dict[str, Any]) -> AsyncIterator[Any]:
        inp = job.get("input") or {}
        if not isinstance(inp, dict):
            yield _bad_request("input must be an object")
            return
        fault = inp.get("_fault")
        if fault == "raise":
            raise RuntimeError("injected handler exception (input _fault=raise)")
        if fault == "yield_error":
            yield _bad_request("injected worker error (input _fault=yield_error)")
            return
        if "openai_route" in inp and isinstance(engine, OpenAIEngine) and engine.relay:
            raw = bool(inp.get("raw_openai_output", raw_default))
            given = inp.get("openai_input")
            body: dict[str, Any] = given if isinstance(given, dict) else {}
            async for item in relay_openai(
                engine.base_url, str(inp["openai_route"]), body, era=openai_era, raw=raw, headers=engine.headers
            ):
                yield item
            return
        if "openai_route" in inp:
            async for item in _openai(engine, inp, model, openai_era, raw_default, rng, job.get("id", "")):
                yield item
            return
        async for item in _native(engine, inp, era, huge=fault == "huge"):
            yield item

    handler.engine = engine  # type: ignore[attr-defined]  # the emulator logs the engine's load report
    return handler


async def _native(engine: Engine, inp: dict[str, Any], era: str, *, huge: bool) -> AsyncIterator[Any]:
    sp = inp.get("sampling_params") or {}
    max_tokens, n, temp = sp.get("max_tokens", 100), sp.get("n", 1), sp.get("temperature", 1.0)
    if not isinstance(max_tokens, int) or max_tokens < 1:
        yield _bad_request("max_tokens must be at least 1")
        return
    if not isinstance(n, int) or not 1 <= n <= 16:
        yield _bad_request("n must be between 1 and 16")
        return
    if not isinstance(temp, (int, float)) or temp < 0:
        yield _bad_request("temperature must be non-negative")
        return
    messages = inp.get("messages")
    if isinstance(messages, list):
        prompt = _prompt(messages)
    elif isinstance(inp.get("prompt"), str):
        prompt = inp["prompt"]
    else:
        yield _bad_request("input needs 'prompt' (string) or 'messages' (list)")
        return
    n_in = engine.count_tokens(prompt)
    req = GenRequest(
        prompt=prompt,
        max_tokens=max_tokens,
        n=n,
        messages=messages if isinstance(messages, list) else None,
        chat=isinstance(messages, list),
        # worker-vllm hands every sampling param to vLLM: an upstream engine gets them all (the others ignore them)
        extra={k: v for k, v in sp.items() if k not in ("max_tokens", "n")},
    )
    if huge:
        text = "x" * (3 * 1024 * 1024)
        yield _native_item(era, [[text]] * n, n_in, 1, True)
        return
    stream = bool(inp.get("stream", False))
    batcher = _Batcher(
        n,
        int(inp.get("min_batch_size", 1)),
        float(inp.get("batch_size_growth_factor", 3)),
        int(inp.get("max_batch_size", 50)),
    )
    full: list[list[str]] = [[] for _ in range(n)]
    produced = 0
    async for d in _generate(engine, req, sp.get("stop")):
        produced += 1
        full[d.index].append(d.text)
        if stream and (batch := batcher.add(d)) is not None:
            yield _native_item(era, batch, n_in, produced, False)
    if stream:
        if (batch := batcher.flush()) is not None:
            yield _native_item(era, batch, n_in, produced, True)
    else:
        yield _native_item(era, [["".join(t)] for t in full], n_in, produced, True)


def _native_item(era: str, batch: list[list[str]], n_in: int, n_out: int, last: bool) -> dict[str, Any]:
    usage = {"input": n_in, "output": n_out}
    if era == "era-a":
        return {"text": ["".join(t) for t in batch], "input_tokens": n_in, "output_tokens": n_out}
    if era == "era-b":
        return {"text": "".join(batch[0]), "usage": usage}
    if era == "era-c":
        return {"tokens": batch[0], "usage": usage, "finished": last}
    return {"choices": [{"tokens": t} for t in batch], "usage": usage}


async def _openai(
    engine: Engine, inp: dict[str, Any], model: str, openai_era: str, raw: bool, rng: random.Random, job_id: str
) -> AsyncIterator[Any]:
    route, body = inp.get("openai_route"), inp.get("openai_input") or {}
    created = int(time.time())
    cid = f"chatcmpl-{uuid.uuid4().hex[:24]}"
    if route == "/v1/models":
        yield {"object": "list", "data": [{"id": model, "object": "model", "owned_by": "devai-harness"}]}
        return
    if route not in ("/v1/chat/completions", "/v1/completions") or not isinstance(body, dict):
        yield _bad_request(f"unsupported openai_route {route!r}")
        return
    chat = route == "/v1/chat/completions"
    if chat and not isinstance(body.get("messages"), list):
        yield _bad_request("messages is required")
        return
    prompt = _prompt(body["messages"]) if chat else str(body.get("prompt", ""))
    max_tokens = body.get("max_tokens", body.get("max_completion_tokens", 4096 if chat else 16))
    n = body.get("n", 1)
    if not isinstance(max_tokens, int) or max_tokens < 1 or not isinstance(n, int) or not 1 <= n <= 16:
        yield _bad_request("max_tokens must be >= 1 and n between 1 and 16")
        return
    req = GenRequest(
        prompt=prompt,
        max_tokens=max_tokens,
        n=n,
        messages=body.get("messages"),
        chat=chat,
        model=str(body.get("model", model)),
    )
    n_in = engine.count_tokens(prompt)
    obj = "chat.completion" if chat else "text_completion"

    def chunk(choices: list[dict[str, Any]], usage: dict[str, int] | None = None) -> dict[str, Any]:
        c: dict[str, Any] = {
            "id": cid,
            "object": f"{obj}.chunk" if chat else obj,
            "created": created,
            "model": req.model,
            "choices": choices,
        }
        if usage is not None:
            c["usage"] = usage
        return c

    def choice(d: Delta) -> dict[str, Any]:
        part: dict[str, Any] = {"delta": {"content": d.text}} if chat else {"text": d.text}
        last = {"stop_reason": d.stop_reason} if d.finish_reason else {}
        return {"index": d.index, **part, "logprobs": None, "finish_reason": d.finish_reason, **last}

    if not body.get("stream"):
        texts: list[list[str]] = [[] for _ in range(n)]
        reasons: list[str | None] = [None] * n
        stop_reasons: list[str | None] = [None] * n
        n_out = 0
        async for d in _generate(engine, req, body.get("stop")):
            texts[d.index].append(d.text)
            reasons[d.index] = d.finish_reason or reasons[d.index]
            stop_reasons[d.index] = d.stop_reason or stop_reasons[d.index]
            n_out += 1
        choices = [
            {
                "index": i,
                **({"message": {"role": "assistant", "content": "".join(t)}} if chat else {"text": "".join(t)}),
                "logprobs": None,
                "finish_reason": reasons[i],
                "stop_reason": stop_reasons[i],
            }
            for i, t in enumerate(texts)
        ]
        yield {
            "id": cid,
            "object": obj,
            "created": created,
            "model": req.model,
            "choices": choices,
            "usage": {"prompt_tokens": n_in, "completion_tokens": n_out, "total_tokens": n_in + n_out},
        }
        return

    include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
    batcher = _Batcher(n, 1, 3, 50)
    events: list[dict[str, Any]] = []
    if chat:
        events.append(
            chunk(
                [
                    {"index": i, "delta": {"role": "assistant", "content": ""}, "logprobs": None, "finish_reason": None}
                    for i in range(n)
                ]
            )
        )
    n_out = 0
    cutter = ByteCutter(rng)
    async for d in _generate(engine, req, body.get("stop")):
        n_out += 1
        events.append(chunk([choice(d)]))
        if openai_era == "F":  # vllm serve streams as it goes; the worker relays whatever bytes arrived
            for piece in cutter.feed("".join(_sse(events))):
                yield piece
            events = []
        elif batcher.add(d) is not None:
            yield "".join(_sse(events)) if raw else events
            events = []
    if include_usage:
        events.append(chunk([], {"prompt_tokens": n_in, "completion_tokens": n_out, "total_tokens": n_in + n_out}))
    if openai_era == "F":
        for piece in cutter.feed("".join(_sse(events)) + "data: [DONE]\n\n", final=True):
            yield piece
        return
    if raw:
        yield "".join(_sse(events)) + "data: [DONE]\n\n"
    elif events:
        yield events


def _generate(engine: Engine, req: GenRequest, stop: Any) -> AsyncIterator[Delta]:
    """An upstream server applies stop strings itself (they are in the request); a local engine gets them here."""
    stops = [stop] if isinstance(stop, str) else [x for x in stop if isinstance(x, str) and x] if stop else []
    if isinstance(engine, OpenAIEngine):
        return engine.generate(req)
    return with_stops(engine.generate(req), stops, req.n)


def _sse(events: list[dict[str, Any]]) -> list[str]:
    return [f"data: {json.dumps(e, ensure_ascii=False, separators=(',', ':'))}\n\n" for e in events]


def make_engine(options: dict[str, Any]) -> Engine:
    kind = options.get("engine", "scripted")
    if kind == "scripted":
        return ScriptedEngine(
            fixtures=options.get("fixtures"),
            responses=options.get("responses"),
            ttft_s=float(options.get("ttft_s", DEFAULT_TTFT_S)),
            ttft_range_s=options.get("ttft_range_s"),
            tokens_per_s=float(options.get("tokens_per_s", DEFAULT_TOKENS_PER_S)),
            stall_after_tokens=options.get("stall_after_tokens"),
            stall_s=float(options.get("stall_s", 0.0)),
            filler_tokens=int(options.get("filler_tokens", 40)),
        )
    if kind in ("openai", "vllm"):
        if not options.get("openai_base_url"):
            raise ConfigError(f"engine {kind!r} needs worker.openai_base_url (the server's /v1 URL)")
        return OpenAIEngine(
            base_url=options["openai_base_url"],
            model=options.get("model"),
            api_key_env=options.get("api_key_env", "OPENAI_API_KEY"),
            relay=kind == "vllm",  # the OpenAI route relays the server's own output (harness.emulator.relay)
        )
    if kind == "transformers":
        from harness.emulator.torchengine import TransformersEngine

        return TransformersEngine(
            model_dir=options.get("model_dir"),
            config=str(options.get("config", "qwen2.5-coder-7b")),
            cache_dir=options.get("cache_dir"),
            device=options.get("device"),
            compile=options.get("compile"),
            static_cache=options.get("static_cache"),
        )
    raise ConfigError(f"unknown engine {kind!r}: scripted, openai, vllm or transformers")
