"""The engine contract through RunPod's native input (worker-vllm's ``{"messages", "sampling_params"}`` jobs):
the compat features of :mod:`harness.conformance.semantics` that a native job's output can show — it carries no
finish reason and no error envelope, so determinism, exact max_tokens (by its output token count), stop strings,
n choices and seeds. ``run`` submits one job input and returns its output (``RunPodClient.run(...).output``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from harness.conformance.prober import GREEDY, PROMPT, TOKENS
from harness.conformance.semantics import (
    SAMPLED,
    Verdict,
    check_identical,
    failure,
    judge,
    pick_stop,
    seeded_twice,
)
from harness.core.errors import HarnessError
from harness.core.shapes import extract

__all__ = ["NATIVE_FEATURES", "NativeRun", "run_native_semantics"]


NativeRun = Callable[[dict[str, Any]], Awaitable[Any]]  # job input -> the job's output


async def _native(run: NativeRun, **sampling: Any) -> tuple[list[str], int | None]:
    """The texts of every choice and the output token count of one native job."""
    got = extract(await run({"messages": PROMPT, "sampling_params": {"max_tokens": TOKENS, **GREEDY, **sampling}}))
    texts = list(got.choices) or [got.text]
    return texts, got.usage.output_tokens if got.usage is not None else None


async def _native_determinism(run: NativeRun) -> str:
    texts = [(await _native(run))[0][0] for _ in range(3)]
    check_identical(texts, "across repeats (native input)")
    return f"3 repeats agree ({len(texts[0])} characters)"


async def _native_max_tokens(run: NativeRun) -> str:
    _, out = await _native(run, ignore_eos=True)
    if out != TOKENS:
        raise failure("max-tokens-not-exact", "max_tokens with ignore_eos is not exact", f"asked {TOKENS}, got {out}")
    return f"{TOKENS} output tokens exactly"


async def _native_stop(run: NativeRun) -> str:
    sampled = {k: v for k, v in SAMPLED.items() if k != "max_tokens"} | {"max_tokens": 32}
    full = seeded_twice(*[(await _native(run, **sampled))[0][0] for _ in range(2)])
    stop = pick_stop(full)
    got = (await _native(run, **sampled, stop=[stop]))[0][0]
    if got != full[: full.find(stop)]:
        raise failure("stop-not-honoured", f"stop {stop!r} not honoured", f"got {got[:60]!r}")
    return f"stop {stop!r} honoured"


async def _native_n(run: NativeRun) -> str:
    texts, _ = await _native(run, n=2, temperature=1.0, seed=7)
    if len(texts) != 2:
        raise failure("n-choices", "n=2 did not give 2 choices", f"{len(texts)} choice(s)")
    return "2 choices"


async def _native_seed(run: NativeRun) -> str:
    texts = [(await _native(run, temperature=1.0, seed=1234))[0][0] for _ in range(2)]
    check_identical(texts, "with seed 1234 at temperature 1 (native input)")
    return "the same seed repeats at temperature 1"


NATIVE_FEATURES: list[tuple[str, Callable[[NativeRun], Awaitable[str]]]] = [
    ("greedy determinism", _native_determinism),
    ("max_tokens exact (ignore_eos)", _native_max_tokens),
    ("stop strings", _native_stop),
    ("n > 1 choices", _native_n),
    ("seed repeats", _native_seed),
]


async def run_native_semantics(run: NativeRun) -> list[Verdict]:
    """Each native feature's verdict (compat layer)."""
    return [await judge(name, "compat", probe(run), HarnessError) for name, probe in NATIVE_FEATURES]
