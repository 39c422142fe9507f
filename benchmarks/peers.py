"""What the peer benchmarks share: peer tools in their own venvs, the ground-truth server, and per-request
errors against its log.

Peers are never project dependencies: each is pip-installed into its own venv under
``$DEVAI_PEERS_DIR`` (default ~/.cache/devai-harness/peers), once, and skipped with the reason when that fails.
GuideLLM and AIPerf need a tokenizer for their synthetic prompts; offline, a tiny word-level one is made here
(``make_tokenizer``), so no hub download is ever attempted.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PEERS_DIR = Path(os.environ.get("DEVAI_PEERS_DIR", Path.home() / ".cache" / "devai-harness" / "peers"))
# torch first where the peer needs it: this machine image holds a CPU build on disk; elsewhere pip takes PyPI's.
PEERS: dict[str, list[list[str]]] = {
    "runpod": [["runpod>=1.12,<1.13"]],
    "guidellm": [["torch==2.13.0"], ["guidellm>=0.8,<0.9"]],
    "aiperf": [["torch==2.13.0"], ["aiperf>=0.13,<0.14"]],
}


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def peer_python(name: str) -> Path | None:
    """The peer's venv python, installing it the first time; None (and why, on stderr) if it cannot be.
    ``name`` is both its PEERS key and its import name."""
    venv = PEERS_DIR / name
    py = venv / "bin" / "python"
    if py.exists() and subprocess.run([py, "-c", f"import {name}"], capture_output=True).returncode == 0:
        return py
    log(f"== installing {name} into {venv} (once; heavy peers take minutes)")
    venv.parent.mkdir(parents=True, exist_ok=True)
    if subprocess.run([sys.executable, "-m", "venv", venv], capture_output=True).returncode != 0:
        log(f"{name}: could not make a venv: its columns are skipped")
        return None
    for reqs in PEERS[name]:
        r = subprocess.run([py, "-m", "pip", "install", "-q", *reqs], capture_output=True, text=True, timeout=1800)
        if r.returncode != 0:
            tail = [ln for ln in r.stderr.splitlines() if not ln.startswith("WARNING")][-3:]
            log(f"{name}: pip install {' '.join(reqs)} failed ({'; '.join(tail)}): its columns are skipped")
            return None
    return py if subprocess.run([py, "-c", f"import {name}"], capture_output=True).returncode == 0 else None


def peer_version(py: Path, dist: str) -> str:
    code = f"import importlib.metadata as m; print(m.version({dist!r}))"
    return subprocess.run([py, "-c", code], capture_output=True, text=True).stdout.strip() or "?"


def installed_version(dist: str) -> str:
    import importlib.metadata

    return importlib.metadata.version(dist)


TOKENIZER = """
import sys
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast
words = ["[UNK]", "[PAD]"] + list("abcdefghijklmnopqrstuvwxyz") + [f"w{i}" for i in range(512)]
tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="[UNK]"))
tok.pre_tokenizer = pre_tokenizers.Whitespace()
PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]").save_pretrained(sys.argv[1])
"""


def make_tokenizer(py: Path) -> Path:
    """A word-level tokenizer (made here, not downloaded) for the peers' synthetic prompts."""
    out = PEERS_DIR / "tokenizer"
    if not (out / "tokenizer.json").exists():
        subprocess.run([py, "-c", TOKENIZER, out], check=True, capture_output=True, timeout=300)
    return out


def commit() -> str:
    r = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    return r.stdout.strip() or "?"


def machine() -> dict[str, Any]:
    """Where and on what a result was measured: recorded with every result file."""
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        lines = Path("/proc/cpuinfo").read_text().splitlines()
        names = [ln.split(":", 1)[1].strip() for ln in lines if ln.startswith("model name")]
        cpu = names[0] if names else cpu
    return {
        "date": time.strftime("%Y-%m-%d"),
        "commit": commit(),
        "python": platform.python_version(),
        "cores": os.cpu_count(),
        "cpu": cpu,
    }


# --- the ground-truth server ---------------------------------------------------------------------------------


@contextlib.contextmanager
def truth_server(*, cpu: int | None = 0, **timing: float) -> Iterator[str]:
    """benchmarks/truthserver.py in its own process (pinned to ``cpu``); yields its base URL (no /v1)."""
    args = [sys.executable, str(ROOT / "benchmarks" / "truthserver.py")]
    args += [f"--{k}={v}" for k, v in timing.items()]
    if cpu is not None and (os.cpu_count() or 1) > 1:
        args.append(f"--cpu={cpu}")
    with subprocess.Popen(args, stdout=subprocess.PIPE, text=True) as proc:
        try:
            assert proc.stdout is not None
            url = proc.stdout.readline().strip()
            if not url.startswith("http"):
                raise RuntimeError("the truth server did not start")
            yield url
        finally:
            proc.terminate()
            proc.wait(10)


def truth_log(url: str, *, reset: bool = False) -> list[list[Any]]:
    with urllib.request.urlopen(f"{url}/_log", timeout=30) as r:
        entries: list[list[Any]] = json.load(r)
    if reset:
        urllib.request.urlopen(urllib.request.Request(f"{url}/_reset", method="POST"), timeout=30).close()
    return entries


# --- errors against the truth ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Seen:
    """One request as a tool reported it: its key in the server's log, and its durations (s)."""

    key: str  # the server's completion id, or the client's X-Request-ID
    ttft: float | None
    e2e: float


def p99(xs: list[float]) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, round(0.99 * (len(xs) - 1)))]


def errors(seen: list[Seen], entries: list[list[Any]], *, skip_s: float = 0.0) -> dict[str, Any]:
    """Tool duration minus the server's (first token written - first request byte in; last write - first byte in),
    matched per request. A perfect client is off by the loopback round trip (~0.1 ms), nothing more.
    ``skip_s``: leave out requests that arrived in the level's first seconds (connections, ramp-up)."""
    by_key: dict[str, list[Any]] = {}
    for e in entries:
        by_key[e[0]] = e
        if e[1]:
            by_key[e[1]] = e
    pairs = [(s, by_key[s.key]) for s in seen if s.key in by_key and by_key[s.key][4] is not None]
    unmatched = len(seen) - len(pairs)
    if pairs and skip_s:
        t0 = min(e[2] for _, e in pairs)
        pairs = [(s, e) for s, e in pairs if e[2] >= t0 + skip_s]
    ttft = [s.ttft - (e[3] - e[2]) for s, e in pairs if s.ttft is not None]
    e2e = [s.e2e - (e[4] - e[2]) for s, e in pairs]
    out: dict[str, Any] = {"requests": len(pairs), "unmatched": unmatched}
    if len(pairs) > 1:
        span = max(e[2] for _, e in pairs) - min(e[2] for _, e in pairs)
        out["requests_per_s"] = (len(pairs) - 1) / span if span > 0 else None
    for name, xs in (("ttft_error_ms", ttft), ("e2e_error_ms", e2e)):
        if xs:
            out[name] = {
                "median": statistics.median(xs) * 1000,
                "p99": p99(xs) * 1000,
                "max_abs": max(abs(x) for x in xs) * 1000,
            }
    return out


# --- peers' own records ------------------------------------------------------------------------------------------


def guidellm_seen(report: Path) -> list[list[Seen]]:
    """Per benchmark (one per concurrency level), GuideLLM's completed requests."""
    out = []
    for bench in json.loads(report.read_text())["benchmarks"]:
        rows = bench["requests"]["successful"]
        out.append(
            [
                Seen(
                    r["response_id"],
                    r["time_to_first_token_ms"] / 1000 if r.get("time_to_first_token_ms") is not None else None,
                    r["request_latency"],
                )
                for r in rows
                if r.get("response_id")
            ]
        )
    return out


def aiperf_seen(records: Path, *, streaming: bool) -> list[Seen]:
    out = []
    for line in records.read_text().splitlines():
        r = json.loads(line)
        m, md = r.get("metrics") or {}, r["metadata"]
        if "request_latency" not in m or md.get("benchmark_phase", "profiling") != "profiling":
            continue
        ttft = m["time_to_first_token"]["value"] / 1000 if streaming and "time_to_first_token" in m else None
        out.append(Seen(md["x_request_id"], ttft, m["request_latency"]["value"] / 1000))
    return out


def run_guidellm(
    py: Path,
    url: str,
    out: Path,
    *,
    streams: list[int],
    stream: bool,
    count: int = 0,
    seconds: float = 0,
    pin: list[str] | None = None,
    model: str = "truth",
    output_tokens: int = 16,
) -> list[list[Seen]]:
    """One GuideLLM run sweeping ``streams`` concurrency levels (its own --override), each bounded by count or time."""
    tok = make_tokenizer(py)
    limit = f"kind=max_requests,count={count}" if count else f"kind=max_duration,seconds={seconds:g}"
    cmd = [
        *(pin or []),
        str(py.parent / "guidellm"),
        "run",
        "--backend",
        f"kind=openai_http,target={url},model={model},request_format=/v1/chat/completions,stream={str(stream).lower()}",
        "--profile",
        f"kind=concurrent,streams={streams[0]}",
        "--override",
        "profile.streams",
        ",".join(map(str, streams)),
        "--constraint",
        limit,
        "--data",
        f"kind=synthetic_text,prompt_tokens=8,output_tokens={output_tokens}",
        "--tokenizer",
        f"kind=huggingface_auto,model={tok}",
        "--output",
        f"kind=json,path={out}",
        "--disable-console",
    ]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    if r.returncode != 0 or not out.exists():
        raise RuntimeError(f"guidellm failed: {(r.stderr or r.stdout)[-800:]}")
    return guidellm_seen(out)


def run_aiperf(
    py: Path,
    url: str,
    out: Path,
    *,
    concurrency: list[int],
    stream: bool,
    count: int = 0,
    seconds: float = 0,
    pin: list[str] | None = None,
    model: str = "truth",
    output_tokens: int = 16,
) -> list[list[Seen]]:
    """One AIPerf run sweeping ``concurrency`` levels (its own comma-list sweep), each bounded by count or time."""
    tok = make_tokenizer(py)
    cmd = [*(pin or []), str(py.parent / "aiperf"), "profile", "--model", model, "--url", url]
    cmd += ["--endpoint-type", "chat", "--concurrency", ",".join(map(str, concurrency)), "--ui-type", "none"]
    cmd += ["--tokenizer", str(tok), "--synthetic-input-tokens-mean", "8", "--output-tokens-mean", str(output_tokens)]
    cmd += ["--output-artifact-dir", str(out)]
    cmd += ["--request-count", str(count)] if count else ["--benchmark-duration", f"{seconds:g}"]
    cmd += ["--streaming"] if stream else []
    # No HF_HUB_OFFLINE here: under it AIPerf 0.13 treats a local tokenizer path as a hub repo id and fails.
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    files = [out / f"concurrency_{c}" / "profile_export.jsonl" for c in concurrency]
    if len(concurrency) == 1:
        files = [out / "profile_export.jsonl"]
    if r.returncode != 0 or not all(f.exists() for f in files):
        raise RuntimeError(f"aiperf failed: {(r.stderr or r.stdout)[-800:]}")
    return [aiperf_seen(f, streaming=stream) for f in files]


def pin_to(cpu: int) -> list[str]:
    """A command prefix that pins a tool (and every process it starts) to one core, where taskset exists."""
    return ["taskset", "-c", str(cpu)] if shutil.which("taskset") and (os.cpu_count() or 1) > 1 else []


def run_locust(
    locustfile: Path, user: str, host: str, *, users: int, seconds: float, env: dict[str, str], extra: list[str]
) -> None:
    """A headless locust run with all users started in the first second, pinned to core 1."""
    cmd = [*pin_to(1), sys.executable, "-m", "locust", "-f", str(locustfile), user, "--headless", "--only-summary"]
    cmd += ["-u", str(users), "-r", str(users), "-t", f"{seconds:g}s", "--host", host, "--loglevel", "ERROR", *extra]
    r = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, **env}, timeout=seconds + 120)
    if r.returncode not in (0, 1):  # 1: some requests failed; those simply do not match the log
        raise RuntimeError(f"locust failed: {r.stderr[-800:]}")


def ours_seen(run_dir: Path) -> list[Seen]:
    from harness.load.records import load_records

    return [Seen(r.request_id, r.ttft_s, r.e2e_s) for r in load_records(run_dir) if r.request_id and r.e2e_s]


def plain_seen(out: Path) -> list[Seen]:
    rows = [json.loads(ln) for f in sorted(out.glob("plain-*.jsonl")) for ln in f.read_text().splitlines() if ln]
    return [Seen(r["id"], r["ttft"], r["e2e"]) for r in rows if r["id"]]
