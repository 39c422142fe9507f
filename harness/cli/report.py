"""``devai-harness report RUN_DIR...``: the load report of one or more runs' records (:mod:`harness.load.report`)."""

from __future__ import annotations

import argparse
import glob
from collections.abc import Sequence
from typing import Any

from harness.cli.args import positive
from harness.core.errors import ConfigError

__all__ = ["add", "run_dirs"]


def run_dirs(given: Sequence[str]) -> list[str]:
    """Run directories; a glob is expanded here too (shells that do not expand it, quoted patterns)."""
    out: list[str] = []
    for g in given:
        matches = sorted(glob.glob(g)) if any(ch in g for ch in "*?[") else [g]
        if not matches:
            raise ConfigError(f"{g}: matches no run directory")
        out.extend(matches)
    return out


def _cmd_report(args: argparse.Namespace) -> int:
    from harness.load.report import make_report, report_lines

    dirs = run_dirs(args.run_dirs)
    data, paths = make_report(
        dirs,
        out_dir=args.out,
        price_per_hour=args.price_per_hour,
        idle_timeout_s=args.idle_timeout,
        rate_per_s=args.rate,
        slo_p95_s=args.slo_p95,
    )
    if len(data["sources"]) > 1:
        print("records from: " + ", ".join(f"{k} ({v})" for k, v in sorted(data["sources"].items())))
    for line in report_lines(data):
        print(line)
    print("wrote " + ", ".join(str(p) for p in paths.values()))
    return 0 if all(c["ok"] for c in data["checks"]) else 1


def add(sub: Any) -> None:
    p = sub.add_parser("report", help="JSON, CSV, JUnit and an HTML page with plots from load runs' records")
    p.add_argument("run_dirs", nargs="+", help="run directories (or globs, or records-*.jsonl files): merged")
    p.add_argument("--out", help="where the report goes (default: the first run directory)")
    p.add_argument("--price-per-hour", type=positive, default=2.49, help="GPU price in $/h (default 2.49)")
    p.add_argument("--idle-timeout", type=positive, default=5.0, help="the endpoint's idle timeout, s (default 5)")
    p.add_argument("--rate", type=positive, help="traffic for the cost model, req/s (default: the run's)")
    p.add_argument("--slo-p95", type=positive, default=10.0, help="capacity SLO: p95 end-to-end seconds")
    p.set_defaults(func=_cmd_report)
