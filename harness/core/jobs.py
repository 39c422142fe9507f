"""RunPod job objects, statuses, and what a job's error says (no I/O).

:func:`worker_error` reads every error a worker can produce — a dict, a JSON string from runpod's
exception handler, a Python repr string (runpod >= 1.7.7 fails a job with ``str(dict)``), plain text —
into one :class:`~harness.core.errors.WorkerError`. It lives with the job model (not the output-shape
recognizer) because a FAILED job's ``error`` is part of the job.
"""

from __future__ import annotations

import ast
import enum
import json
import math
from dataclasses import dataclass, field
from typing import Any

from harness.core.errors import JobCancelled, JobError, JobFailed, JobTimedOut, ProtocolError, WorkerError

__all__ = ["TERMINAL", "Job", "JobStatus", "duration_ms", "raise_for_job", "show_value", "worker_error"]

_MAX_MESSAGE = 2000
_MAX_LITERAL = 100_000  # ast.literal_eval on longer repr strings is not worth the CPU
_MAX_MS = 28 * 24 * 3600 * 1000  # RunPod's longest executionTimeout is 7 days: four weeks is no duration


class JobStatus(enum.StrEnum):
    IN_QUEUE = "IN_QUEUE"
    IN_PROGRESS = "IN_PROGRESS"
    RUNNING = "RUNNING"  # mentioned by RunPod's docs; treated like IN_PROGRESS
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
    TIMED_OUT = "TIMED_OUT"

    @property
    def terminal(self) -> bool:
        return self in TERMINAL


# runpod-python forgets CANCELLED here, so its clients poll a cancelled job forever.
TERMINAL = frozenset({JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED, JobStatus.TIMED_OUT})


@dataclass(frozen=True, slots=True)
class Job:
    id: str
    status: JobStatus
    delay_time_ms: int | None = None
    execution_time_ms: int | None = None
    output: Any = None
    error: Any = None
    worker_id: str | None = None
    retries: int | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)
    anomalies: tuple[str, ...] = ()  # numbers the endpoint sent that are no numbers of theirs (ignored, named)

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL

    @classmethod
    def from_json(cls, data: Any, *, fallback_id: str | None = None) -> Job:
        """Build from a reply; a reply that is no job raises ProtocolError."""
        if not isinstance(data, dict):
            raise ProtocolError(f"expected a job object, got {type(data).__name__}")
        job_id = data.get("id", fallback_id)
        if not isinstance(job_id, str) or not job_id:
            raise ProtocolError("job reply without an id")
        try:
            status = JobStatus(str(data.get("status")))
        except ValueError:
            raise ProtocolError(f"job {job_id}: unknown status {str(data.get('status'))[:40]!r}") from None
        anomalies: list[str] = []
        return cls(
            id=job_id,
            status=status,
            delay_time_ms=duration_ms(data, "delayTime", anomalies),
            execution_time_ms=duration_ms(data, "executionTime", anomalies),
            output=data.get("output"),
            error=data.get("error"),
            worker_id=data.get("workerId") if isinstance(data.get("workerId"), str) else None,
            retries=data.get("retries") if isinstance(data.get("retries"), int) else None,
            raw=data,
            anomalies=tuple(anomalies),
        )


def show_value(v: Any) -> str:
    """A value from an endpoint, short enough for a message."""
    text = repr(v)
    return text if len(text) <= 40 else text[:37] + "..."


def duration_ms(data: dict[str, Any], name: str, anomalies: list[str]) -> int | None:
    """``data[name]`` as whole milliseconds; absent is None; anything that is no duration (not a number, NaN,
    infinite, negative, beyond four weeks) is None too, and said in ``anomalies``."""
    v = data.get(name)
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or not 0 <= v <= _MAX_MS:
        anomalies.append(f"{name} {show_value(v)} is not a duration in ms (ignored)")
        return None
    return int(v)


def raise_for_job(job: Job) -> Job:
    """Return a COMPLETED job; raise the typed JobError for any other terminal status."""
    if job.status is JobStatus.COMPLETED:
        return job
    if job.status is JobStatus.FAILED:
        werr = worker_error(job.error) if job.error is not None else None
        detail = werr.message if werr is not None else "no error message"
        raise JobFailed(f"job {job.id} FAILED: {detail}", job=job, worker_error=werr)
    if job.status is JobStatus.CANCELLED:
        raise JobCancelled(f"job {job.id} was CANCELLED", job=job)
    if job.status is JobStatus.TIMED_OUT:
        detail = f": {worker_error(job.error).message}" if job.error else ""
        raise JobTimedOut(f"job {job.id} TIMED_OUT (platform executionTimeout){detail}", job=job)
    raise JobError(f"job {job.id} is not finished ({job.status})", job=job)


def worker_error(err: Any, *, default_type: str | None = None) -> WorkerError:
    """Parse any error a worker can produce: a dict, a JSON string, a Python repr string, text."""
    if isinstance(err, dict):
        return _error_from_dict(err, default_type)
    if isinstance(err, str):
        text = err.strip()
        parsed = _literal(text)
        if isinstance(parsed, dict):
            return _error_from_dict(parsed, default_type, raw=err)
        wrapped = _wrapped_envelope(text)
        if wrapped is not None:
            return wrapped
        return WorkerError(bounded(text) or "worker error (empty message)", error_type=default_type, raw=err)
    return WorkerError(bounded(repr(err)), error_type=default_type, raw=err)


def _literal(text: str) -> Any:
    """A JSON or Python-literal object/list, or None."""
    if text[:1] not in "{[" or len(text) > _MAX_LITERAL:
        return None
    try:
        return json.loads(text)
    except ValueError:
        try:
            return ast.literal_eval(text)
        except (ValueError, SyntaxError, MemoryError, RecursionError, TypeError):
            return None


def _wrapped_envelope(text: str) -> WorkerError | None:
    """worker-vllm v2.24+ wraps vLLM's error JSON in its own text (``vLLM returned HTTP 400: {"error": {...}}``):
    the inner envelope's type, param and code are the useful ones."""
    start = text.find("{")
    if start <= 0:
        return None
    inner = _literal(text[start:])
    if not isinstance(inner, dict) or not isinstance(inner.get("error"), dict):
        return None
    err = _error_from_dict(inner, None, raw=text)
    prefix = text[:start].strip().rstrip(":").strip()
    return WorkerError(
        f"{prefix}: {err.message}" if prefix else err.message,
        error_type=err.error_type,
        code=err.code,
        param=err.param,
        raw=text,
    )


def _error_from_dict(d: dict[Any, Any], default_type: str | None, raw: Any = None) -> WorkerError:
    raw = d if raw is None else raw
    inner = d.get("error")
    if isinstance(inner, dict):
        d = inner
    elif isinstance(inner, str) and inner and "error_message" not in d:
        nested = worker_error(inner) if "{" in inner else None  # {"error": "vLLM returned HTTP 400: {...}"}
        if nested is not None and (nested.code is not None or nested.param is not None):
            return WorkerError(
                nested.message,
                error_type=nested.error_type or _str_or(d.get("type"), default_type),
                code=nested.code,
                param=nested.param,
                raw=raw,
            )
        return WorkerError(
            bounded(inner), error_type=_str_or(d.get("type"), default_type), code=_code(d.get("code")), raw=raw
        )
    message = d.get("error_message", d.get("message", d.get("detail")))
    error_type = d.get("error_type", d.get("type"))
    if error_type == "error" and d.get("code") is not None:  # {"type":"error","code":...} events
        error_type = None
    text = bounded(str(message)) if message not in (None, "") else ""
    etype = _str_or(error_type, default_type)
    if isinstance(message, str) and (wrapped := _wrapped_envelope(message)) is not None:
        return WorkerError(
            wrapped.message,
            error_type=wrapped.error_type or etype,
            code=wrapped.code if wrapped.code is not None else _code(d.get("code")),
            param=wrapped.param,
            raw=raw,
        )
    tb = d.get("error_traceback")
    param = d.get("param")
    return WorkerError(
        text or (f"{etype} (no message)" if etype else "worker error (no message)"),
        error_type=etype,
        code=_code(d.get("code")),
        param=param if isinstance(param, str) and param else None,
        traceback=tb if isinstance(tb, str) else None,
        raw=raw,
    )


def _code(v: Any) -> int | str | None:
    if v is None or isinstance(v, bool):
        return None
    if isinstance(v, (int, str)):
        return v
    return str(v)


def _str_or(v: Any, default: str | None) -> str | None:
    return v if isinstance(v, str) and v else default


def bounded(text: str) -> str:
    """At most a couple of thousand characters: messages end up in terminals and reports."""
    return text if len(text) <= _MAX_MESSAGE else text[:_MAX_MESSAGE] + f"... ({len(text)} chars)"
