"""The ``devai-harness`` command line."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from harness.clients.runpod import RunPodClient
from harness.conformance.probe import ERA_CASES, LatencyRow, ProbeRow, latency_probe, probe_case
from harness.conformance.results import text_table
from harness.core import __version__
from harness.core.errors import HarnessError, ShapeError, WorkerError
from harness.core.shapes import extract
from harness.load.phases import LATENCY_POLL

__all__ = ["main"]


def _cmd_shapes(args: argparse.Namespace) -> int:
    """Recognise a saved job or output (a JSON file, or - for stdin) and print what was extracted."""
    try:
        raw = sys.stdin.read() if args.file == "-" else Path(args.file).read_text(encoding="utf-8")
    except OSError as exc:
        print(f"cannot read {args.file}: {exc.strerror}", file=sys.stderr)
        return 2
    try:
        value: Any = json.loads(raw)
    except ValueError as exc:
        print(f"not JSON: {exc}", file=sys.stderr)
        return 2
    try:
        got = extract(value)
    except WorkerError as exc:
        print(f"worker error: {exc}")
        return 1
    except ShapeError as exc:
        print(f"unknown shape: {exc}")
        return 1
    usage = f"{got.usage.input_tokens}/{got.usage.output_tokens} ({got.usage.convention})" if got.usage else "none"
    print(f"shape: {got.shape}\nchoices: {len(got.choices)}\nfinish_reason: {got.finish_reason}\nusage: {usage}")
    for finding in got.findings:
        print(f"finding: {finding}")
    print("text:\n" + got.text)
    return 0


def _progress(enabled: bool) -> Callable[[str], None]:
    def show(message: str) -> None:
        if enabled:
            print(f"  .. {message}", file=sys.stderr, flush=True)

    return show


def _ms(v: float | None) -> str:
    return "-" if v is None else f"{v:.0f}"


SUITE_MODULES = ("scenarios/test_devai_tasks.py", "scenarios/test_protocol.py", "scenarios/test_faults.py")


def _run_suite(target: str, run_dir: Path, show: Callable[[str], None]) -> tuple[str, bool]:
    """The conformance suite in a pytest subprocess; (its closing line, passed)."""
    import subprocess

    if not all(Path(m).is_file() for m in SUITE_MODULES):
        return "skipped: run from the repository root to include scenarios/", True
    show(f"suite: {len(SUITE_MODULES)} scenario modules on target {target} (pytest)")
    cmd = [
        sys.executable,
        "-m",
        "pytest",
        *SUITE_MODULES,
        "--target",
        target,
        "-q",
        "-p",
        "no:cacheprovider",
        "--harness-report",
        str(run_dir / "suite"),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    (run_dir / "suite.log").write_text(proc.stdout + proc.stderr, encoding="utf-8")
    lines = [line.strip("= ") for line in proc.stdout.splitlines() if line.strip()]
    return (lines[-1] if lines else "no output"), proc.returncode == 0


async def _check_emulator(
    args: argparse.Namespace, show: Callable[[str], None], run_dir: Path
) -> tuple[list[ProbeRow], list[LatencyRow]]:
    from harness.emulator import Emulator, load_config

    base = load_config(args.config)
    rows = []
    for i, (label, options, job_input, expected) in enumerate(ERA_CASES, 1):
        show(f"era {i}/{len(ERA_CASES)}: {label}")
        with Emulator(base, cold_start=0.0, worker={**base.worker, **options}) as emu:
            async with RunPodClient.of(emu) as rp:
                rows.append(await probe_case(rp, label, job_input, expected, timeout=args.timeout))
    pickup = base.idle_pickup_s or 0.3  # seed 000: warm requests wait longer than hot ones; modelled
    show(
        f"latency: cold start {base.cold_start.seconds:g} s, idle timeout {base.idle_timeout_s:g} s, "
        f"warm pickup {pickup:g} s (modelled)"
    )
    with Emulator(base, idle_pickup_s=pickup) as emu:
        async with RunPodClient.of(emu, poll=LATENCY_POLL) as rp:
            latency = await latency_probe(
                rp, idle_timeout_s=base.idle_timeout_s, timeout=args.timeout, run_dir=run_dir, progress=show
            )
    return rows, latency


async def _check_runpod(
    args: argparse.Namespace, show: Callable[[str], None], run_dir: Path
) -> tuple[list[ProbeRow], list[LatencyRow]]:
    rows = []
    async with RunPodClient.from_env(poll=LATENCY_POLL) as rp:
        for label, job_input in (("native chat", ERA_CASES[0][2]), ("openai route chat", ERA_CASES[5][2])):
            show(f"live: {label}")
            rows.append(await probe_case(rp, label, job_input, None, timeout=args.timeout))
        latency = await latency_probe(
            rp, idle_timeout_s=args.idle_timeout, timeout=args.timeout, run_dir=run_dir, progress=show
        )
    return rows, latency


def _cmd_check(args: argparse.Namespace) -> int:
    """The main job: the conformance suite, every output era through the client, then cold, hot and warm
    latency, with a report (JSON, CSV, JUnit, HTML with plots) in the run directory."""
    from harness.load.report import build_report

    show = _progress(not args.quiet)
    run_dir = Path(args.run_dir or f"runs/check-{time.strftime('%Y%m%d-%H%M%S')}")
    run_dir.mkdir(parents=True, exist_ok=True)
    stale = list(run_dir.glob("records-*.jsonl"))
    for old in stale:  # a report mixing two runs would lie
        old.unlink()
    if stale:
        print(f"note: removed {len(stale)} records file(s) of an earlier run in {run_dir}")
    where = "embedded emulator (127.0.0.1)" if args.target == "emulator" else "RunPod (RUNPOD_ENDPOINT_ID)"
    print(f"devai-harness check against the {where}; results in {run_dir}")
    suite_line, suite_ok = ("not run (--no-suite)", True)
    if not args.no_suite:
        suite_line, suite_ok = _run_suite(args.suite_target or args.target, run_dir, show)
    runner = _check_emulator if args.target == "emulator" else _check_runpod
    rows, latency = asyncio.run(runner(args, show, run_dir))
    print(f"\nConformance suite: {suite_line}")
    print("\nOutput shapes through RunPodClient.run:")
    print(
        text_table(
            ["case", "ok", "shape", "delay ms", "exec ms", "detail"],
            [
                [r.label, "PASS" if r.ok else "FAIL", r.shape, _ms(r.delay_ms), _ms(r.execution_ms), r.detail]
                for r in rows
            ],
        )
    )
    print("\nLatency (e2e measured by the client; delay/exec as reported by the endpoint; label checked by /health):")
    print(
        text_table(
            ["phase", "e2e ms", "delayTime ms", "executionTime ms", "label"],
            [
                [
                    r.phase,
                    f"{r.e2e_ms:.0f}",
                    _ms(r.delay_ms),
                    _ms(r.execution_ms),
                    {True: "confirmed", False: "MISLABELLED", None: "-"}[r.confirmed],
                ]
                for r in latency
            ],
        )
    )
    paths = build_report(run_dir, idle_timeout_s=args.idle_timeout)
    checks = json.loads(paths["json"].read_text())["checks"]
    for c in checks:
        print(f"  {'PASS' if c['ok'] else 'FAIL'}  {c['name']}: {c['detail']}")
    failed = sum(not r.ok for r in rows) + sum(not c["ok"] for c in checks) + (0 if suite_ok else 1)
    passed = len(rows) - sum(not r.ok for r in rows) + sum(c["ok"] for c in checks) + (1 if suite_ok else 0)
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                {
                    "target": args.target,
                    "suite": suite_line,
                    "cases": [asdict(r) for r in rows],
                    "latency": [asdict(r) for r in latency],
                    "checks": checks,
                },
                indent=2,
            )
        )
    print(f"\nreport: {paths['html']} (also report.json, records.csv, junit.xml)")
    print(f"\n{passed} passed, {failed} failed")
    return 1 if failed else 0


def _cmd_emulate(args: argparse.Namespace) -> int:
    from harness.emulator import Emulator, load_config

    overrides: dict[str, Any] = {
        k: v
        for k, v in (
            ("handler", args.handler),
            ("cold_start", args.cold_start),
            ("idle_timeout_s", args.idle_timeout),
            ("min_workers", args.min_workers),
            ("max_workers", args.max_workers),
        )
        if v is not None
    }
    base = load_config(args.config)
    emu = Emulator(base, host=args.host, port=args.port, **overrides)
    cfg = emu.config
    emu_url = f"http://{args.host}:{{port}}/v2/{cfg.endpoint_id}"

    def announce(port: int) -> None:
        url = emu_url.format(port=port)
        if args.announce_json:  # for a parent process (worker-check) that started us on a free port
            base_url = f"http://{args.host}:{port}/v2"
            print(
                json.dumps({"base_url": base_url, "endpoint_id": cfg.endpoint_id, "api_key": cfg.api_key}), flush=True
            )
            return
        print(
            f"RunPod emulator on {url}  (workers {cfg.min_workers}..{cfg.max_workers}, cold start "
            f"{cfg.cold_start.seconds:g} s, idle timeout {cfg.idle_timeout_s:g} s, handler {cfg.handler})"
        )
        # A key made for this run is printed; one from the user's config is not (it might be a real one).
        made = not base.api_key
        key = cfg.api_key if made else "$RUNPOD_API_KEY"
        print(
            f"API key: {cfg.api_key}   (a local, throwaway key made for this run)"
            if made
            else "API key: the one in your config (not printed)"
        )
        print(
            f"  export RUNPOD_ENDPOINT_BASE_URL=http://{args.host}:{port}/v2 RUNPOD_ENDPOINT_ID={cfg.endpoint_id}"
            + (f" RUNPOD_API_KEY={cfg.api_key}" if made else "")
        )
        print(
            f'  curl -s -X POST {url}/runsync -H "Authorization: Bearer {key}" '
            """-H 'Content-Type: application/json' -d '{"input": {"prompt": "hello"}}'"""
        )
        print("Ctrl-C stops it.", flush=True)

    with contextlib.suppress(KeyboardInterrupt):
        emu.serve_forever(on_ready=announce)
    return 0


def _cmd_worker_check(args: argparse.Namespace) -> int:
    """Exit 0 when the handler is ready (warnings allowed), 1 when a check failed."""
    if args.target == "container":
        from harness.preflight.containers import check_container

        report = check_container(
            args.image, job_input=args.input, crash_window_s=args.crash_window, port=args.container_port
        )
    else:
        if not args.handler:
            print(
                "worker-check: give a handler (path/to/handler.py[:name]) or --target container --image IMAGE",
                file=sys.stderr,
            )
            return 2
        from harness.preflight.workercheck import check_worker

        report = check_worker(
            args.handler,
            job_input=args.input,
            import_timeout=args.import_timeout,
            slow_import_s=args.slow_import,
            jobs=args.jobs,
            job_timeout=args.job_timeout,
        )
    print(json.dumps(report.to_json(), indent=2) if args.json else report.render())
    return 0 if report.ok else 1


def _cmd_report(args: argparse.Namespace) -> int:
    from harness.load.report import build_report

    paths = build_report(
        args.run_dir,
        price_per_hour=args.price_per_hour,
        idle_timeout_s=args.idle_timeout,
        rate_per_s=args.rate,
        slo_p95_s=args.slo_p95,
    )
    data = json.loads(paths["json"].read_text())
    for check in data["checks"]:
        print(f"{'PASS' if check['ok'] else 'FAIL'}  {check['name']}: {check['detail']}")
    c = data["cost"]
    print(
        f"cost: {c['billed_s_per_request']:.2f} billed GPU-s/request, ${c['dollars_per_request']:.5f}/request, "
        f"${c['dollars_per_month']:,.2f}/month at {c['rate_per_s']:.3f} req/s and ${c['price_per_hour']}/h"
    )
    if data.get("max_sustainable"):
        m = data["max_sustainable"]
        print(
            f"capacity: max sustainable step {m['step']} ({m['throughput_per_s']:.1f} req/s, goodput "
            f"{m['goodput_per_s']:.1f}/s, p95 {m['p95_s']:.2f} s)"
        )
    print("wrote " + ", ".join(str(p) for p in paths.values()))
    return 0 if all(c["ok"] for c in data["checks"]) else 1


RECORDED_MODULES = ("scenarios/test_devai_tasks.py", "scenarios/test_protocol.py", "scenarios/test_faults.py")


def _cmd_record(args: argparse.Namespace) -> int:
    """Re-record the cassettes from the emulator (or a live endpoint) by running the scenario modules."""
    import subprocess

    modules = args.modules or list(RECORDED_MODULES)
    missing = [m for m in modules if not Path(m).is_file()]
    if missing:
        print(f"record: run it from the repository root ({', '.join(missing)} not found)", file=sys.stderr)
        return 2
    cmd = [
        sys.executable,
        "-m",
        "pytest",
        *modules,
        "--target",
        args.target,
        "--record-mode",
        args.mode,
        "-p",
        "no:cacheprovider",
        "-q",
    ]
    print("running: " + " ".join(cmd[2:]), flush=True)
    return subprocess.call(cmd)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="devai-harness", description=__doc__)
    parser.add_argument("--version", action="version", version=f"devai-harness {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("check", help="the main job: conformance and latency probe (default: the embedded emulator)")
    p.add_argument("--target", choices=["emulator", "runpod"], default="emulator")
    p.add_argument("--config", help="emulator YAML config (target emulator)")
    p.add_argument("--timeout", type=float, default=120.0, help="deadline per job, seconds")
    p.add_argument("--json", help="also write the results to this JSON file")
    p.add_argument("--run-dir", help="where the report goes (default runs/check-TIMESTAMP)")
    p.add_argument("--idle-timeout", type=float, default=5.0, help="the endpoint's idle timeout (target runpod)")
    p.add_argument("--no-suite", action="store_true", help="skip the conformance suite")
    p.add_argument(
        "--suite-target",
        choices=["replay", "emulator", "runpod"],
        help="run the suite on this target (default: --target)",
    )
    p.add_argument("-q", "--quiet", action="store_true", help="no progress lines")
    p.set_defaults(func=_cmd_check)
    p = sub.add_parser("emulate", help="serve the RunPod emulator in the foreground")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--config", help="YAML config (see scenarios/faults/)")
    p.add_argument("--handler", help="path/to/handler.py:function (default: the reference worker)")
    p.add_argument("--cold-start", type=float, help="seconds (default 2)")
    p.add_argument("--idle-timeout", type=float, help="seconds (default 5)")
    p.add_argument("--min-workers", type=int)
    p.add_argument("--max-workers", type=int)
    p.add_argument("--announce-json", action="store_true", help=argparse.SUPPRESS)
    p.set_defaults(func=_cmd_emulate)
    p = sub.add_parser("worker-check", help="will this RunPod handler survive a deploy? (import, test input, jobs)")
    p.add_argument("handler", nargs="?", help="path/to/handler.py[:function] (default function: handler)")
    p.add_argument("--input", help='test input JSON ({"input": {...}} or the bare input); default test_input.json')
    p.add_argument("--import-timeout", type=float, default=120.0, help="seconds the import may take (default 120)")
    p.add_argument("--slow-import", type=float, default=10.0, help="warn when the import takes longer (seconds)")
    p.add_argument("--jobs", type=int, default=3, help="jobs to run under the emulator (first one cold)")
    p.add_argument("--job-timeout", type=float, default=120.0)
    p.add_argument("--json", action="store_true", help="print the report as JSON (for CI)")
    p.add_argument("--target", choices=["local", "container"], default="local")
    p.add_argument("--image", help="worker image for --target container (needs a Docker engine)")
    p.add_argument("--container-port", type=int, default=8000, help="the image's API port (default 8000)")
    p.add_argument("--crash-window", type=float, default=15.0, help="seconds the container must stay up")
    p.set_defaults(func=_cmd_worker_check)
    p = sub.add_parser("report", help="JSON, CSV, JUnit and an HTML page with plots from a load run's records")
    p.add_argument("run_dir")
    p.add_argument("--price-per-hour", type=float, default=2.49, help="GPU price in $/h (default 2.49)")
    p.add_argument("--idle-timeout", type=float, default=5.0, help="the endpoint's idle timeout, s (default 5)")
    p.add_argument("--rate", type=float, help="traffic for the cost model, req/s (default: the run's)")
    p.add_argument("--slo-p95", type=float, default=10.0, help="capacity SLO: p95 end-to-end seconds")
    p.set_defaults(func=_cmd_report)
    p = sub.add_parser("record", help="re-record the scenario cassettes (default: from the emulator)")
    p.add_argument("modules", nargs="*", help=f"scenario modules (default: {', '.join(RECORDED_MODULES)})")
    p.add_argument("--target", choices=["emulator", "runpod"], default="emulator")
    p.add_argument(
        "--mode",
        default="rewrite",
        choices=["rewrite", "once", "new_episodes", "all"],
        help="pytest-recording mode (default rewrite: replace each cassette)",
    )
    p.set_defaults(func=_cmd_record)
    p = sub.add_parser("shapes", help="recognise a saved job/output JSON and print the extracted text")
    p.add_argument("file", help="JSON file, or - for stdin")
    p.set_defaults(func=_cmd_shapes)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except HarnessError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
