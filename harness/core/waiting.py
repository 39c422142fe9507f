"""The job-wait state machine both drivers run (no I/O, no clock reads: times come in as arguments).

In the h11 style: the driver asks :meth:`JobWait.next` what to do, does it, and feeds back what it saw::

    wait = JobWait(job_id, started_at=now, timeout_s=300)
    while True:
        match wait.next(clock.now()):
            case Poll(wait_ms=ms):  wait.job_seen(now, <GET /status or /status-sync?wait=ms>, held=ms is not None)
            case FetchHealth():     wait.health_seen(<GET /health, or None when it failed>)
            case Sleep(seconds=s):  sleep(s)
            case Finished(job=j):   return j
            case GiveUp() as g:     cancelled = <POST /cancel>; raise wait.timeout_error(g, cancelled)

Decisions: poll quickly then back off (PollPolicy), long-poll ``/status-sync`` when the endpoint has it (each
hold at most one poll cap, so the watchdog still decides between holds; an endpoint that answers 404/405
falls back to ``/status`` once and for all), snapshot ``/health`` from half the stuck threshold on (every
``health_every_s``) and once more at the deadline, call a zombie early, and at the deadline give up with the
diagnosis. :meth:`timeout_error` is the one builder of the timeout error: typed fields and one message.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from harness.core.errors import (
    ColdStartTooSlow,
    DiagnosedTimeout,
    NoCapacity,
    QueueBacklog,
    SlowExecution,
    ZombieWorker,
)
from harness.core.health import Diagnosis, DiagnosisKind, Health, Watchdog
from harness.core.jobs import Job
from harness.core.polling import PollPolicy

__all__ = [
    "LONG_POLL_MS",
    "TIMEOUT_ERRORS",
    "Action",
    "FetchHealth",
    "Finished",
    "GiveUp",
    "JobWait",
    "Poll",
    "Sleep",
    "State",
]

LONG_POLL_MS = (1000, 300_000)  # the platform's accepted range for ?wait=
TIMEOUT_ERRORS: dict[DiagnosisKind, type[DiagnosedTimeout]] = {
    DiagnosisKind.ZOMBIE: ZombieWorker,
    DiagnosisKind.COLD_START: ColdStartTooSlow,
    DiagnosisKind.NO_CAPACITY: NoCapacity,
    DiagnosisKind.BACKLOG: QueueBacklog,
    DiagnosisKind.SLOW_EXECUTION: SlowExecution,
    DiagnosisKind.UNDETERMINED: DiagnosedTimeout,
}


@dataclass(frozen=True, slots=True)
class Poll:
    """Look at the job: ``wait_ms`` None = GET /status; else GET /status-sync/{id}?wait=wait_ms (a long poll,
    give the request ``http_timeout_s``)."""

    wait_ms: int | None

    @property
    def http_timeout_s(self) -> float | None:
        return None if self.wait_ms is None else self.wait_ms / 1000 + 15


@dataclass(frozen=True, slots=True)
class Sleep:
    seconds: float


@dataclass(frozen=True, slots=True)
class FetchHealth:
    """Take a /health snapshot (one attempt: a diagnosis must not push the deadline back with retries)."""


@dataclass(frozen=True, slots=True)
class Finished:
    job: Job


@dataclass(frozen=True, slots=True)
class GiveUp:
    """Cancel the job, then raise ``JobWait.timeout_error(give_up, cancelled)``."""

    job: Job
    diagnosis: Diagnosis
    health: Health | None
    elapsed_s: float


Action = Poll | Sleep | FetchHealth | Finished | GiveUp


class State(enum.Enum):
    """Where a wait is; :meth:`JobWait.next` turns it into an action, what is seen moves it on:

    POLL --job_seen--> HEALTH (a snapshot is due) | JUDGE | FINISHED (the job is terminal)
    HEALTH --health_seen--> JUDGE
    JUDGE --next--> POLL (after a Sleep, or at once when the server held the request) | DONE (GiveUp)
    FINISHED --next--> DONE (Finished)
    POLL --status_sync_refused--> POLL (without the long poll)
    """

    POLL = "poll"
    HEALTH = "health"
    JUDGE = "judge"
    FINISHED = "finished"
    DONE = "done"


class JobWait:
    """One job's wait. ``long_poll``: True/False when known for this endpoint, None to find out."""

    def __init__(
        self,
        job_id: str,
        *,
        started_at: float,
        timeout_s: float,
        poll: PollPolicy | None = None,
        stuck_after_s: float = 120.0,
        health_every_s: float = 5.0,
        long_poll: bool | None = None,
    ) -> None:
        self.job_id = job_id
        self.started_at = started_at
        self.deadline = started_at + timeout_s
        self.poll = poll or PollPolicy()
        self.health_every_s = health_every_s
        self.long_poll = long_poll
        self.dog = Watchdog(stuck_after_s=stuck_after_s, started_at=started_at, health_every_s=health_every_s)
        self.polls = 0
        self.state = State.POLL
        self._attempt = 0
        self._job: Job | None = None
        self._seen_at = started_at
        self._held = False

    # --- what to do ---------------------------------------------------------------------

    def next(self, now: float) -> Action:
        if self.state is State.DONE:
            raise RuntimeError("the wait is over")
        if self.state is State.POLL:
            return Poll(self._wait_ms(now))
        if self.state is State.HEALTH:
            return FetchHealth()
        if self.state is State.FINISHED:
            assert self._job is not None
            self.state = State.DONE
            return Finished(self._job)
        return self._judge()

    def _wait_ms(self, now: float) -> int | None:
        remaining = self.deadline - now
        if self.long_poll is False or remaining < LONG_POLL_MS[0] / 1000:
            return None
        return max(LONG_POLL_MS[0], int(min(remaining, self.poll.cap_s) * 1000))

    def _judge(self) -> Action:
        assert self._job is not None
        now = self._seen_at
        verdict = self.dog.early_verdict(now)
        if verdict is None and now >= self.deadline:
            verdict = self.dog.final_verdict(now)
        if verdict is not None:
            self.state = State.DONE
            health = self.dog.snapshots[-1] if self.dog.snapshots else None  # the state that mattered
            return GiveUp(self._job, verdict, health, now - self.started_at)
        self.state = State.POLL
        if self._held:  # the server already waited for us: look again at once
            return self.next(now)
        delay = self.poll.next_delay(self._attempt, self.deadline - now)
        self._attempt += 1
        return Sleep(delay)

    # --- what was seen ------------------------------------------------------------------

    def job_seen(self, now: float, job: Job, *, held: bool = False, progressed: bool = False) -> None:
        """A job reply. ``held``: the server held the request (a long poll) or there is more to fetch at
        once — look again without sleeping; ``progressed``: a stream produced chunks (come back quickly)."""
        self.polls += 1
        self._job, self._seen_at, self._held = job, now, held
        if held and self.long_poll is None:
            self.long_poll = True
        if job.terminal:
            self.state = State.FINISHED
            return
        if progressed or held:
            self._attempt = 0
        self.dog.observe_job(now, job.status)
        last = self.dog.snapshots[-1].taken_at if self.dog.snapshots else None
        stale = last is None or now - last >= self.health_every_s
        # The final verdict needs a current snapshot.
        self.state = State.HEALTH if self.dog.wants_health(now) or (now >= self.deadline and stale) else State.JUDGE

    def health_seen(self, health: Health | None) -> None:
        if health is not None:
            self.dog.observe_health(health)
        self.state = State.JUDGE

    def status_sync_refused(self, status_code: int) -> bool:
        """/status-sync answered an error. True: the endpoint has no such route (404/405 before it ever
        worked) — fall back to /status for good and poll again; False: a real error for the caller."""
        if self.long_poll or status_code not in (404, 405):
            return False
        self.long_poll = False
        self.state = State.POLL
        return True

    # --- the end ------------------------------------------------------------------------

    def timeout_error(self, give_up: GiveUp, cancelled: bool) -> DiagnosedTimeout:
        d, h = give_up.diagnosis, give_up.health
        msg = (
            f"job {give_up.job.id} not finished after {give_up.elapsed_s:.1f} s (last status {give_up.job.status}): "
            f"{d.kind}: {d.reason}. Health: {h.summary() if h else 'unavailable'}. "
            + ("The job was cancelled." if cancelled else "Cancelling the job FAILED: it may still bill.")
        )
        return TIMEOUT_ERRORS[d.kind](
            msg,
            job_id=give_up.job.id,
            elapsed_s=give_up.elapsed_s,
            diagnosis=d,
            health=h,
            cancelled=cancelled,
            last_status=str(give_up.job.status),
        )
