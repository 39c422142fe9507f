"""harness.load.http + the sync OpenAI driver: the locust users' HTTP layer (geventhttpclient) keeps the async
client's error contract — typed errors, no secret in any message, stalls named — and the OpenAI locust users
record what they should, under real headless locust."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.core.errors import ConnectError, StatusError, StreamStalled
from harness.emulator.mockopenai import MockConfig, create_mock_openai
from harness.emulator.serving import BackgroundServer
from harness.load.driver import SyncOpenAI
from harness.load.records import load_records
from harness.load.report import build_report

LOCUST = [sys.executable, "-m", "locust"]
ROOT = Path(__file__).parent.parent
KEY = "sk-test-not-a-real-key-0123456789"
MESSAGES = [{"role": "user", "content": "hi"}]


@pytest.fixture(scope="module")
def mock_url() -> Iterator[str]:
    with BackgroundServer(create_mock_openai(MockConfig(ttft_s=0.01, itl_s=0.0, stall_after=1, stall_s=2.0))) as srv:
        yield f"{srv.url}/v1"


def test_stream_and_chat_agree_on_the_answer_and_ids(mock_url: str) -> None:
    oa = SyncOpenAI(mock_url, KEY)
    try:
        s = oa.chat_stream(MESSAGES, model="normal", max_tokens=64).timing
        c = oa.chat(MESSAGES, model="normal", max_tokens=64).timing
    finally:
        oa.close()
    assert s.output_tokens == c.output_tokens and s.output_tokens
    assert s.ttft is not None and s.e2e is not None and 0.01 <= s.ttft <= s.e2e
    assert c.ttft is None and c.tpot is None and c.e2e and c.output_tokens_per_s  # a whole reply has no TTFT
    assert s.request_id and c.request_id and s.request_id != c.request_id


def test_a_stall_longer_than_the_timeout_is_named(mock_url: str) -> None:
    oa = SyncOpenAI(mock_url, KEY, stall_timeout_s=0.5)
    try:
        with pytest.raises(StreamStalled):
            oa.chat_stream(MESSAGES, model="stall", max_tokens=64)
    finally:
        oa.close()


def test_http_errors_are_typed_and_never_carry_the_key(mock_url: str) -> None:
    oa = SyncOpenAI(mock_url, KEY)
    try:
        with pytest.raises(StatusError) as err:
            oa.chat_stream(MESSAGES, model="loading-503", max_tokens=8)
    finally:
        oa.close()
    assert err.value.status_code == 503 and KEY not in str(err.value)


def test_a_refused_connection_is_a_connect_error() -> None:
    with socket.socket() as s:  # a port that was free a moment ago: nothing listens there
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    oa = SyncOpenAI(f"http://127.0.0.1:{port}/v1", KEY)
    try:
        with pytest.raises(ConnectError) as err:
            oa.chat(MESSAGES, model="normal", max_tokens=8)
    finally:
        oa.close()
    assert KEY not in str(err.value)


@pytest.mark.slow
@pytest.mark.parametrize("locustfile", ["streaming.py", "chat.py"])
def test_openai_users_record_ttft_gaps_and_the_servers_id(tmp_path: Path, locustfile: str) -> None:
    from harness.emulator.mockopenai import MockConfig, create_mock_openai
    from harness.emulator.serving import BackgroundServer

    with BackgroundServer(create_mock_openai(MockConfig(ttft_s=0.05, itl_s=0.01))) as srv:
        cmd = [
            *LOCUST,
            "-f",
            str(ROOT / "locustfiles" / locustfile),
            "--headless",
            "--host",
            f"{srv.url}/v1",
            "--model",
            "normal",
            "-u",
            "4",
            "-r",
            "4",
            "-t",
            "4s",
            "--run-dir",
            str(tmp_path),
            "--only-summary",
            "--skip-log-setup",
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)
        streamed = {rid for rid, _, _ in srv.app.state.sent}
    assert proc.returncode == 0, proc.stderr[-1500:]
    records = [r for r in load_records(tmp_path) if r.status != "cut"]  # cut: in flight at -t
    assert len(records) >= 8 and all(r.status == "ok" for r in records)
    ids = [r.request_id for r in records]  # the server's own id: a slow request can be found in its logs
    assert len(set(ids)) == len(ids) and all(i and i.startswith("chatcmpl-") for i in ids)
    if locustfile == "chat.py":  # a whole reply: e2e and tokens, no TTFT and no gaps (never faked as e2e)
        assert all(r.ttft_s is None and r.e2e_s and r.e2e_s >= 0.05 and r.output_tokens for r in records)
        assert not any(r.gaps_s for r in records)
        return
    assert all(r.ttft_s is not None and r.ttft_s >= 0.05 for r in records)
    assert set(ids) <= streamed
    assert all(len(r.gaps_s) == (r.output_tokens or 0) - 1 for r in records)  # one gap per token after the first
    s = json.loads(build_report(tmp_path)["json"].read_text())["phases"]["stream"]
    assert s["ttft_s"]["count"] == len(records) and s["icl_aiperf_s"]["count"] > 0
