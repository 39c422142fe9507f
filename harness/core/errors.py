"""Harness errors: what went wrong while talking to an endpoint (not conformance verdicts).

Verdicts about an endpoint's behaviour live in :mod:`harness.core.findings`. Every error carries typed fields
(status code, job id, diagnosis, ...): callers read attributes, never parse messages. The tree::

    HarnessError
    ├── ConfigError                 bad or missing configuration (never contains secret values)
    ├── OutputError                 the harness could not write its own output (.path: a full disk, no permission)
    ├── TransportError              the HTTP exchange itself failed
    │   ├── RequestTimeout          connect/read/write/pool timeout
    │   ├── ConnectError            could not connect (DNS, refused, reset before a reply)
    │   ├── ProtocolError           a reply that is not valid HTTP/JSON/job data
    │   │   ├── ReplyTooLarge       over one of our read caps (.limit bytes, .what: reply | line | stream)
    │   │   └── Redirected          a 3xx: never followed (.status_code, .location)
    │   └── StatusError             an HTTP error status (.status_code, .body summary; .error_type, .error_code,
    │       │                       .param when the body is an OpenAI error envelope)
    │       └── RateLimited         HTTP 429 (.retry_after seconds, when the server said)
    ├── ShapeError                  an output no known worker shape matches (.path, .summary)
    ├── WorkerError                 the worker reported an error (.message, .error_type, .code, .param)
    ├── JobError                    a job ended other than COMPLETED (.job)
    │   ├── JobFailed               FAILED (.worker_error when the error string could be parsed)
    │   ├── JobCancelled            CANCELLED
    │   └── JobTimedOut             TIMED_OUT (the platform's executionTimeout)
    ├── StreamError                 a streamed reply went wrong
    │   ├── StreamStalled           no bytes for too long
    │   ├── StreamTruncated         ended without [DONE] / finish_reason
    │   ├── StreamErrorEvent        the server sent an error event (.code)
    │   └── StreamProtocolError     not parseable as SSE (e.g. an unbounded line)
    └── DiagnosedTimeout            our deadline passed; the job was cancelled and the cause diagnosed
        │                           (.job_id, .elapsed_s, .last_status, .diagnosis, .health, .cancelled)
        ├── ZombieWorker            workers look alive (idle/ready/running/unhealthy) but the queue is stuck
        ├── ColdStartTooSlow        workers still initializing
        ├── NoCapacity              no workers at all, or only throttled ones
        ├── QueueBacklog            the queue moves, too slowly for this job
        └── SlowExecution           the job was running on a worker when time ran out
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # type-only back-references: the job and health models sit above the errors
    from harness.core.health import Diagnosis, Health
    from harness.core.jobs import Job

__all__ = [
    "ColdStartTooSlow",
    "ConfigError",
    "ConnectError",
    "DiagnosedTimeout",
    "HarnessError",
    "JobCancelled",
    "JobError",
    "JobFailed",
    "JobTimedOut",
    "NoCapacity",
    "OutputError",
    "ProtocolError",
    "QueueBacklog",
    "RateLimited",
    "Redirected",
    "ReplyTooLarge",
    "RequestTimeout",
    "ShapeError",
    "SlowExecution",
    "StatusError",
    "StreamError",
    "StreamErrorEvent",
    "StreamProtocolError",
    "StreamStalled",
    "StreamTruncated",
    "TransportError",
    "WorkerError",
    "ZombieWorker",
]


class HarnessError(Exception):
    """Base of every error the harness raises on purpose."""


class ConfigError(HarnessError):
    """Configuration is missing or invalid."""


class OutputError(HarnessError):
    """Our own output could not be written (a full disk, a read-only folder): the run's error, never a finding."""

    def __init__(self, message: str, *, path: str) -> None:
        super().__init__(message)
        self.path = path


class TransportError(HarnessError):
    """The HTTP exchange failed. ``method`` and ``path`` never include query secrets."""

    def __init__(self, message: str, *, method: str = "", path: str = "") -> None:
        super().__init__(message)
        self.method = method
        self.path = path


class RequestTimeout(TransportError):
    """A connect, read, write or pool timeout."""


class ConnectError(TransportError):
    """The connection could not be made or broke before a reply."""


class ProtocolError(TransportError):
    """The reply is not what the protocol promises (bad JSON, a job without id...)."""


class ReplyTooLarge(ProtocolError):
    """A reply went over one of our read caps (``what``: "reply", "line" or "stream"; ``limit`` in bytes). The
    endpoint's doing, and a finding — never an out-of-memory of ours."""

    def __init__(self, message: str, *, limit: int, what: str, method: str = "", path: str = "") -> None:
        super().__init__(message, method=method, path=path)
        self.limit = limit
        self.what = what


class Redirected(ProtocolError):
    """A 3xx reply. Never followed: a redirect can lead anywhere (a metadata address, another host with our key)."""

    def __init__(self, message: str, *, status_code: int, location: str, method: str = "", path: str = "") -> None:
        super().__init__(message, method=method, path=path)
        self.status_code = status_code
        self.location = location


class StatusError(TransportError):
    """An HTTP error status. ``body`` is a short, scrubbed summary of the reply."""

    def __init__(
        self,
        message: str,
        *,
        status_code: int,
        body: str = "",
        method: str = "",
        path: str = "",
        retry_after: float | None = None,
        error_type: str | None = None,
        error_code: int | str | None = None,
        param: str | None = None,
    ) -> None:
        super().__init__(message, method=method, path=path)
        self.status_code = status_code
        self.body = body
        self.retry_after = retry_after  # seconds, when the server sent Retry-After (429, 503 while loading)
        # From an OpenAI error envelope {"error": {"type", "code", "param", "message"}}, when the body is one.
        self.error_type = error_type
        self.error_code = error_code
        self.param = param


class RateLimited(StatusError):
    """HTTP 429, after the bounded retries were spent."""

    def __init__(
        self,
        message: str,
        *,
        retry_after: float | None = None,
        body: str = "",
        method: str = "",
        path: str = "",
        error_type: str | None = None,
        error_code: int | str | None = None,
        param: str | None = None,
    ) -> None:
        super().__init__(
            message,
            status_code=429,
            body=body,
            method=method,
            path=path,
            retry_after=retry_after,
            error_type=error_type,
            error_code=error_code,
            param=param,
        )


class ShapeError(HarnessError):
    """No known output shape matches. ``path`` is a JSONPath-like location such as ``$[0].choices``."""

    def __init__(self, message: str, *, path: str = "$", summary: str = "") -> None:
        text = f"{message} at {path}"
        if summary:
            text += f" (got {summary})"
        super().__init__(text)
        self.reason = message
        self.path = path
        self.summary = summary


class WorkerError(HarnessError):
    """The worker reported an error, in a FAILED job or hidden inside a COMPLETED one."""

    def __init__(
        self,
        message: str,
        *,
        error_type: str | None = None,
        code: int | str | None = None,
        param: str | None = None,
        traceback: str | None = None,
        raw: Any = None,
    ) -> None:
        parts = [
            p
            for p in (error_type, f"param {param}" if param else None, f"code {code}" if code is not None else None)
            if p
        ]
        super().__init__(f"{message} [{', '.join(parts)}]" if parts else message)
        self.message = message
        self.error_type = error_type
        self.code = code
        self.param = param
        self.traceback = traceback
        self.raw = raw


class JobError(HarnessError):
    """A job reached a terminal status other than COMPLETED."""

    def __init__(self, message: str, *, job: Job) -> None:
        super().__init__(message)
        self.job = job


class JobFailed(JobError):
    """FAILED. ``worker_error`` holds the parsed error string when it could be parsed."""

    def __init__(self, message: str, *, job: Job, worker_error: WorkerError | None = None) -> None:
        super().__init__(message, job=job)
        self.worker_error = worker_error


class JobCancelled(JobError):
    """CANCELLED (by us, by someone else, or by the platform)."""


class JobTimedOut(JobError):
    """TIMED_OUT: the platform stopped the job at its executionTimeout."""


class StreamError(HarnessError):
    """A streamed reply went wrong."""


class StreamStalled(StreamError):
    """No bytes (``budget`` "stall"), no content before the TTFT deadline ("ttft"), or not over by the total
    deadline ("total": keep-alives and trickled bytes never extend it)."""

    def __init__(self, message: str, *, waited_s: float, budget: str = "stall") -> None:
        super().__init__(message)
        self.waited_s = waited_s
        self.budget = budget


class StreamTruncated(StreamError):
    """The stream ended without ``[DONE]`` or a finish_reason."""


class StreamErrorEvent(StreamError):
    """The server sent an error event. ``code`` is None when the server gave none (itself a finding)."""

    def __init__(
        self, message: str, *, code: int | str | None = None, error_type: str | None = None, raw: Any = None
    ) -> None:
        super().__init__(message if code is None else f"{message} [code {code}]")
        self.message = message
        self.code = code
        self.error_type = error_type
        self.raw = raw


class StreamProtocolError(StreamError):
    """Bytes that cannot be SSE: an over-long line, invalid UTF-8 where text was promised."""


class DiagnosedTimeout(HarnessError):
    """Our deadline passed. The job was cancelled (``cancelled`` says whether that worked) and diagnosed."""

    def __init__(
        self,
        message: str,
        *,
        job_id: str,
        elapsed_s: float,
        diagnosis: Diagnosis,
        health: Health | None,
        cancelled: bool,
        last_status: str | None = None,
    ) -> None:
        super().__init__(message)
        self.job_id = job_id
        self.elapsed_s = elapsed_s
        self.diagnosis = diagnosis
        self.health = health
        self.cancelled = cancelled
        self.last_status = last_status


class ZombieWorker(DiagnosedTimeout):
    """Workers report idle/ready/running/unhealthy, yet the queue does not move."""


class ColdStartTooSlow(DiagnosedTimeout):
    """Workers were still initializing when time ran out."""


class NoCapacity(DiagnosedTimeout):
    """No workers, or only throttled ones: the platform gave this endpoint no GPU."""


class QueueBacklog(DiagnosedTimeout):
    """The queue moves, but too slowly for this job to be reached in time."""


class SlowExecution(DiagnosedTimeout):
    """The job was IN_PROGRESS on a worker when time ran out."""
