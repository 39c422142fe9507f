"""devai-harness: conformance and load-test harness for serverless LLM endpoints.

Importing this package has no side effects: no network, no environment reads, no locust.
The public names below are the library's surface; modules live in layers (README "Layout"):
core (pure decisions) < clients / load.driver (I/O loops) < emulator < conformance, load, preflight < cli, plugin.
"""

from __future__ import annotations

from harness.clients.openai import OpenAIClient
from harness.clients.runpod import RunPodClient
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
