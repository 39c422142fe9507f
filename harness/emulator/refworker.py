"""The reference worker (worker-vllm's input schema and output eras, :mod:`harness.emulator.worker`) as a real
RunPod worker file, for the runpod SDK to drive as it drives the user's::

    devai-harness emulate --worker "python -m harness.emulator.refworker"
    python -m harness.emulator.refworker --rp_serve_api --rp_api_port 8000   # the SDK's own local test server

It needs the runpod SDK and devai-harness in the same interpreter. Worker options (the ``worker:`` section of an
emulator config: era, engine, responses, ...) come as a JSON object in ``DEVAI_WORKER_OPTIONS``; like worker-vllm it
is an async generator with ``return_aggregate_stream`` and a fixed concurrency (``DEVAI_WORKER_CONCURRENCY``,
default 1).
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

from harness.core.errors import ConfigError
from harness.emulator.worker import make_handler

__all__ = ["main", "options_from_env"]


def options_from_env(env: dict[str, str] | None = None) -> tuple[dict[str, Any], int]:
    env = dict(os.environ) if env is None else env
    try:
        options = json.loads(env.get("DEVAI_WORKER_OPTIONS") or "{}")
        concurrency = int(env.get("DEVAI_WORKER_CONCURRENCY") or "1")
    except ValueError as exc:
        raise ConfigError(f"DEVAI_WORKER_OPTIONS / DEVAI_WORKER_CONCURRENCY: {exc}") from None
    if not isinstance(options, dict):
        raise ConfigError("DEVAI_WORKER_OPTIONS must be a JSON object")
    if concurrency < 1:
        raise ConfigError("DEVAI_WORKER_CONCURRENCY must be >= 1")
    return options, concurrency


def main() -> None:
    import runpod  # the SDK the user pinned, in this interpreter: not a dependency of the harness

    try:
        options, concurrency = options_from_env()
        handler = make_handler(options)
    except ConfigError as exc:
        print(f"refworker: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    runpod.serverless.start(
        {"handler": handler, "return_aggregate_stream": True, "concurrency_modifier": lambda _current: concurrency}
    )


if __name__ == "__main__":
    main()
