"""``devai-harness compare NAME=KIND:WHERE[#MODEL] ...``: its arguments and what it prints.

Exit codes: 0 compared; 1 NOT CHECKED (fewer than two healthy targets, nothing measured) or ``--fail-if-worse``
found the named target detectably worse; 2 bad input.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from pathlib import Path
from typing import Any

from harness.cli.args import at_least_one, non_negative, positive, progress
from harness.conformance.compare import Comparison, Settings, check_inputs, run_compare, select_cases
from harness.conformance.comparereport import comparison_lines, overall_verdict, summarize, write_comparison
from harness.conformance.contenders import FORMS, parse_contender, unique
from harness.conformance.isolation import OPT_IN_ENV
from harness.conformance.sandbox import sandbox_in_use
from harness.conformance.tasks import TASKS
from harness.conformance.verdicts import worse_than
from harness.core.errors import ConfigError
from harness.reporting.files import claim_run_dir, write_text

__all__ = ["add"]


def _prices(given: list[str] | None, names: list[str]) -> dict[str, float]:
    """``--price-per-hour 2.49`` (every target) and/or ``--price-per-hour qwen=1.19`` (one)."""
    prices: dict[str, float] = {}
    for item in given or []:
        name, sep, value = item.rpartition("=")
        try:
            price = float(value)
        except ValueError:
            raise ConfigError(f"--price-per-hour {item!r}: expected PRICE or NAME=PRICE ($ per hour)") from None
        if not price >= 0 or price == float("inf"):
            raise ConfigError(f"--price-per-hour {item!r}: the price must be a non-negative number")
        if sep and name not in names:
            raise ConfigError(f"--price-per-hour {item!r}: no target is named {name!r}")
        for n in [name] if sep else names:
            prices[n] = price
    return prices


def _forms(given: str | None) -> tuple[str, ...] | None:
    if not given:
        return None
    forms = tuple(f.strip() for f in given.split(",") if f.strip())
    bad = [f for f in forms if f not in FORMS]
    if bad or not forms:
        raise ConfigError(f"--forms: {', '.join(bad) or 'nothing'} is not a form (the forms: {', '.join(FORMS)})")
    return forms


def _cmd_compare(args: argparse.Namespace) -> int:
    contenders = [parse_contender(spec) for spec in args.targets]
    unique(contenders)
    names = [c.name for c in contenders]
    if args.fail_if_worse and args.fail_if_worse not in names:
        raise ConfigError(f"--fail-if-worse {args.fail_if_worse}: no target is named so (the targets: {names})")
    prices = _prices(args.price_per_hour, names)
    cases = select_cases(args.cases, args.tasks)
    settings = Settings(args.repeats, args.temperature, args.max_tokens, args.seed, args.timeout, _forms(args.forms))
    check_inputs(contenders, cases, settings)
    if args.unsafe_run_model_code:
        os.environ[OPT_IN_ENV] = "1"
    run_dir = claim_run_dir(args.run_dir, f"runs/compare-{time.strftime('%Y%m%d-%H%M%S')}")
    print(f"devai-harness compare: {', '.join(f'{c.name} = {c.describe()}' for c in contenders)}; results in {run_dir}")
    print(f"model-written code ran in: {sandbox_in_use()}")
    started: list[Comparison] = []
    try:
        run = asyncio.run(run_compare(contenders, cases, settings, run_dir, progress(not args.quiet), started.append))
    except (KeyboardInterrupt, asyncio.CancelledError):  # our Ctrl-C handler cancels the run's task
        if not started:
            raise KeyboardInterrupt from None
        run = started[0]  # Ctrl-C: the report of what was measured, then exit 130
        run.interrupted = True
    rows, pairs = summarize(run, prices)
    paths = write_comparison(run, run_dir, prices, rows, pairs)
    for line in comparison_lines(run, prices, rows, pairs):
        print(line)
    if args.json:
        write_text(Path(args.json), paths["json"].read_text(encoding="utf-8"))
    print(f"\nreport: {paths['html']} (also {paths['json'].name}, {paths['attempts'].name})")
    if run.interrupted:
        return 130
    if overall_verdict(run) != "COMPARED":
        return 1
    worse = worse_than(run, args.fail_if_worse, pairs) if args.fail_if_worse else []
    for line in worse:
        print(f"FAIL  {line}")
    return 1 if worse else 0


def add(sub: Any) -> None:
    p = sub.add_parser("compare", help="the devai tasks against several targets, side by side, with intervals")
    p.add_argument(
        "targets",
        nargs="+",
        metavar="NAME=KIND:WHERE[#MODEL]",
        help="e.g. qwen=runpod:ENDPOINT_ID#MODEL llama=openai:http://127.0.0.1:8000/v1#MODEL ref=emulator",
    )
    p.add_argument("--repeats", type=at_least_one, default=3, help="times each case is asked of each target (3)")
    p.add_argument("--temperature", type=non_negative, default=0.7, help="the same for every target (0.7)")
    p.add_argument("--max-tokens", type=at_least_one, default=512, help="(512)")
    p.add_argument("--seed", type=int, default=0, help="the run order's and the sampling seeds' seed (0)")
    p.add_argument("--timeout", type=positive, default=120.0, help="deadline per request, seconds (120)")
    p.add_argument("--forms", help=f"input forms, comma-separated ({', '.join(FORMS)}; default: all in common)")
    p.add_argument("--tasks", help=f"only these tasks, comma-separated ({', '.join(TASKS)})")
    p.add_argument("--cases", help="a folder of task case YAML files (default: the suite's scenarios/tasks)")
    p.add_argument(
        "--price-per-hour",
        action="append",
        metavar="[NAME=]PRICE",
        help="GPU $/hour for the cost per passed task: one for all, or NAME=PRICE per target (repeatable)",
    )
    p.add_argument("--fail-if-worse", metavar="NAME", help="exit 1 when NAME is detectably worse than another")
    p.add_argument("--run-dir", help="where the report goes (default runs/compare-TIMESTAMP)")
    p.add_argument("--json", help="also copy compare.json to this file")
    p.add_argument(
        "--unsafe-run-model-code",
        action="store_true",
        help=f"run model-written code even without a sandbox (env {OPT_IN_ENV}=1)",
    )
    p.add_argument("-q", "--quiet", action="store_true", help="no progress lines")
    p.set_defaults(func=_cmd_compare)
