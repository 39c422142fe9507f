"""devai-harness: conformance and load-test harness for serverless LLM endpoints.

Importing this package has no side effects: no network, no environment reads, no locust.
"""

from __future__ import annotations

from harness.clock import Clock, FakeClock, SystemClock
from harness.errors import (
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
    ProtocolError,
    QueueBacklog,
    RateLimited,
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
from harness.findings import Finding, Severity
from harness.health import Diagnosis, DiagnosisKind, Health, Watchdog
from harness.jobs import TERMINAL, Job, JobStatus, raise_for_job
from harness.polling import PollPolicy, RetryPolicy
from harness.runpod import RunPodClient
from harness.shapes import SHAPES, Extracted, Usage, extract

__version__ = "0.1.0"

__all__ = [
    "SHAPES",
    "TERMINAL",
    "Clock",
    "ColdStartTooSlow",
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
    "NoCapacity",
    "PollPolicy",
    "ProtocolError",
    "QueueBacklog",
    "RateLimited",
    "RequestTimeout",
    "RetryPolicy",
    "RunPodClient",
    "Severity",
    "ShapeError",
    "SlowExecution",
    "StatusError",
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
]
