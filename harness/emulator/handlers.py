"""Loading RunPod handler functions and running one job the way ``runpod.serverless`` does.

Semantics copied from runpod-python (see docs/reference/runpod-queue.md §4):
generator detection by ``inspect`` only; each yield is one stream chunk; with
``return_aggregate_stream`` the final output is the list of yields; since runpod 1.7.7 a yielded
dict with a truthy ``error`` fails the job with ``error=str(value)``; a returned dict with ``error``
fails it; an exception fails it with a JSON string {error_type, error_message, error_traceback, ...}.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import inspect
import itertools
import json
import socket
import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.core.errors import ConfigError
from harness.core.jobs import JobStatus

__all__ = ["HandlerFn", "Outcome", "handler_kind", "load_handler", "run_handler"]

HandlerFn = Callable[[dict[str, Any]], Any]
_fresh = itertools.count()
_END = object()


@dataclass(frozen=True, slots=True)
class Outcome:
    status: JobStatus  # COMPLETED | FAILED
    output: Any = None
    error: str | None = None


def load_handler(
    spec: str, *, worker_options: dict[str, Any] | None = None, crash_message: str | None = None
) -> HandlerFn:
    """Import the handler module afresh (each worker start imports it, as a new container would).

    ``spec`` is ``builtin`` (the reference worker), ``path/to/file.py:name`` or ``package.module:name``.
    Import-time exceptions propagate: the caller turns them into an unhealthy worker."""
    if crash_message is not None:
        raise RuntimeError(crash_message)
    if spec == "builtin":
        from harness.emulator.worker import make_handler

        return make_handler(worker_options or {})
    target, sep, name = spec.rpartition(":")
    if not sep or not target or not name:
        raise ConfigError(f"handler {spec!r}: expected 'path/to/file.py:function' or 'module:function'")
    if target.endswith(".py") or "/" in target:
        path = Path(target)
        if not path.is_file():
            raise ConfigError(f"handler file not found: {path}")
        module_spec = importlib.util.spec_from_file_location(f"_devai_handler_{next(_fresh)}", path)
    else:
        module_spec = importlib.util.find_spec(target)
    if module_spec is None or module_spec.loader is None:
        raise ConfigError(f"cannot import handler module {target!r}")
    module = importlib.util.module_from_spec(module_spec)
    if str(Path(target).parent) not in sys.path and (target.endswith(".py") or "/" in target):
        sys.path.insert(0, str(Path(target).parent))  # handlers import their sibling modules
    module_spec.loader.exec_module(module)
    fn = getattr(module, name, None)
    if not callable(fn):
        raise ConfigError(f"{target} has no callable {name!r}")
    return fn  # type: ignore[no-any-return]


def handler_kind(fn: Any) -> str:
    """sync | async | generator | async-generator, by inspect only (as runpod does)."""
    target = fn if inspect.isfunction(fn) or inspect.ismethod(fn) else getattr(fn, "__call__", fn)  # noqa: B004
    if inspect.isasyncgenfunction(target):
        return "async-generator"
    if inspect.isgeneratorfunction(target):
        return "generator"
    if inspect.iscoroutinefunction(target):
        return "async"
    return "sync"


def _is_error(value: Any) -> bool:
    return isinstance(value, dict) and bool(value.get("error"))


def error_string(exc: BaseException, worker_id: str) -> str:
    return json.dumps(
        {
            "error_type": str(type(exc)),
            "error_message": str(exc),
            "error_traceback": "".join(traceback.format_exception(exc)),
            "hostname": socket.gethostname(),
            "worker_id": worker_id,
            "runpod_version": "devai-harness-emulator",
        }
    )


async def run_handler(
    fn: HandlerFn,
    job: dict[str, Any],
    *,
    on_chunk: Callable[[Any], None],
    aggregate: bool,
    fail_on_yielded_error: bool,
    worker_id: str,
) -> Outcome:
    """Run one job. Sync code runs in a thread so a slow handler never blocks the emulator."""
    kind = handler_kind(fn)
    try:
        if kind in ("generator", "async-generator"):
            chunks: list[Any] = []
            if kind == "async-generator":
                agen = fn(job)
                try:
                    async for value in agen:
                        if fail_on_yielded_error and _is_error(value):
                            return Outcome(JobStatus.FAILED, error=str(value))
                        on_chunk(value)
                        chunks.append(value)
                finally:
                    await agen.aclose()
            else:
                gen = fn(job)
                try:
                    while (value := await asyncio.to_thread(next, gen, _END)) is not _END:
                        if fail_on_yielded_error and _is_error(value):
                            return Outcome(JobStatus.FAILED, error=str(value))
                        on_chunk(value)
                        chunks.append(value)
                finally:
                    with contextlib.suppress(ValueError):  # still running in its thread after a cancel
                        gen.close()
            return Outcome(JobStatus.COMPLETED, output=chunks if aggregate else None)
        result = await fn(job) if kind == "async" else await asyncio.to_thread(fn, job)
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        return Outcome(JobStatus.FAILED, error=error_string(exc, worker_id))
    if isinstance(result, dict) and result.get("error"):
        return Outcome(JobStatus.FAILED, error=str(result["error"]))
    return Outcome(JobStatus.COMPLETED, output=result)
