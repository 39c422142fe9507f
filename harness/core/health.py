"""/health snapshots and the diagnosis of a job that does not finish (no I/O).

RunPod's /health has changed keys over time (``ready``/``throttled`` in 2024 SDK docs, only
``idle``/``running`` in current docs, ``unhealthy`` in field reports), so parsing accepts missing
and extra keys: a missing count is ``None`` (unknown), never a made-up zero.

:class:`Watchdog` watches one job's status history plus health snapshots and tells

* early, once the job has sat IN_QUEUE for ``stuck_after_s``, whether the workers are zombies
  (an idle worker ignoring the queue, a crash loop, "running" workers with nothing in progress,
  or nothing finishing for a whole ``stuck_after_s`` window);
* at the deadline, the most likely cause: zombie, cold start, no capacity, backlog or slow execution.
  Some zombie evidence needs no history — "running" workers with nothing in progress, unhealthy workers
  with none running (field report 001's snapshot) — and counts at any deadline; a verdict from too
  little history says what it saw instead of inventing a busy worker.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

from harness.core.jobs import JobStatus, show_value

__all__ = ["Diagnosis", "DiagnosisKind", "Health", "JobCounts", "Watchdog", "WorkerCounts", "evident_zombie"]


_MAX_COUNT = 1_000_000  # more workers or jobs than any endpoint has: a number that means nothing


def _count(d: dict[str, Any], *keys: str, anomalies: list[str] | None = None, where: str = "") -> int | None:
    for k in keys:
        v = d.get(k)
        if isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= _MAX_COUNT:
            return v
        if v is not None and anomalies is not None:
            anomalies.append(f"/health {where}.{k} {show_value(v)} is not a count (ignored)")
    return None


@dataclass(frozen=True, slots=True)
class JobCounts:
    completed: int | None = None
    failed: int | None = None
    in_progress: int | None = None
    in_queue: int | None = None
    retried: int | None = None

    @property
    def done(self) -> int:
        return (self.completed or 0) + (self.failed or 0)


@dataclass(frozen=True, slots=True)
class WorkerCounts:
    idle: int | None = None
    initializing: int | None = None
    ready: int | None = None
    running: int | None = None
    throttled: int | None = None
    unhealthy: int | None = None

    @property
    def available(self) -> int:
        """Workers free to take a job: idle ones, else ready ones not running (older key sets)."""
        if self.idle is not None:
            return self.idle
        return max(0, (self.ready or 0) - (self.running or 0))

    @property
    def total(self) -> int:
        return sum(v or 0 for v in (self.idle, self.initializing, self.running, self.unhealthy)) + (
            0 if self.idle is not None else max(0, (self.ready or 0) - (self.running or 0))
        )


@dataclass(frozen=True, slots=True)
class Health:
    jobs: JobCounts
    workers: WorkerCounts
    taken_at: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict, compare=False)
    anomalies: tuple[str, ...] = field(default=(), compare=False)  # counts that were no counts (ignored, named)

    @classmethod
    def from_json(cls, data: Any, *, taken_at: float = 0.0) -> Health:
        data = data if isinstance(data, dict) else {}
        jobs = data.get("jobs") if isinstance(data.get("jobs"), dict) else {}
        workers = data.get("workers") if isinstance(data.get("workers"), dict) else {}
        bad: list[str] = []

        def job(*keys: str) -> int | None:
            return _count(jobs, *keys, anomalies=bad, where="jobs")

        def worker(key: str) -> int | None:
            return _count(workers, key, anomalies=bad, where="workers")

        return cls(
            jobs=JobCounts(
                completed=job("completed"),
                failed=job("failed"),
                in_progress=job("inProgress", "in_progress"),
                in_queue=job("inQueue", "in_queue"),
                retried=job("retried"),
            ),
            workers=WorkerCounts(
                idle=worker("idle"),
                initializing=worker("initializing"),
                ready=worker("ready"),
                running=worker("running"),
                throttled=worker("throttled"),
                unhealthy=worker("unhealthy"),
            ),
            taken_at=taken_at,
            extra={k: v for k, v in data.items() if k not in ("jobs", "workers")},
            anomalies=tuple(bad),
        )

    def summary(self) -> str:
        """One line with every count that was reported, e.g. for an exception message."""
        w, j = self.workers, self.jobs
        wk = [(n, getattr(w, n)) for n in ("idle", "ready", "running", "initializing", "throttled", "unhealthy")]
        jk = [("inQueue", j.in_queue), ("inProgress", j.in_progress), ("completed", j.completed), ("failed", j.failed)]
        ws = " ".join(f"{n}={v}" for n, v in wk if v is not None) or "none reported"
        js = " ".join(f"{n}={v}" for n, v in jk if v is not None) or "none reported"
        return f"workers {ws}; jobs {js}"


class DiagnosisKind(enum.StrEnum):
    ZOMBIE = "zombie-worker"
    COLD_START = "cold-start-too-slow"
    NO_CAPACITY = "no-capacity"
    BACKLOG = "queue-backlog"
    SLOW_EXECUTION = "slow-execution"
    UNDETERMINED = "undetermined"


@dataclass(frozen=True, slots=True)
class Diagnosis:
    kind: DiagnosisKind
    reason: str


@dataclass(slots=True)
class Watchdog:
    """Pure state machine: feed it observations, ask it what they mean."""

    stuck_after_s: float
    started_at: float
    health_every_s: float = 5.0
    snapshots: list[Health] = field(default_factory=list)
    status: JobStatus | None = None
    queued_since: float | None = None

    def observe_job(self, t: float, status: JobStatus) -> None:
        if status is JobStatus.IN_QUEUE:
            if self.queued_since is None:
                # The job was queued from submission unless we saw it leave the queue before.
                self.queued_since = self.started_at if self.status is None else t
        else:
            self.queued_since = None
        self.status = status

    def queued_for(self, t: float) -> float:
        return 0.0 if self.queued_since is None else t - self.queued_since

    def wants_health(self, t: float) -> bool:
        """Snapshots start at half the stuck threshold, so a movement window exists at the threshold."""
        if self.queued_for(t) < self.stuck_after_s / 2:
            return False
        return not self.snapshots or t - self.snapshots[-1].taken_at >= self.health_every_s

    def observe_health(self, health: Health) -> None:
        self.snapshots.append(health)
        if len(self.snapshots) > 256:  # a bounded history is all a diagnosis needs
            del self.snapshots[1:2]

    def early_verdict(self, t: float) -> Diagnosis | None:
        """A zombie verdict before the deadline, or None."""
        if self.status is not JobStatus.IN_QUEUE or self.queued_for(t) < self.stuck_after_s:
            return None
        return self._zombie(t, window=self.stuck_after_s)

    def final_verdict(self, t: float) -> Diagnosis:
        if self.status in (JobStatus.IN_PROGRESS, JobStatus.RUNNING):
            return Diagnosis(DiagnosisKind.SLOW_EXECUTION, "the job was running on a worker when time ran out")
        if not self.snapshots:
            return Diagnosis(DiagnosisKind.UNDETERMINED, "no /health snapshot could be taken")
        h = self.snapshots[-1]
        evident = evident_zombie(h)
        if evident is not None:
            return evident
        zombie = self._zombie(t, window=self.stuck_after_s / 2)
        if zombie is not None and self.queued_for(t) >= self.stuck_after_s / 2:
            return zombie
        w = h.workers
        if w.initializing:
            return Diagnosis(DiagnosisKind.COLD_START, f"{w.initializing} worker(s) still initializing")
        if w.total == 0:
            why = f"only {w.throttled} throttled worker(s)" if w.throttled else "no workers at all"
            return Diagnosis(DiagnosisKind.NO_CAPACITY, f"{why}: the platform gave this endpoint no GPU")
        moved = self._movement()
        if moved:
            return Diagnosis(DiagnosisKind.BACKLOG, f"the queue moves ({moved}) but did not reach this job in time")
        if w.running and h.jobs.in_progress:
            return Diagnosis(
                DiagnosisKind.BACKLOG,
                f"{w.running} worker(s) running {h.jobs.in_progress} job(s); too little history to see the queue move",
            )
        return Diagnosis(DiagnosisKind.UNDETERMINED, f"health does not explain the wait ({h.summary()})")

    def _window(self, t: float, window: float) -> tuple[Health, Health] | None:
        """Oldest and newest snapshot at least ``window`` apart, or None."""
        if len(self.snapshots) < 2:
            return None
        last = self.snapshots[-1]
        older = [h for h in self.snapshots if last.taken_at - h.taken_at >= window]
        return (older[-1], last) if older else None

    def _movement(self) -> str:
        if len(self.snapshots) < 2:
            return ""
        first, last = self.snapshots[0], self.snapshots[-1]
        finished = last.jobs.done - first.jobs.done
        if finished > 0:
            return f"{finished} job(s) finished in {last.taken_at - first.taken_at:.0f} s"
        if _fell(first.jobs.in_queue, last.jobs.in_queue):
            return f"inQueue fell from {first.jobs.in_queue} to {last.jobs.in_queue}"
        return ""

    def _zombie(self, t: float, *, window: float) -> Diagnosis | None:
        if not self.snapshots:
            return None
        h = self.snapshots[-1]
        w, queued = h.workers, self.queued_for(t)
        if w.available > 0:
            return Diagnosis(
                DiagnosisKind.ZOMBIE, f"{w.available} worker(s) free while this job waited {queued:.0f} s in the queue"
            )
        evident = evident_zombie(h)
        if evident is not None:
            return evident
        span = self._window(t, window)
        if w.running and span is not None:
            a, b = span
            if b.jobs.done == a.jobs.done and not _fell(a.jobs.in_queue, b.jobs.in_queue):
                return Diagnosis(
                    DiagnosisKind.ZOMBIE,
                    f"{w.running} worker(s) running but no job finished in {b.taken_at - a.taken_at:.0f} s",
                )
        return None


def evident_zombie(h: Health) -> Diagnosis | None:
    """Zombie evidence one snapshot shows, whatever the history: a crash loop, or 'running' with nothing running."""
    w = h.workers
    if w.unhealthy and not (w.initializing or w.running):
        return Diagnosis(
            DiagnosisKind.ZOMBIE,
            f"{w.unhealthy} unhealthy worker(s) and none running: a crash loop "
            "(the handler may die at import: run `devai-harness worker-check`)",
        )
    if w.running and h.jobs.in_progress == 0:
        extra = f", {w.unhealthy} unhealthy" if w.unhealthy else ""
        return Diagnosis(DiagnosisKind.ZOMBIE, f"{w.running} worker(s) 'running' but no job in progress{extra}")
    return None


def _fell(before: int | None, after: int | None) -> bool:
    return before is not None and after is not None and after < before
