"""The packet clock (harness.load.packetclock): request times from the kernel's packet timestamps hold when the
load generator is starved. The server is benchmarks/truthserver.py in its own process (it logs, on
CLOCK_MONOTONIC, when each request arrived and when it wrote the first token and the last byte); the load driver
is starved by a greenlet that holds its loop for 150 ms while the answer streams in. Needs a packet socket
(CAP_NET_RAW, e.g. root, as in CI); elsewhere these tests skip, saying why."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import gevent
import pytest

from harness.load.driver import SyncOpenAI
from harness.load.packetclock import PacketClock, _Flow

ROOT = Path(__file__).parent.parent
ASK = [{"role": "user", "content": "hi"}]


def test_flow_offsets_to_packet_times_and_sequence_wrap() -> None:
    flow = _Flow(1, 2, rx_base=2**32 - 5)
    flow.rx.extend([(10, 1.0), (25, 2.0), (40, 3.0)])
    assert flow.at(flow.rx, 0) == 1.0 and flow.at(flow.rx, 9) == 1.0 and flow.at(flow.rx, 10) == 2.0
    assert flow.at(flow.rx, 39) == 3.0 and flow.at(flow.rx, 40) is None  # not arrived (or not seen): no time


@pytest.fixture(scope="module")
def clock() -> Iterator[PacketClock]:
    opened = PacketClock.open()
    if opened is None:
        pytest.skip(f"the packet clock cannot run here: {PacketClock.why_not}")
    yield opened
    opened.close()


@pytest.fixture(scope="module")
def truth() -> Iterator[str]:
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "benchmarks" / "truthserver.py"), "--port", "0"],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    url = proc.stdout.readline().strip()
    yield url
    proc.terminate()
    proc.wait(10)
    proc.stdout.close()


def _hog(seconds: float) -> None:
    """Hold the gevent loop: no greenlet runs, no socket is read (a starved load generator)."""
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


def _server_log(url: str) -> dict[str, list[float]]:
    with urllib.request.urlopen(f"{url}/_log", timeout=10) as reply:
        log = {row[0]: row for row in json.load(reply)}
    urllib.request.urlopen(urllib.request.Request(f"{url}/_reset", method="POST"), timeout=10).close()
    return log


def _errors(url: str, packet_clock: PacketClock | None, stream: bool) -> list[tuple[float, float]]:
    """(TTFT error, e2e error) in ms against the server's log, each request starved for 150 ms mid-answer."""
    oa = SyncOpenAI(f"{url}/v1", packet_clock=packet_clock)
    seen = []
    for _ in range(4):
        hog = gevent.spawn_later(0.02, _hog, 0.15)
        c = oa.chat_stream(ASK, model="truth", max_tokens=16) if stream else oa.chat(ASK, model="truth")
        hog.join()
        seen.append(c.timing)
    oa.close()
    log = _server_log(url)
    out = []
    for t in seen:
        _, _, arrived, first, last = log[t.request_id or ""]
        ttft = (t.ttft - (first - arrived)) * 1000 if t.ttft is not None else 0.0
        out.append((ttft, ((t.e2e or 0) - (last - arrived)) * 1000))
    return out


def test_stream_times_hold_when_the_client_is_starved(clock: PacketClock, truth: str) -> None:
    client = _errors(truth, None, stream=True)
    assert min(ttft for ttft, _ in client) > 50  # the starvation is real: the client's own clock is late
    before = clock.fallbacks
    packets = _errors(truth, clock, stream=True)
    # 5 ms: the server's own stamps are taken by Python and run late by a few ms when the suite loads the machine
    assert all(abs(ttft) < 5 and abs(e2e) < 5 for ttft, e2e in packets), packets
    assert clock.fallbacks == before and clock.dropped() == 0


def test_whole_reply_times_from_packets(clock: PacketClock, truth: str) -> None:
    packets = _errors(truth, clock, stream=False)
    assert all(abs(e2e) < 5 for _, e2e in packets), packets
