"""RunPod job objects and statuses (no I/O)."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

from harness.errors import JobCancelled, JobError, JobFailed, JobTimedOut, ProtocolError
from harness.shapes import worker_error

__all__ = ["TERMINAL", "Job", "JobStatus", "raise_for_job"]


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
        return cls(
            id=job_id,
            status=status,
            delay_time_ms=_ms(data.get("delayTime")),
            execution_time_ms=_ms(data.get("executionTime")),
            output=data.get("output"),
            error=data.get("error"),
            worker_id=data.get("workerId") if isinstance(data.get("workerId"), str) else None,
            retries=data.get("retries") if isinstance(data.get("retries"), int) else None,
            raw=data,
        )


def _ms(v: Any) -> int | None:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
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
