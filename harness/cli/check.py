"""``devai-harness check``: the main job's arguments, what it prints, its exit code (:mod:`harness.check` runs it)."""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from pathlib import Path
from typing import Any

from harness.check import StageResult, run_check
from harness.cli.args import positive, progress
from harness.conformance.suite import find_suite
from harness.core.errors import ConfigError
from harness.reporting.files import claim_run_dir, write_json
from harness.reporting.rows import rows_table
from harness.reporting.tables import text_table
from harness.targets import TARGET_KINDS, resolve_target

__all__ = ["add"]


def _cmd_check(args: argparse.Namespace) -> int:
    """The main job: the conformance suite, output shapes through the real client, and cold/hot/warm latency (or
    request timing on OpenAI-compatible servers), with a report that always holds every stage."""
    target = resolve_target(
        args.target,
        base_url=args.base_url,
        endpoint_id=args.endpoint_id,
        api_key_env=args.api_key_env,
        model=args.model,
        config=args.config,
        idle_timeout_s=args.idle_timeout,
    )
    suite = find_suite(args.suite)
    if args.suite and suite is None:
        raise ConfigError(f"--suite {args.suite}: no test_devai_tasks.py there")
    run_dir = claim_run_dir(args.run_dir, f"runs/check-{time.strftime('%Y%m%d-%H%M%S')}")
    print(f"devai-harness check against {target.describe()}; results in {run_dir}")
    try:
        run = run_check(
            target,
            run_dir,
            suite=suite,
            run_suite=not args.no_suite,
            suite_target=args.suite_target,
            timeout=args.timeout,
            show=progress(not args.quiet),
            unsafe_run_model_code=args.unsafe_run_model_code,
        )
    except ConfigError:
        with contextlib.suppress(OSError):
            run_dir.rmdir()  # the pre-flight refused the target: nothing was asked, nothing is left behind
        raise
    for stage in run.stages:
        _print_stage(stage)
    for c in (run.requests or {}).get("checks", []):
        print(f"  {'PASS' if c['ok'] else 'FAIL'}  {c['name']}: {c['detail']}")
    if args.json:
        write_json(Path(args.json), run.report_json)
    print(f"\nreport: {run.report['html']} (also {', '.join(p.name for k, p in run.report.items() if k != 'html')})")
    counts = {v: sum(s.verdict == v for s in run.stages) for v in ("PASS", "FAIL", "ERROR", "NOT CHECKED", "N/A")}
    print(f"\nverdict: {run.verdict} (" + ", ".join(f"{n} {v}" for v, n in counts.items() if n) + ")")
    if run.interrupted:
        print(f"{run.interrupted}: the report holds the stages that finished", file=sys.stderr)
        return 130
    return 0 if run.ok else 1


def _print_stage(stage: StageResult) -> None:
    print(f"\n{stage.verdict:<11} {stage.name}: {stage.summary}")
    if stage.rows and type(stage.rows[0]).TERMINAL:
        print(text_table(*rows_table(stage.rows, width=90)))
    if stage.error:
        print("  " + stage.error.strip().splitlines()[-1])


def add(sub: Any) -> None:
    p = sub.add_parser("check", help="the main job: suite, output shapes, latency; a report (default: the emulator)")
    p.add_argument("--target", choices=TARGET_KINDS, default="emulator")
    p.add_argument(
        "--unsafe-run-model-code",
        action="store_true",
        help="run model-written code even where no sandbox (bubblewrap, a container) is available",
    )
    p.add_argument("--endpoint-id", help="RunPod endpoint id (target runpod; env RUNPOD_ENDPOINT_ID)")
    p.add_argument(
        "--base-url",
        help="runpod: the API base (env RUNPOD_ENDPOINT_BASE_URL, default https://api.runpod.ai/v2); runpod-local: "
        "the SDK's test server (default http://127.0.0.1:8000); openai: e.g. http://127.0.0.1:8000/v1",
    )
    p.add_argument(
        "--api-key-env",
        help="the environment variable holding the API key (default RUNPOD_API_KEY, or OPENAI_API_KEY for openai)",
    )
    p.add_argument("--model", help="target openai: the model (default: the first the server lists)")
    p.add_argument("--config", help="emulator YAML config (target emulator)")
    p.add_argument(
        "--timeout",
        type=positive,
        default=120.0,
        help="seconds: the total deadline of one request or job (connect, first byte, whole body, retries "
        "included; keep-alives do not extend it). Each stage stops at its first timed-out request, so against an "
        "endpoint that never answers, --no-suite ends within (stages + 1) x (TIMEOUT + 2) + 10 s",
    )
    p.add_argument("--json", help="also write the report's JSON to this file")
    p.add_argument("--run-dir", help="where the report goes (default runs/check-TIMESTAMP)")
    p.add_argument("--idle-timeout", type=positive, default=5.0, help="the endpoint's idle timeout (target runpod)")
    p.add_argument("--no-suite", action="store_true", help="skip the conformance suite")
    p.add_argument("--suite", help="the scenarios folder (default ./scenarios, else the one beside the package)")
    p.add_argument(
        "--suite-target",
        choices=["replay", *TARGET_KINDS],
        help="run the suite on this target (default: --target; replay = the recorded cassettes)",
    )
    p.add_argument("-q", "--quiet", action="store_true", help="no progress lines")
    p.set_defaults(func=_cmd_check)
