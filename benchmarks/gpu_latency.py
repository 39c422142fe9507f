"""Cold, warm and hot latency of the reference worker with the transformers engine, on the GPU it runs on.

Starts the emulator (min 0 workers, max 1, short idle timeout, no simulated cold start: the worker's real
cold start is importing torch, reading the weights from disk, moving them to the GPU, compiling and the first
token) and runs locustfiles/latency.py against it; then TTFT and decode tokens/s at several concurrencies
through the /openai/v1 route. Results (JSON + the HTML report) go to --out with the device, driver, torch and
transformers versions and the date. The model is Qwen2.5-Coder-7B's architecture with RANDOM weights: real
compute and memory traffic, meaningless text — every result says so.

    python benchmarks/gpu_latency.py                      # on a GPU machine (the device tool)
    python benchmarks/gpu_latency.py --tiny --out /tmp/x  # the same path on CPU, a tiny model, seconds
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

HBM_TB_S = {"H100": 3.35, "H200": 4.8}  # SXM peak bandwidth
PUBLISHED = {
    "vLLM Qwen3-8B on H100, c=4": {"ttft_ms": 64, "tok_s_per_stream": 135},
    "field reports (RunPod)": {"cold_s": "6-10"},
}


def environment() -> dict[str, Any]:
    import torch
    import transformers

    info: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "python": sys.version.split()[0],
    }
    if torch.cuda.is_available():
        info["device"] = torch.cuda.get_device_name(0)
        try:
            info["driver"] = subprocess.run(
                ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                capture_output=True,
                text=True,
                timeout=30,
            ).stdout.strip()
        except (OSError, subprocess.TimeoutExpired):
            info["driver"] = "unknown"
    else:
        info["device"] = "cpu"
    return info


def prebuild(config: str, cache: str) -> dict[str, Any]:
    """Build and save the random model once, outside the timed cold start; free it again."""
    import torch

    from harness.emulator.torchengine import TransformersEngine

    engine = TransformersEngine(config=config, cache_dir=cache, compile=False)
    report = dict(engine.load_report)
    size = sum(p.numel() * p.element_size() for p in engine.model.parameters())
    del engine
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    return {"model_dir": report["model_dir"], "weight_bytes": size}


async def streams(url: str, key: str, concurrency: int, max_tokens: int) -> dict[str, Any]:
    from harness.clients.openai import OpenAIClient

    async with OpenAIClient(url, key, stall_timeout_s=600) as oa:

        async def one() -> Any:
            return await oa.chat([{"role": "user", "content": "def reverse(s):"}], model="x", max_tokens=max_tokens)

        done = await asyncio.gather(*(one() for _ in range(concurrency)))
    ttft = [c.timing.ttft * 1000 for c in done if c.timing.ttft is not None]
    decode = [
        (c.timing.output_tokens - 1) / (c.timing.e2e - c.timing.ttft)
        for c in done
        if c.timing.output_tokens and c.timing.ttft is not None and c.timing.e2e and c.timing.e2e > c.timing.ttft
    ]
    return {
        "concurrency": concurrency,
        "ttft_ms_median": statistics.median(ttft),
        "decode_tok_s_per_stream_median": statistics.median(decode),
        "streams": len(done),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tiny", action="store_true", help="tiny config (CPU smoke test of this script)")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "gpu"))
    ap.add_argument("--cache", default=os.environ.get("DEVAI_MODEL_CACHE", "/tmp/devai-models"))
    ap.add_argument("--idle-timeout", type=float, default=3.0)
    ap.add_argument("--concurrency", default="1,4,8")
    ap.add_argument("--max-tokens", type=int, default=128)
    args = ap.parse_args()
    config = "tiny" if args.tiny else "qwen2.5-coder-7b"
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for old in [*out.glob("records-*.jsonl"), *out.glob("process-*.json")]:
        old.unlink()
    from harness.emulator import Emulator
    from harness.emulator.torchengine import RANDOM_WEIGHTS_NOTE
    from harness.load.report import build_report

    t0 = time.perf_counter()  # workers run in this process, which imports torch once; a container pays it per start
    subprocess.run([sys.executable, "-c", "import torch, transformers"], check=True, timeout=600)
    fresh_import_s = time.perf_counter() - t0
    env = environment()
    print(f"device {env['device']}; building the random {config} model (not timed)", flush=True)
    model = prebuild(config, args.cache)
    worker = {"engine": "transformers", "config": config, "cache_dir": args.cache}
    results: dict[str, Any] = {
        "note": RANDOM_WEIGHTS_NOTE,
        "environment": env,
        "model": model,
        "config": config,
        "import_torch_transformers_fresh_process_s": fresh_import_s,
        "batching": "none: one job at a time per engine; higher concurrency queues",
    }
    with Emulator(
        cold_start=0.0,
        min_workers=0,
        max_workers=1,
        concurrency=8,
        idle_timeout_s=args.idle_timeout,
        flashboot=False,
        idle_pickup_s=0,  # the real engine's own warm-up, not the emulator's pickup model
        worker=worker,
    ) as emu:
        lenv = {**os.environ, "RUNPOD_API_KEY": emu.api_key}
        cmd = [
            sys.executable,
            "-m",
            "locust",
            "-f",
            str(ROOT / "locustfiles" / "latency.py"),
            "--headless",
            "--host",
            emu.base_url,
            "--endpoint-id",
            emu.endpoint_id,
            "--idle-timeout",
            str(args.idle_timeout),
            "--rounds",
            "1",
            "--run-dir",
            str(out),
            "--only-summary",
            "--skip-log-setup",
            "-t",
            "20m",
        ]
        print("latency phases (locust)...", flush=True)
        subprocess.run(cmd, env=lenv, check=True, timeout=1800)
        loads = [line for w in emu.state()["workers"] for line in w["logs"] if line.startswith("engine load")]
        results["cold_start_pieces"] = loads
        results["concurrency"] = []
        for c in [int(x) for x in args.concurrency.split(",")]:
            print(f"streams at concurrency {c}...", flush=True)
            results["concurrency"].append(
                asyncio.run(streams(f"{emu.endpoint_url}/openai/v1", emu.api_key, c, args.max_tokens))
            )
    paths = build_report(out, idle_timeout_s=args.idle_timeout)
    report = json.loads(paths["json"].read_text())
    results["phases"] = {
        p: {
            "e2e_ms_p50": (s["e2e_s"]["p50"] or 0) * 1000,
            "delay_ms_p50": s["delay_ms"]["p50"],
            "requests": s["requests"],
        }
        for p, s in report["phases"].items()
    }
    gpu = next((k for k in HBM_TB_S if k in str(env.get("device", ""))), None)
    floor = HBM_TB_S[gpu] * 1e12 / model["weight_bytes"] if gpu else None
    results["hbm_floor_tok_s_per_stream"] = floor
    results["published"] = PUBLISHED
    (out / "gpu_latency.json").write_text(json.dumps(results, indent=2, default=str))
    print(f"\n{RANDOM_WEIGHTS_NOTE}\n{env['device']} torch {env['torch']} transformers {env['transformers']}")
    for p, s in results["phases"].items():
        print(f"  {p:4s} e2e p50 {s['e2e_ms_p50']:9.0f} ms   delayTime p50 {s['delay_ms_p50']} ms   n={s['requests']}")
    for row in results["concurrency"]:
        ratio = f"   {row['decode_tok_s_per_stream_median'] / floor:.0%} of the HBM floor" if floor else ""
        print(
            f"  c={row['concurrency']}: TTFT {row['ttft_ms_median']:.0f} ms, decode "
            f"{row['decode_tok_s_per_stream_median']:.1f} tok/s per stream{ratio}"
        )
    print(
        f"  cold start pieces: import {fresh_import_s:.1f} s (fresh process); {'; '.join(results['cold_start_pieces'])}"
    )
    print("  published: vLLM Qwen3-8B H100 c=4 ~135 tok/s/stream, TTFT ~64 ms; field cold starts 6-10 s")
    print(f"wrote {out / 'gpu_latency.json'} and {paths['html']}")


if __name__ == "__main__":
    main()
