"""The benchmarks' ground truth is an instrument: check that it stamps what it says, and that a tool's error is
computed against the right request."""

from __future__ import annotations

import struct
import sys
import time
from pathlib import Path

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
import peers


def test_errors_match_by_server_or_client_id_and_skip_the_ramp() -> None:
    log = [
        ["chatcmpl-a", None, 10.0, 10.05, 10.2],
        ["chatcmpl-b", "client-b", 12.0, 12.05, 12.2],
        ["chatcmpl-c", None, 10.5, 10.55, None],  # never finished: cannot be judged
    ]
    seen = [
        peers.Seen("chatcmpl-a", 0.051, 0.203),  # 1 ms late on TTFT, 3 ms on e2e
        peers.Seen("client-b", 0.060, 0.190),  # matched by the client's X-Request-ID; 10 ms late, 10 ms early
        peers.Seen("chatcmpl-c", 0.05, 0.2),
        peers.Seen("nobody", 0.05, 0.2),
    ]
    out = peers.errors(seen, log)
    assert out["requests"] == 2
    assert out["unmatched"] == 2
    assert out["ttft_error_ms"]["median"] == pytest.approx(5.5)
    assert out["e2e_error_ms"]["max_abs"] == pytest.approx(10.0)
    assert out["requests_per_s"] == pytest.approx(0.5)
    skipped = peers.errors(seen, log, skip_s=1.0)  # a arrived in the first second of the level
    assert skipped["requests"] == 1
    assert skipped["ttft_error_ms"]["median"] == pytest.approx(10.0)


@pytest.mark.slow
def test_truth_server_stamps_arrival_first_token_and_last_write() -> None:
    with peers.truth_server(cpu=None, ttft=0.05, itl=0.01, tokens=4, latency=0.02) as url:
        body = {"model": "truth", "messages": [], "stream": True, "stream_options": {"include_usage": True}}
        t0 = time.perf_counter()
        with httpx.stream("POST", f"{url}/v1/chat/completions", json=body, headers={"X-Request-ID": "mine"}) as r:
            lines = [ln for ln in r.iter_lines() if ln.startswith("data: ")]
            rid = r.headers["x-request-id"]
        t1 = time.perf_counter()
        plain = httpx.post(f"{url}/v1/chat/completions", json={"model": "truth", "messages": []}).json()
        log = peers.truth_log(url, reset=True)
        assert peers.truth_log(url) == []
    assert lines[-1] == "data: [DONE]"
    assert '"role": "assistant", "content": " w0"' in lines[0]  # the first chunk carries the first token
    assert '"usage"' in lines[-2]
    (srid, client, arrival, first, last), (prid, _, p_in, p_first, p_last) = log
    assert (srid, client, prid) == (rid, "mine", plain["id"])
    assert t0 < arrival < first < last < t1  # one clock (CLOCK_MONOTONIC) for server and client
    assert first - arrival >= 0.05
    assert last - first >= 3 * 0.01
    assert p_first == p_last
    assert p_last - p_in >= 0.02


def _packet(ts: float, sport: int, dport: int, payload: bytes) -> bytes:
    tcp = struct.pack("!HHIIBBHHH", sport, dport, 1, 0, 5 << 4, 0x18, 65535, 0, 0)
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp) + len(payload), 0, 0, 64, 6, 0, bytes(4), bytes(4))
    frame = bytes(12) + b"\x08\x00" + ip + tcp + payload
    sec = int(ts)
    return struct.pack("<IIII", sec, round((ts - sec) * 1e9), len(frame), len(frame)) + frame


def test_wire_truth_reads_a_pcap_into_request_times(tmp_path: Path) -> None:
    """The wire benchmark's instrument: a loopback capture (made here, nanosecond pcap) -> per request its first
    request byte, first non-empty content, last byte, keyed by the completion id and the client's X-Request-ID."""
    import wire_truth

    chunk = b'data: {"id":"chatcmpl-7","choices":[{"delta":{"content":"%s"}}]}\n\n'
    packets = [
        _packet(1.000, 5000, 8811, b"POST /v1/chat/completions HTTP/1.1\r\nX-Request-ID: abc\r\n\r\n{}"),
        _packet(1.010, 8811, 5000, b"HTTP/1.1 200 OK\r\n\r\n" + chunk % b""),  # role chunk: no content yet
        _packet(1.050, 8811, 5000, chunk % b"Hi"),
        _packet(1.090, 8811, 5000, b"data: [DONE]\n\n0\r\n\r\n"),
        _packet(1.095, 7000, 9999, b"POST / HTTP/1.1\r\n\r\n"),  # another server: not ours
    ]
    pcap = tmp_path / "lo.pcap"
    pcap.write_bytes(struct.pack("<IHHiIII", 0xA1B23C4D, 2, 4, 0, 0, 512, 1) + b"".join(packets))
    (row,) = wire_truth.wire_requests(pcap, 8811)
    assert row[0] == "chatcmpl-7" and row[1] == "abc"
    assert row[2:] == [pytest.approx(1.0), pytest.approx(1.05), pytest.approx(1.09)]
