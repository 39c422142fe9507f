"""``devai-harness worker-check`` and ``train-check``: before a deploy bills (:mod:`harness.preflight` checks)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from harness.cli.args import count, positive
from harness.core.errors import ConfigError

__all__ = ["add_train_check", "add_worker_check"]


def _cmd_worker_check(args: argparse.Namespace) -> int:
    """Exit 0 when the handler is ready (warnings allowed), 1 when a check failed."""
    if args.target == "container":
        from harness.preflight.containers import check_container

        report = check_container(args.image, job_input=args.input, jobs=args.jobs, job_timeout=args.job_timeout)
    else:
        if not args.handler:
            raise ConfigError(
                "worker-check: give a worker file (handler.py), a function (handler.py:name) "
                "or --target container --image IMAGE"
            )
        from harness.preflight.workercheck import check_worker

        report = check_worker(
            args.handler,
            python=args.python,
            job_input=args.input,
            import_timeout=args.import_timeout,
            slow_import_s=args.slow_import,
            jobs=args.jobs,
            job_timeout=args.job_timeout,
        )
    print(json.dumps(report.to_json(), indent=2) if args.json else report.render())
    return 0 if report.ok else 1


def _cmd_train_check(args: argparse.Namespace) -> int:
    """Exit 0 only when nothing blocks the training run (READY); 1 when a check failed or could not run."""
    from harness.preflight.datasource import Bounds
    from harness.preflight.traincheck import check_training, progress_to_stderr

    bounds = Bounds(int(args.max_dataset_mb * (1 << 20)), int(args.max_rows), args.max_read_seconds)
    report = check_training(
        Path(args.config),
        allow_local_urls=args.allow_local_urls,
        timeout=args.timeout,
        progress=None if args.json else progress_to_stderr,
        bounds=bounds,
    )
    print(json.dumps(report.to_json(), indent=2) if args.json else report.render())
    return 0 if report.verdict == "READY" else 1


def add_worker_check(sub: Any) -> None:
    p = sub.add_parser("worker-check", help="will this RunPod worker survive a deploy? (import, start, jobs)")
    p.add_argument(
        "handler",
        nargs="?",
        help="a worker file (handler.py, run as a real worker) or handler.py:function (a plain function, in-process)",
    )
    p.add_argument(
        "--python", metavar="PATH", help="the worker's interpreter (default: a venv beside the file, else python3)"
    )
    p.add_argument("--input", help='test input JSON ({"input": {...}} or the bare input); default test_input.json')
    p.add_argument("--import-timeout", type=positive, default=120.0, help="seconds the import may take")
    p.add_argument("--slow-import", type=positive, default=10.0, help="warn when the import takes longer (seconds)")
    p.add_argument("--jobs", type=count, default=3, help="jobs to run under the emulator (first one cold)")
    p.add_argument("--job-timeout", type=positive, default=120.0)
    p.add_argument("--json", action="store_true", help="print the report as JSON (for CI)")
    p.add_argument("--target", choices=["local", "container"], default="local")
    p.add_argument("--image", help="worker image for --target container (needs a Docker engine)")
    p.set_defaults(func=_cmd_worker_check)


def add_train_check(sub: Any) -> None:
    p = sub.add_parser("train-check", help="before a training pod bills: dataset source and content, script, image")
    p.add_argument("config", help="the training config (YAML or JSON): method, dataset, script, image, price...")
    p.add_argument("--json", action="store_true", help="print the report as JSON (for CI)")
    p.add_argument(
        "--allow-local-urls",
        action="store_true",
        help="accept a dataset URL on loopback or a private network (a pod cannot reach one; for tests)",
    )
    p.add_argument("--timeout", type=positive, default=10.0, help="seconds the dataset URL has to answer (10)")
    p.add_argument("--max-dataset-mb", type=positive, default=2048.0, help="MB of the dataset read at most (2048)")
    p.add_argument("--max-rows", type=positive, default=5_000_000, help="rows of the dataset read at most (5000000)")
    p.add_argument(
        "--max-read-seconds", type=positive, default=600.0, help="seconds spent reading the dataset at most (600)"
    )
    p.set_defaults(func=_cmd_train_check)
