"""Engine semantics that hold on ANY model, even a random one: what breaks clients is the engine's contract, not
the model's quality. Each check is a small function raising a Finding (or Unsupported, when the server rejects
the feature explicitly); :func:`run_semantics` asks an OpenAI-compatible server the questions and gives every
feature a verdict in one of two layers:

* ``compat`` — what real clients need (greedy determinism, streamed = whole, max_tokens and stop honoured, n
  choices, seeds, errors as 4xx);
* ``strict`` — what the spec says and clients rarely read (usage equal across stream and whole, ``stop_reason``,
  the ``include_usage`` chunk with ``choices: []``, the error envelope's fields).

Overall: NOT READY (a compat feature fails), READY WITH LIMITATIONS (a strict one fails, or a feature is
UNSUPPORTED — rejected explicitly, which a client can handle), READY, or NOT CHECKED (nothing could run).
The raw HTTP exchange is read by :mod:`harness.conformance.prober` (status, content type, every SSE event), not
through OpenAIClient: the contract is in the details the client smooths over.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, ClassVar

from harness.conformance.prober import TOKENS, Prober, Reply, Unanswered, Unsupported
from harness.core.errors import TransportError
from harness.core.findings import Finding, Severity
from harness.reporting.junit import JUnitCase

__all__ = [
    "FEATURES",
    "Probe",
    "Prober",
    "Reply",
    "Unanswered",
    "Unsupported",
    "Verdict",
    "judge",
    "overall",
    "run_semantics",
]

LONG_PROMPT = [{"role": "user", "content": "Repeat after me. " + "alpha beta gamma delta " * 60}]
# Stop strings are taken from a SAMPLED answer (seeded, so it repeats): a random model's greedy text is often one
# token repeated, and a stop string inside it would prove little.
SAMPLED: dict[str, Any] = {"temperature": 1.0, "seed": 11, "ignore_eos": True, "max_tokens": 32}
NO_SUCH_MODEL = "devai-no-such-model"


def failure(code: str, title: str, detail: str) -> Finding:
    return Finding(code, title, detail, Severity.ERROR)


def _ok(reply: Reply, what: str) -> Reply:
    """A 2xx, or: Unsupported for a 4xx that names a parameter (the feature was refused), a Finding otherwise."""
    if reply.status < 400:
        return reply
    detail = json.dumps(reply.body)[:300] if reply.body is not None else "(no JSON body)"
    if reply.status == 404:  # the route or the model is not there: nothing was asked of the feature
        raise Unanswered(f"{what}: HTTP 404 {detail}")
    if 400 <= reply.status < 500:
        raise Unsupported(f"{what}: HTTP {reply.status} {detail}")
    raise failure("server-error", f"{what}: HTTP {reply.status}", detail)


# --- checks: each raises a Finding (or Unsupported) --------------------------------------------------


def check_identical(texts: list[str], what: str) -> None:
    if len(set(texts)) > 1:
        shown = " | ".join(repr(t[:40]) for t in dict.fromkeys(texts))
        raise failure("greedy-not-deterministic", f"temperature 0 differs {what}", f"{len(set(texts))} texts: {shown}")


def check_stream_equals_whole(streamed: Reply, whole: Reply) -> None:
    if streamed.text != whole.text:
        raise failure(
            "stream-differs",
            "the concatenated deltas differ from the whole reply",
            f"streamed {streamed.text[:60]!r} vs whole {whole.text[:60]!r}",
        )


def check_usage_matches(streamed: Reply, whole: Reply) -> None:
    s, w = streamed.usage, whole.usage
    if s is None or w is None:
        raise failure("usage-missing", "usage missing", f"streamed {s}, whole {w}")
    for key in ("prompt_tokens", "completion_tokens"):
        if s.get(key) != w.get(key):
            raise failure("usage-differs", f"{key} differs between stream and whole", f"{s.get(key)} vs {w.get(key)}")


def check_exact_length(reply: Reply, n: int) -> None:
    got = (reply.usage or {}).get("completion_tokens")
    if got != n or reply.finish_reason != "length":
        raise failure(
            "max-tokens-not-exact",
            "max_tokens with ignore_eos is not exact",
            f"asked {n}: completion_tokens {got}, finish_reason {reply.finish_reason!r}",
        )


def check_client_error(reply: Reply, what: str) -> None:
    if not 400 <= reply.status < 500:
        raise failure("bad-input-not-4xx", f"{what} is not a 4xx", f"HTTP {reply.status}")


def check_error_envelope(reply: Reply) -> None:
    err = reply.body.get("error") if isinstance(reply.body, dict) else None
    missing = [k for k in ("message", "type", "param", "code") if not isinstance(err, dict) or k not in err]
    if missing:
        raise failure("error-envelope", "the error body is not OpenAI's envelope", f"missing {missing}: {reply.body}")


def check_stopped_at(reply: Reply, full: str, stop: str) -> None:
    expected = full[: full.find(stop)]
    if stop in reply.text or reply.text != expected or reply.finish_reason != "stop":
        raise failure(
            "stop-not-honoured",
            f"stop {stop!r} not honoured",
            f"expected {expected[:60]!r}, got {reply.text[:60]!r}, finish_reason {reply.finish_reason!r}",
        )


def check_stop_reason(reply: Reply, stop: str) -> None:
    got = reply.choices().get(0, {}).get("stop_reason")
    if got != stop:
        raise failure("stop-reason", "stop_reason does not name the matched stop string", f"got {got!r}")


def check_include_usage_chunk(reply: Reply) -> None:
    last = [e for e in reply.events if isinstance(e.get("usage"), dict)]
    if not last or last[-1].get("choices") != []:
        raise failure("usage-chunk", "no final usage chunk with choices: []", f"{len(last)} chunk(s) with usage")


def check_n_choices(reply: Reply, n: int) -> None:
    got = reply.choices()
    if sorted(got) != list(range(n)) or any(c["finish_reason"] is None for c in got.values()):
        raise failure(
            "n-choices",
            f"n={n} did not give {n} indexed choices with finish reasons",
            f"indices {sorted(got)}, finish {[c['finish_reason'] for c in got.values()]}",
        )


def check_stream_error_is_json(reply: Reply) -> None:
    if reply.streamed or not 400 <= reply.status < 500 or not isinstance(reply.body, dict):
        raise failure(
            "stream-error-shape",
            "a stream that fails before its first byte is not a JSON 4xx",
            f"HTTP {reply.status}, {reply.content_type}",
        )


# --- features ----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Verdict:
    """One feature's verdict: a :class:`~harness.reporting.rows.Row`."""

    feature: str
    layer: str  # compat | strict
    status: str  # pass | fail | unsupported | not-checked
    detail: str

    COLUMNS: ClassVar[tuple[str, ...]] = ("feature", "layer", "verdict", "detail")
    SECTION: ClassVar[str | None] = "Engine semantics: {summary}"
    TERMINAL: ClassVar[bool] = True

    def cells(self) -> list[str]:
        return [self.feature, self.layer, self.status.upper(), self.detail]

    def listed(self) -> bool:
        return True

    def junit(self) -> JUnitCase | None:
        skipped = f"{self.status.upper()}: {self.detail}" if self.status in ("unsupported", "not-checked") else None
        failure = self.detail if self.status == "fail" else None
        return JUnitCase(f"check.semantics.{self.layer}", self.feature, failure=failure, skipped=skipped)


Probe = Callable[[Prober], Awaitable[str]]


async def _determinism(p: Prober) -> str:
    alone = [(await p.chat()).text for _ in range(3)]
    check_identical(alone, "across repeats")
    batch = await asyncio.gather(*(p.chat() for _ in range(8)))
    check_identical([alone[0]] + [_ok(r, "batch").text for r in batch], "alone vs inside a batch of 8")
    check_identical([alone[0], (await p.chat(stream=True)).text], "with and without streaming")
    return f"3 repeats, a batch of 8 and a stream agree ({len(alone[0])} characters)"


async def _stream_equals_whole(p: Prober) -> str:
    whole, streamed = _ok(await p.chat(max_tokens=32), "whole"), await p.chat(max_tokens=32, stream=True)
    check_stream_equals_whole(_ok(streamed, "stream"), whole)
    return f"{len(whole.text)} characters alike"


async def _usage_stream_vs_whole(p: Prober) -> str:
    opts: dict[str, Any] = {"stream_options": {"include_usage": True}}
    whole = _ok(await p.chat(max_tokens=32), "whole")
    streamed = _ok(await p.chat(max_tokens=32, stream=True, **opts), "stream with include_usage")
    check_usage_matches(streamed, whole)
    check_include_usage_chunk(streamed)
    return f"usage {whole.usage} in both; the last chunk carries it with choices: []"


async def _max_tokens_exact(p: Prober) -> str:
    reply = _ok(await p.chat(max_tokens=TOKENS, ignore_eos=True), "ignore_eos")
    check_exact_length(reply, TOKENS)
    long = _ok(await p.chat(LONG_PROMPT, max_tokens=8, ignore_eos=True), "a long prompt")
    check_exact_length(long, 8)  # max_tokens never counts the prompt
    prompt = (long.usage or {}).get("prompt_tokens")
    return f"{TOKENS} and 8 tokens exactly, finish 'length' (the long prompt: {prompt} tokens, not counted)"


async def _bad_max_tokens(p: Prober) -> str:
    for value in (0, -1, 10**7):
        check_client_error(await p.chat(max_tokens=value), f"max_tokens={value}")
    return "0, -1 and 10^7 are 4xx"


async def _stop_strings(p: Prober) -> str:
    full = seeded_twice(*[_ok(await p.chat(**SAMPLED), "seeded, ignore_eos").text for _ in range(2)])
    stop = pick_stop(full)
    one = _ok(await p.chat(**SAMPLED, stop=[stop]), "stop")
    check_stopped_at(one, full, stop)
    spanning = await _boundary_stop(p, full)
    if spanning:  # the last character of one token and the first of the next: matched across the boundary
        check_stopped_at(_ok(await p.chat(**SAMPLED, stop=[spanning]), "stop across tokens"), full, spanning)
    other = pick_stop(full[full.find(stop) + len(stop) :], required=False) or stop
    two = _ok(await p.chat(**SAMPLED, stop=[other, stop]), "two stop strings")
    first = min((full.find(s), s) for s in (stop, other) if s in full)[1]
    check_stopped_at(two, full, first)
    streamed = _ok(await p.chat(**SAMPLED, stop=[stop], stream=True), "stop, streamed")
    check_stopped_at(streamed, full, stop)
    across = f", {spanning!r} across a token boundary" if spanning else " (no per-token text: boundary not tried)"
    return f"stop {stop!r} (and two at once) excluded and honoured, streamed too{across}"


async def _boundary_stop(p: Prober, full: str) -> str:
    """Two characters straddling a token boundary of the sampled answer (its tokens from logprobs), whose first
    occurrence in the text is that boundary; "" when the server gives no per-token text."""
    reply = await p.chat(**SAMPLED, logprobs=True)
    content = ((reply.body or {}).get("choices") or [{}])[0].get("logprobs") or {}
    tokens = [str(t.get("token", "")) for t in content.get("content") or []] if reply.status < 400 else []
    at = 0
    for left, right in itertools.pairwise(tokens):
        at += len(left)
        candidate = (left[-1:] + right[:1]) if left and right else ""
        if len(candidate) == 2 and candidate.isprintable() and full.find(candidate) == at - 1:
            return candidate
    return ""


async def _stop_reason(p: Prober) -> str:
    full = seeded_twice(*[_ok(await p.chat(**SAMPLED), "seeded, ignore_eos").text for _ in range(2)])
    stop = pick_stop(full)
    check_stop_reason(_ok(await p.chat(**SAMPLED, stop=[stop]), "stop"), stop)
    return f"stop_reason {stop!r}"


async def _stop_token_ids(p: Prober) -> str:
    full = _ok(await p.chat(**SAMPLED, return_token_ids=True), "return_token_ids")
    ids = (full.body or {}).get("choices", [{}])[0].get("token_ids")
    if not isinstance(ids, list) or len(ids) < 4:
        raise Unsupported("the server returns no token_ids (return_token_ids)")
    k = next((i for i in range(len(ids) // 2, len(ids)) if ids.index(ids[i]) == i), None)
    if k is None:
        raise Unsupported("no token of the answer's second half occurs there first")
    reply = _ok(await p.chat(**SAMPLED, stop_token_ids=[ids[k]]), "stop_token_ids")
    stop_reason = reply.choices().get(0, {}).get("stop_reason")
    done = (reply.usage or {}).get("completion_tokens")
    if reply.finish_reason != "stop" or done is None or done > k + 1 or not full.text.startswith(reply.text):
        raise failure(
            "stop-token-not-honoured",
            f"stop_token_ids [{ids[k]}] (token {k} of the answer) not honoured",
            f"finish_reason {reply.finish_reason!r}, completion_tokens {done}, text {reply.text[:40]!r}",
        )
    if stop_reason != ids[k]:
        raise failure("stop-reason", "stop_reason does not name the stop token", f"got {stop_reason!r}")
    return f"stopped at token {k} ({ids[k]}), stop_reason {stop_reason}"


async def _continuous_usage(p: Prober) -> str:
    opts: dict[str, Any] = {"stream_options": {"include_usage": True, "continuous_usage_stats": True}}
    streamed = _ok(await p.chat(max_tokens=32, stream=True, **opts), "continuous_usage_stats")
    whole = _ok(await p.chat(max_tokens=32), "whole")
    counts = [e["usage"].get("completion_tokens") for e in streamed.events if e.get("choices") and e.get("usage")]
    if not counts:
        raise Unsupported("no per-chunk usage (continuous_usage_stats ignored)")
    final = (streamed.usage or {}).get("completion_tokens")
    climbing = all(a <= b for a, b in itertools.pairwise(counts)) and counts[-1] == final
    if not climbing or final != (whole.usage or {}).get("completion_tokens"):
        raise failure(
            "continuous-usage",
            "per-chunk completion_tokens do not climb to the whole reply's count",
            f"chunks {counts[:8]}..., final {final}, whole {(whole.usage or {}).get('completion_tokens')}",
        )
    return f"{len(counts)} chunks with usage, climbing to {final} = the whole reply's"


def seeded_twice(first: str, second: str) -> str:
    """A stop string is judged against a seeded answer asked again with the stop: meaningful only when that seed
    repeats. When it does not, the stop check cannot tell a stop honoured from a different answer — not checked
    (the seed check fails on its own), never a stop failure of the harness's making."""
    if first != second:
        raise Unanswered("a seeded answer did not repeat (see seed repeats): stop strings cannot be judged against it")
    return first


def pick_stop(text: str, *, required: bool = True) -> str:
    """A stop string the answer contains: two characters from its middle."""
    if len(text) < 4:
        if not required:
            return ""
        raise Unsupported(f"the answer is too short to pick a stop string from ({text!r})")
    mid = len(text) // 2
    return text[mid : mid + 2]


async def _usage_stable(p: Prober) -> str:
    a, b = _ok(await p.chat(), "first"), _ok(await p.chat(), "second")
    pa, pb = (a.usage or {}).get("prompt_tokens"), (b.usage or {}).get("prompt_tokens")
    if pa is None or pa != pb:
        raise failure("prompt-tokens-unstable", "prompt_tokens differ for the same prompt", f"{pa} vs {pb}")
    return f"prompt_tokens {pa} both times"


async def _n_choices(p: Prober) -> str:
    whole = _ok(await p.chat(n=2, temperature=1.0, seed=7), "n=2")
    check_n_choices(whole, 2)
    check_n_choices(_ok(await p.chat(n=2, temperature=1.0, seed=7, stream=True), "n=2 streamed"), 2)
    return "2 indexed choices with finish reasons, whole and streamed"


async def _seed(p: Prober) -> str:
    runs = [_ok(await p.chat(temperature=1.0, seed=1234), "seed").text for _ in range(2)]
    check_identical(runs, "with seed 1234 at temperature 1")
    return "the same seed repeats at temperature 1"


async def _errors_4xx(p: Prober) -> str:
    unknown = await p.chat(model=NO_SUCH_MODEL)
    check_client_error(unknown, "an unknown model")
    check_client_error(await p.chat(temperature=-1.0), "temperature -1")
    check_stream_error_is_json(await p.chat(model=NO_SUCH_MODEL, stream=True))
    return "unknown model and temperature -1 are 4xx; a failing stream answers JSON, not a broken stream"


async def _error_envelope(p: Prober) -> str:
    reply = await p.chat(model=NO_SUCH_MODEL)
    check_error_envelope(reply)
    return f"error type {reply.body['error'].get('type')!r}"


FEATURES: list[tuple[str, str, Probe]] = [
    ("greedy determinism", "compat", _determinism),
    ("streamed = whole", "compat", _stream_equals_whole),
    ("max_tokens exact (ignore_eos), prompt not counted", "compat", _max_tokens_exact),
    ("bad max_tokens are 4xx", "compat", _bad_max_tokens),
    ("stop strings", "compat", _stop_strings),
    ("n > 1 choices", "compat", _n_choices),
    ("seed repeats", "compat", _seed),
    ("errors are 4xx (and JSON before a stream)", "compat", _errors_4xx),
    ("usage: stream = whole, include_usage chunk", "strict", _usage_stream_vs_whole),
    ("usage: prompt_tokens stable", "strict", _usage_stable),
    ("stop_reason names the stop string", "strict", _stop_reason),
    ("stop token ids (vLLM)", "strict", _stop_token_ids),
    ("usage: continuous usage stats (vLLM)", "strict", _continuous_usage),
    ("error envelope (message, type, param, code)", "strict", _error_envelope),
]


async def judge(name: str, layer: str, work: Awaitable[str], unreachable: type[Exception]) -> Verdict:
    """One feature's verdict: pass (with what it saw), fail (its finding), unsupported (refused explicitly), or
    not-checked when the server could not be asked (``unreachable``: the transport's error type)."""
    try:
        return Verdict(name, layer, "pass", await work)
    except Finding as f:
        return Verdict(name, layer, "fail", f"{f.title}: {f.message}")
    except Unsupported as u:
        return Verdict(name, layer, "unsupported", str(u))
    except Unanswered as exc:
        return Verdict(name, layer, "not-checked", str(exc))
    except unreachable as exc:
        return Verdict(name, layer, "not-checked", f"{type(exc).__name__}: {exc}")


_TIMED_OUT = ("RequestTimeout", "StreamStalled")


async def run_semantics(p: Prober) -> list[Verdict]:
    """Every feature in turn; after the first the server did not answer in time, the rest are not asked (each
    would wait its whole deadline too)."""
    verdicts: list[Verdict] = []
    stopped: str | None = None
    for name, layer, probe in FEATURES:
        if stopped:
            verdicts.append(Verdict(name, layer, "not-checked", f"not asked: {stopped} timed out"))
            continue
        verdicts.append(got := await judge(name, layer, probe(p), TransportError))
        if got.status == "not-checked" and got.detail.startswith(_TIMED_OUT):
            stopped = name
    return verdicts


def overall(verdicts: list[Verdict]) -> str:
    ran = [v for v in verdicts if v.status != "not-checked"]
    if not ran:
        return "NOT CHECKED"
    if any(v.layer == "compat" and v.status == "fail" for v in ran):
        return "NOT READY"
    if any(v.status in ("fail", "unsupported") for v in verdicts) or len(ran) < len(verdicts):
        return "READY WITH LIMITATIONS"
    return "READY"
