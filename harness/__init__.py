"""devai-harness: conformance and load-test harness for serverless LLM endpoints.

Importing this package has no side effects: no network, no environment reads, no locust.
The public names below are the library's surface; modules live in layers (README "Layout"):
core (pure decisions) < clients / load.driver (I/O loops) < emulator < conformance, load, preflight < cli, plugin.
"""

from __future__ import annotations

import typing

from harness.core import __version__
from harness.core.clock import Clock, FakeClock, SystemClock
from harness.core.errors import (
    ColdStartTooSlow,
    ConfigError,
    ConnectError,
    DiagnosedTimeout,
    HarnessError,
    JobCancelled,
    JobError,
    JobFailed,
    JobTimedOut,
    NoCapacity,
    OutputError,
    ProtocolError,
    QueueBacklog,
    RateLimited,
    Redirected,
    ReplyTooLarge,
    RequestTimeout,
    ShapeError,
    SlowExecution,
    StatusError,
    StreamError,
    StreamErrorEvent,
    StreamProtocolError,
    StreamStalled,
    StreamTruncated,
    TransportError,
    WorkerError,
    ZombieWorker,
)
from harness.core.findings import Finding, Severity
from harness.core.health import Diagnosis, DiagnosisKind, Health, Watchdog
from harness.core.jobs import TERMINAL, Job, JobStatus, raise_for_job, worker_error
from harness.core.polling import PollPolicy, RetryPolicy
from harness.core.shapes import SHAPES, Extracted, Usage, extract
from harness.core.streaming import Completion, StreamAccumulator
from harness.core.timing import RequestTiming
from harness.core.waiting import JobWait

if typing.TYPE_CHECKING:
    from harness.clients.openai import OpenAIClient
    from harness.clients.runpod import RunPodClient

# The clients import httpx and asyncio (most of this package's import time): loaded when first named, so the
# command line starts at once and a Ctrl-C while it starts is caught (harness.entry).
_LAZY = {"OpenAIClient": "harness.clients.openai", "RunPodClient": "harness.clients.runpod"}


def __getattr__(name: str) -> typing.Any:
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'harness' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})


__all__ = [
    "SHAPES",
    "TERMINAL",
    "Clock",
    "ColdStartTooSlow",
    "Completion",
    "ConfigError",
    "ConnectError",
    "DiagnosedTimeout",
    "Diagnosis",
    "DiagnosisKind",
    "Extracted",
    "FakeClock",
    "Finding",
    "HarnessError",
    "Health",
    "Job",
    "JobCancelled",
    "JobError",
    "JobFailed",
    "JobStatus",
    "JobTimedOut",
    "JobWait",
    "NoCapacity",
    "OpenAIClient",
    "OutputError",
    "PollPolicy",
    "ProtocolError",
    "QueueBacklog",
    "RateLimited",
    "Redirected",
    "ReplyTooLarge",
    "RequestTimeout",
    "RequestTiming",
    "RetryPolicy",
    "RunPodClient",
    "Severity",
    "ShapeError",
    "SlowExecution",
    "StatusError",
    "StreamAccumulator",
    "StreamError",
    "StreamErrorEvent",
    "StreamProtocolError",
    "StreamStalled",
    "StreamTruncated",
    "SystemClock",
    "TransportError",
    "Usage",
    "Watchdog",
    "WorkerError",
    "ZombieWorker",
    "__version__",
    "extract",
    "raise_for_job",
    "worker_error",
]
