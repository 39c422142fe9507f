"""``devai-harness emulate``: the RunPod emulator in the foreground, and what it says it is."""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
import sys
from typing import TYPE_CHECKING, Any

from harness.cli.args import count, key_value, non_negative, port, positive
from harness.conformance.suite import find_suite
from harness.core.errors import ConfigError

if TYPE_CHECKING:
    from harness.emulator.config import EmulatorConfig

__all__ = ["add"]


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The emulator settings the command line gives (None: the config's, else the default)."""
    given = {
        "handler": args.handler,
        "cold_start": args.cold_start,
        "idle_timeout_s": args.idle_timeout,
        "min_workers": args.min_workers,
        "max_workers": args.max_workers,
        "worker_command": args.worker,
        "worker_image": args.image,
        "worker_cwd": args.worker_cwd,
    }
    overrides = {k: v for k, v in given.items() if v is not None}
    if args.worker_env:
        overrides["worker_env"] = dict(key_value(item) for item in args.worker_env)
    return overrides


def _answers(base: EmulatorConfig, overrides: dict[str, Any], args: argparse.Namespace) -> str:
    """What the workers will answer, said at start; the built-in worker gets the devai task cases' reference
    answers when the suite is here (a good endpoint by default: `check --target runpod` against it passes)."""
    if args.worker or args.image or base.remote_workers:
        return "your worker's own (the runpod SDK in it takes jobs from the worker API)"
    scripted = base.worker.get("engine", "scripted") == "scripted" and not {"responses", "fixtures"} & set(base.worker)
    suite = find_suite()
    if not scripted or (overrides.get("handler") or base.handler) != "builtin" or args.filler or suite is None:
        return "a deterministic filler"
    from harness.conformance.tasks import load_cases, scripted_rules

    overrides["worker"] = {**base.worker, "responses": scripted_rules(load_cases(suite / "tasks"))}
    return f"the devai task cases' reference answers ({suite / 'tasks'}), else a deterministic filler"


def _announce(args: argparse.Namespace, base: EmulatorConfig, cfg: EmulatorConfig, answers: str, port: int) -> None:
    base_url = f"http://{args.host}:{port}/v2"
    if args.announce_json:  # for a parent process (worker-check) that started us on a free port
        print(json.dumps({"base_url": base_url, "endpoint_id": cfg.endpoint_id, "api_key": cfg.api_key}), flush=True)
        return
    from harness.emulator.config import describe

    url = f"{base_url}/{cfg.endpoint_id}"
    print(f"RunPod emulator on {url}\n  {describe(cfg)}\n  answers: {answers}")
    # A key made for this run is printed; one the user gave is not (it might be a real one).
    made = not base.api_key
    key = cfg.api_key if made else "$RUNPOD_API_KEY"
    where = f"${args.api_key_env}" if args.api_key_env else "your config"
    print(
        f"API key: {cfg.api_key}   (a local, throwaway key made for this run)"
        if made
        else f"API key: the one in {where} (not printed)"
    )
    print(
        f"  export RUNPOD_ENDPOINT_BASE_URL={base_url} RUNPOD_ENDPOINT_ID={cfg.endpoint_id}"
        + (f" RUNPOD_API_KEY={cfg.api_key}" if made else "")
    )
    print(
        f'  curl -s -X POST {url}/runsync -H "Authorization: Bearer {key}" '
        """-H 'Content-Type: application/json' -d '{"input": {"prompt": "hello"}}'"""
    )
    print(f"  OpenAI-compatible route: {url}/openai/v1 (model {cfg.worker.get('model', 'devai-scripted')})")
    print("Ctrl-C stops it.", flush=True)


def _cmd_emulate(args: argparse.Namespace) -> int:
    from harness.emulator import Emulator, load_config

    overrides = _overrides(args)
    base = load_config(args.config)
    if args.api_key_env:
        key = os.environ.get(args.api_key_env)
        if not key:
            raise ConfigError(f"--api-key-env {args.api_key_env}: that environment variable is empty")
        base = base.replace(api_key=key)
    answers = _answers(base, overrides, args)

    def echo(worker_id: str, line: str) -> None:
        print(f"[{worker_id}] {line}", file=sys.stderr, flush=True)

    echoing = None if args.quiet_workers else echo
    emu = Emulator(base, host=args.host, port=args.port, echo=echoing, worker_logs=args.worker_logs, **overrides)
    with contextlib.suppress(KeyboardInterrupt):
        emu.serve_forever(on_ready=functools.partial(_announce, args, base, emu.config, answers))
    return 0


def add(sub: Any) -> None:
    p = sub.add_parser("emulate", help="serve the RunPod emulator in the foreground")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=port, default=8000)
    p.add_argument("--config", help="YAML config (see scenarios/faults/)")
    p.add_argument("--handler", help="path/to/handler.py:function (default: the reference worker)")
    p.add_argument("--cold-start", type=non_negative, help="seconds (default 2)")
    p.add_argument("--idle-timeout", type=positive, help="seconds (default 5)")
    p.add_argument("--min-workers", type=count)
    p.add_argument("--max-workers", type=count)
    p.add_argument(
        "--filler", action="store_true", help="answer with filler text (default: the devai task cases' answers)"
    )
    p.add_argument("--api-key-env", help="take the endpoint's API key from this environment variable (not printed)")
    p.add_argument(
        "--worker",
        metavar="COMMAND",
        help='run each worker as this command, e.g. "python handler.py": a real process under the runpod SDK',
    )
    p.add_argument("--worker-cwd", help="the workers' working directory (default: here)")
    p.add_argument("--worker-env", action="append", metavar="K=V", help="an environment variable for the workers")
    p.add_argument("--image", help="run each worker as this container image (needs a Docker engine)")
    p.add_argument("--worker-logs", metavar="DIR", help="also write each worker's output to DIR/<worker>.log")
    p.add_argument("--quiet-workers", action="store_true", help="do not echo what the workers print")
    p.add_argument("--announce-json", action="store_true", help=argparse.SUPPRESS)
    p.set_defaults(func=_cmd_emulate)
