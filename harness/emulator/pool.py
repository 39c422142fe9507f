"""The endpoint's state: a FIFO queue, workers that scale 0..N, and jobs with real timestamps.

Everything runs on one asyncio loop (the emulator's), so state changes need no locks. Each job has
an Event that is set and replaced on every change; waiting routes (/runsync, /status-sync, /stream
holds) wait on it with a timeout. delayTime and executionTime come from timestamps taken when things
happen, never from a model.

Time is the event loop's (``loop.time()``, asyncio's sleeps and timeouts) unless a ``clock`` is given:
inject a virtual-time loop and a whole emulator — cold starts, idle timeouts, FlashBoot windows — runs
in microseconds with the same decisions (tests/virtualtime.py). Retention and TTL deadlines sit in a heap,
so an idle emulator does no work per retained job (after a 30,000-job capacity run it scanned them all,
20 times a second).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import heapq
import logging
import math
import random
import traceback
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from harness.core.jobs import TERMINAL, JobStatus
from harness.emulator.config import EmulatorConfig
from harness.emulator.handlers import HandlerFn, Outcome, load_handler, run_handler

__all__ = ["EJob", "EWorker", "Endpoint"]

log = logging.getLogger("harness.emulator")
_TICK_S = 0.05


def _ms(seconds: float) -> int:
    return round(seconds * 1000)


@dataclass(slots=True)
class EJob:
    id: str
    input: Any
    policy: dict[str, Any]
    sync: bool
    submitted_at: float
    status: JobStatus = JobStatus.IN_QUEUE
    queued_at: float = 0.0
    started_at: float | None = None
    finished_at: float | None = None
    output: Any = None
    error: str | None = None
    worker_id: str | None = None
    retries: int = 0
    buffer: list[Any] = field(default_factory=list)
    retain_until: float = math.inf
    expires_at: float = math.inf
    task: asyncio.Task[None] | None = None
    event: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL

    def touch(self) -> None:
        """Wake everyone waiting on this job; later waiters get a fresh event."""
        self.event.set()
        self.event = asyncio.Event()

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id, "status": self.status}
        if self.started_at is not None:
            out["delayTime"] = _ms(self.started_at - self.queued_at)
        if self.finished_at is not None and self.started_at is not None:
            out["executionTime"] = _ms(self.finished_at - self.started_at)
        if self.status == JobStatus.COMPLETED or (self.output is not None and self.status != JobStatus.IN_QUEUE):
            out["output"] = self.output
        if self.error is not None:
            out["error"] = self.error
        if self.worker_id is not None:
            out["workerId"] = self.worker_id
        if self.retries:
            out["retries"] = self.retries
        return out


@dataclass(slots=True)
class EWorker:
    id: str
    state: str = "initializing"  # initializing | idle | running | unhealthy | throttled
    handler: HandlerFn | None = None
    jobs: set[str] = field(default_factory=set)
    idle_since: float = 0.0
    finished: int = 0
    starts: int = 0
    cold_start_s: float = 0.0
    wake_at: float | None = None
    logs: list[str] = field(default_factory=list)
    task: asyncio.Task[None] | None = None
    # A remote worker (a process or container running the runpod SDK) takes its jobs through the worker API.
    remote: bool = False
    take: tuple[asyncio.Future[list[dict[str, Any]]], int] | None = None  # a held job take: (reply, how many)
    stops: list[str] = field(default_factory=list)  # job ids it must stop (cancel, executionTimeout)
    stopping: set[str] = field(default_factory=set)  # told to stop, maybe still running: held until it lets go
    stop_event: asyncio.Event = field(default_factory=asyncio.Event)
    spawned_at: float = 0.0
    last_ping: float | None = None
    milestones: dict[str, float] = field(default_factory=dict)  # seconds after spawn: first_output, sdk_start ...
    sdk: str = ""  # the runpod SDK version its pings report
    exits: list[str] = field(default_factory=list)  # why each previous process ended


class WorkerLauncher(Protocol):
    """Starts and stops remote workers (harness.emulator.processes): ``run`` owns one worker's processes until
    it is cancelled, restarting them after crashes; ``stop`` ends the current one (SIGTERM, then SIGKILL)."""

    def attach(self, endpoint: Endpoint) -> None: ...

    async def run(self, w: EWorker) -> None: ...

    async def stop(self, w: EWorker) -> None: ...


class Endpoint:
    def __init__(
        self,
        config: EmulatorConfig,
        *,
        clock: Callable[[], float] | None = None,
        launcher: WorkerLauncher | None = None,
    ) -> None:
        self.config = config
        self._clock = clock
        self.launcher = launcher
        if launcher is not None:
            launcher.attach(self)
        self.jobs: dict[str, EJob] = {}
        self.queue: deque[str] = deque()
        self.workers: dict[str, EWorker] = {}
        self.completed = 0
        self.failed = 0
        self.retried = 0
        self.last_scale_down = -math.inf
        self._rng = random.Random(config.seed)
        self._ticker: asyncio.Task[None] | None = None
        self._stops: set[asyncio.Task[None]] = set()  # launcher stops in flight: awaited when the emulator stops
        self.events: list[tuple[float, str, str]] = []  # (t, kind, detail): a bounded audit trail
        self._deadlines: list[tuple[float, str]] = []  # (when, job id): retention ends or ttl expires
        self.is_closing = False

    def now(self) -> float:
        return self._clock() if self._clock is not None else asyncio.get_running_loop().time()

    def _remind(self, when: float, job: EJob) -> None:
        if when < math.inf:
            heapq.heappush(self._deadlines, (when, job.id))

    # --- lifecycle --------------------------------------------------------------------

    def start(self) -> None:
        self._ticker = asyncio.get_running_loop().create_task(self._tick_forever())
        self._reconcile()

    def closing(self) -> None:
        """Shutdown begins: answer every held request now (job takes, stop polls, runsync and status waits)."""
        if self.is_closing:
            return
        self.is_closing = True
        for w in self.workers.values():
            if w.take is not None and not w.take[0].done():
                w.take[0].set_result([])
            w.stop_event.set()
            if w.remote and w.task is not None and not w.task.done():
                w.task.cancel()  # SIGTERM now: a worker answered 204 asks again at once
        for job in self.jobs.values():
            job.touch()

    async def stop(self) -> None:
        self.closing()
        tasks = [
            t
            for t in [self._ticker] + [w.task for w in self.workers.values()] + [j.task for j in self.jobs.values()]
            if t is not None and not t.done()
        ]
        stops = list(self._stops)  # a process being stopped is reaped, never left to a closed loop
        for t in tasks:
            if not t.cancelling():  # a worker already stopping awaits its process's exit: let it
                t.cancel()
        for t in tasks + stops:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t

    def note(self, kind: str, detail: str) -> None:
        self.events.append((self.now(), kind, detail))
        if len(self.events) > 10_000:
            del self.events[:1000]

    # --- jobs -------------------------------------------------------------------------

    def submit(self, job_input: Any, policy: dict[str, Any] | None, *, sync: bool) -> EJob:
        now = self.now()
        job_id = ("sync-" if sync else "") + str(uuid.uuid4()) + "-e1"
        policy = policy or {}
        job = EJob(job_id, job_input, policy, sync, submitted_at=now, queued_at=now)
        ttl = policy.get("ttl")
        if isinstance(ttl, (int, float)) and ttl > 0:
            job.expires_at = now + ttl / 1000
            self._remind(job.expires_at, job)
        self.jobs[job_id] = job
        self.queue.append(job_id)
        self._reconcile()
        return job

    def get(self, job_id: str) -> EJob | None:
        return self.jobs.get(job_id)

    async def wait(self, job: EJob, seconds: float, *, until_chunk: bool = False) -> None:
        """Until the job is terminal (or has buffered chunks), at most ``seconds``."""
        deadline = self.now() + max(0.0, seconds)
        while not job.terminal and not (until_chunk and job.buffer) and not self.is_closing:
            remaining = deadline - self.now()
            if remaining <= 0:
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(job.event.wait(), remaining)

    def cancel(self, job: EJob) -> None:
        if job.terminal:
            return
        if job.status == JobStatus.IN_QUEUE:
            with contextlib.suppress(ValueError):
                self.queue.remove(job.id)
        job.status = JobStatus.CANCELLED
        job.finished_at = self.now()
        job.retain_until = job.finished_at + self._retention(job)
        self._remind(job.retain_until, job)
        if job.task is not None:
            job.task.cancel()  # the handler really stops (async handlers at once, generators at their next yield)
        worker = self.workers.get(job.worker_id or "")
        if worker is not None and worker.remote and job.id in worker.jobs:
            self.stop_remote(worker, job.id)  # busy until its SDK lets go of it; a late result changes nothing
        self.note("cancel", job.id)
        job.touch()
        self._reconcile()

    def retry(self, job: EJob) -> bool:
        if job.status not in (JobStatus.FAILED, JobStatus.TIMED_OUT):
            return False
        now = self.now()
        job.status, job.output, job.error, job.buffer = JobStatus.IN_QUEUE, None, None, []
        job.started_at = job.finished_at = job.worker_id = None
        job.queued_at, job.retain_until = now, math.inf
        job.retries += 1
        self.retried += 1
        self.queue.append(job.id)
        job.touch()
        self._reconcile()
        return True

    def purge(self) -> int:
        removed = 0
        while self.queue:
            job = self.jobs.get(self.queue.popleft())
            if job is not None and job.status == JobStatus.IN_QUEUE:
                del self.jobs[job.id]
                job.status = JobStatus.CANCELLED
                job.touch()
                removed += 1
        return removed

    def health(self) -> dict[str, Any]:
        states = [w.state for w in self.workers.values()]
        idle, running = states.count("idle"), states.count("running")
        return {
            "jobs": {
                "completed": self.completed,
                "failed": self.failed,
                "inProgress": sum(1 for j in self.jobs.values() if j.status == JobStatus.IN_PROGRESS),
                "inQueue": len(self.queue),
                "retried": self.retried,
            },
            "workers": {
                "idle": idle,
                "initializing": states.count("initializing"),
                "ready": idle + running,
                "running": running,
                "throttled": states.count("throttled"),
                "unhealthy": states.count("unhealthy"),
            },
        }

    def _retention(self, job: EJob) -> float:
        return self.config.retention_runsync_s if job.sync else self.config.retention_run_s

    # --- scheduling -------------------------------------------------------------------

    def _dispatchable(self, w: EWorker) -> bool:
        if w.remote:  # it asked for jobs: its SDK decides its concurrency
            return w.take is not None and w.state in ("idle", "running")
        zombie = self.config.faults.zombie
        if zombie in ("ignores_queue", "stuck_running") and w.finished >= self.config.faults.zombie_after_jobs:
            return False
        return w.state in ("idle", "running") and len(w.jobs) < self.config.concurrency

    def _awake(self, w: EWorker, now: float) -> bool:
        """The idle-pickup model: a worker idle for a while takes a moment to notice a job (in-process workers
        only: a real worker's pickup is whatever its SDK does)."""
        cfg = self.config
        if w.remote or cfg.idle_pickup_s <= 0 or w.state != "idle" or now - w.idle_since < cfg.hot_window_s:
            return True
        if w.wake_at is None:
            w.wake_at = now + cfg.idle_pickup_s
            asyncio.get_running_loop().call_later(cfg.idle_pickup_s, self._reconcile)
        return now >= w.wake_at

    def _reconcile(self) -> None:
        """Dispatch queued jobs to free workers, then ask for more workers if the queue needs them."""
        now = self.now()
        for w in self.workers.values():
            if not (self.queue and self._dispatchable(w)) or not self._awake(w, now):
                continue
            w.wake_at = None  # it noticed the queue: the next idle spell starts a new wake-up
            if w.remote:
                self._hand_over(w, now)
                continue
            while self.queue and self._dispatchable(w):
                job = self.jobs.get(self.queue.popleft())
                if job is None or job.status != JobStatus.IN_QUEUE:
                    continue
                self._start_job(w, job)
        need = len(self.queue) + sum(len(w.jobs) for w in self.workers.values())
        desired = min(self.config.max_workers, max(self.config.min_workers, math.ceil(need / self.config.concurrency)))
        while len(self.workers) < desired:
            self._add_worker()

    def _hand_over(self, w: EWorker, now: float) -> None:
        """Answer a remote worker's held job take with up to as many queued jobs as it asked for."""
        assert w.take is not None
        reply, wanted = w.take
        given: list[dict[str, Any]] = []
        while self.queue and len(given) < wanted:
            job = self.jobs.get(self.queue.popleft())
            if job is None or job.status != JobStatus.IN_QUEUE:
                continue
            job.status, job.started_at, job.worker_id = JobStatus.IN_PROGRESS, now, w.id
            w.jobs.add(job.id)
            limit = job.policy.get("executionTimeout")
            limit_s = limit / 1000 if isinstance(limit, (int, float)) and limit > 0 else self.config.execution_timeout_s
            asyncio.get_running_loop().call_later(limit_s, self._timed_out, job, limit_s)
            job.touch()
            given.append({"id": job.id, "input": job.input})
        if given:
            w.take, w.state = None, "running"
            if not reply.done():
                reply.set_result(given)

    def _timed_out(self, job: EJob, limit_s: float) -> None:
        """A remote job past its executionTimeout: TIMED_OUT here, and its worker is told to stop it."""
        w = self.workers.get(job.worker_id or "")
        if job.status != JobStatus.IN_PROGRESS or w is None:
            return
        job.status, job.error = JobStatus.TIMED_OUT, f"execution timeout: job ran longer than {limit_s:g} s"
        self.finish(w, job, release=False)
        self.stop_remote(w, job.id)

    def dispatch(self) -> None:
        """Hand queued jobs to workers that can take them (and start workers if the queue needs more)."""
        self._reconcile()

    def restart(self, w: EWorker, why: str) -> None:
        """Stop a remote worker's process; its launcher starts a fresh one (a cold start again)."""
        if self.launcher is not None:
            self.note("restart", f"{w.id}: {why}")
            w.state = "initializing"
            self._stop_worker(w)

    def _stop_worker(self, w: EWorker) -> None:
        assert self.launcher is not None
        task = asyncio.get_running_loop().create_task(self.launcher.stop(w))
        self._stops.add(task)
        task.add_done_callback(self._stops.discard)

    def stop_remote(self, w: EWorker, job_id: str) -> None:
        """Tell a remote worker to stop a job. It stays busy with it until it lets go: a late result for it, or a
        heartbeat that no longer lists it (harness.emulator.workerapi); until then each heartbeat that still
        lists it repeats the signal (runpod 1.12 drops a stop that arrives before the job's task exists)."""
        w.stopping.add(job_id)
        self.signal_stop(w, job_id)

    def release(self, w: EWorker, job_id: str) -> None:
        """A remote worker let go of a job it had been told to stop."""
        w.stopping.discard(job_id)
        if job_id in w.jobs:
            w.jobs.discard(job_id)
            self._settle(w, None)
            self._reconcile()

    def signal_stop(self, w: EWorker, job_id: str) -> None:
        w.stops.append(job_id)
        w.stop_event.set()

    def _add_worker(self) -> None:
        w = EWorker(id=f"emu-{uuid.uuid4().hex[:12]}", remote=self.launcher is not None)
        self.workers[w.id] = w
        if sum(1 for x in self.workers.values() if x.state == "throttled") < self.config.faults.throttled:
            w.state = "throttled"  # exists, never gets a GPU
            return
        loop = asyncio.get_running_loop()
        w.task = loop.create_task(self.launcher.run(w) if self.launcher is not None else self._boot(w))

    async def _boot(self, w: EWorker) -> None:
        """Cold start: wait for the machine, then import the handler (the expensive part on GPUs)."""
        cfg = self.config
        while True:
            t0 = self.now()
            w.state, w.starts = "initializing", w.starts + 1
            flash = cfg.flashboot and t0 - self.last_scale_down <= cfg.flashboot_window_s
            await asyncio.sleep(cfg.flashboot_start_s if flash else cfg.cold_start.sample(self._rng))
            try:
                w.handler = await asyncio.to_thread(
                    load_handler, cfg.handler, worker_options=cfg.worker, crash_message=cfg.faults.crash_at_import
                )
            except Exception as exc:
                w.state = "unhealthy"
                w.logs.append("".join(traceback.format_exception(exc)))
                self.note("crash", f"{w.id}: {type(exc).__name__}: {exc}")
                await asyncio.sleep(cfg.faults.crash_restart_s)  # the platform restarts it: a crash loop
                continue
            w.cold_start_s = self.now() - t0
            report = getattr(getattr(w.handler, "engine", None), "load_report", None)
            if report:
                w.logs.append(f"engine load: {report}")
            self.note("ready", f"{w.id} in {w.cold_start_s:.3f}s" + (" (flashboot)" if flash else ""))
            zombie = cfg.faults.zombie == "stuck_running" and cfg.faults.zombie_after_jobs == 0
            w.state, w.idle_since = ("running" if zombie else "idle"), self.now()
            self._reconcile()
            return

    def _start_job(self, w: EWorker, job: EJob) -> None:
        now = self.now()
        job.status, job.started_at, job.worker_id = JobStatus.IN_PROGRESS, now, w.id
        w.jobs.add(job.id)
        w.state = "running"
        job.task = asyncio.get_running_loop().create_task(self._execute(w, job))
        job.touch()

    async def _execute(self, w: EWorker, job: EJob) -> None:
        cfg = self.config
        limit = job.policy.get("executionTimeout")
        limit_s = limit / 1000 if isinstance(limit, (int, float)) and limit > 0 else cfg.execution_timeout_s
        outcome: Outcome | None = None
        try:
            async with asyncio.timeout(limit_s):
                if cfg.faults.zombie == "takes_jobs" and w.finished >= cfg.faults.zombie_after_jobs:
                    await asyncio.Event().wait()  # took the job, will never finish it
                assert w.handler is not None

                outcome = await run_handler(
                    w.handler,
                    {"id": job.id, "input": job.input},
                    on_chunk=functools.partial(self.stream_chunk, job),
                    aggregate=cfg.return_aggregate_stream,
                    fail_on_yielded_error=cfg.error_semantics == "runpod>=1.7.7",
                    worker_id=w.id,
                )
        except TimeoutError:
            job.status, job.error = JobStatus.TIMED_OUT, f"execution timeout: job ran longer than {limit_s:g} s"
        except asyncio.CancelledError:
            pass  # cancel() already set CANCELLED; TTL expiry removed the job
        finally:
            if outcome is not None and job.status == JobStatus.IN_PROGRESS:
                self.conclude(w, job, outcome)
            else:
                self.finish(w, job)

    # --- what a worker reports (in-process, or a remote worker through the worker API) ---

    def progress(self, job: EJob, output: Any) -> None:
        """``runpod.serverless.progress_update``: the output so far shows in /status while the job runs."""
        job.output = output
        job.touch()

    def stream_chunk(self, job: EJob, output: Any) -> None:
        """One yielded value, for /stream (none once the job has ended)."""
        if not job.terminal:
            job.buffer.append(output)
            job.touch()

    def conclude(self, w: EWorker, job: EJob, outcome: Outcome, *, release: bool = True) -> None:
        """The worker's result: the job's final status, output and error, then :meth:`finish`."""
        job.status, job.output, job.error = outcome.status, outcome.output, outcome.error
        self.finish(w, job, release=release)

    def finish(self, w: EWorker, job: EJob, *, release: bool = True) -> None:
        """The job has its final status (or was cancelled): count it, keep it for its retention window, free
        the worker (unless ``release`` is False: a remote worker still has to let go of it)."""
        now = self.now()
        if job.status is JobStatus.COMPLETED:
            self.completed += 1
        elif job.status in (JobStatus.FAILED, JobStatus.TIMED_OUT):
            self.failed += 1
        if job.finished_at is None or job.status != JobStatus.CANCELLED:
            job.finished_at = now
        job.retain_until = now + self._retention(job)
        self._remind(job.retain_until, job)
        w.finished += 1
        if release:
            w.jobs.discard(job.id)
            self._settle(w, now)
        self.note("finish", f"{job.id} {job.status}")
        job.touch()
        self._reconcile()

    def _settle(self, w: EWorker, now: float | None) -> None:
        """A worker with no job left goes idle (unless a zombie fault keeps it 'running')."""
        cfg = self.config
        if not w.jobs and w.state == "running":
            w.state, w.idle_since = "idle", now if now is not None else self.now()
            if cfg.faults.zombie == "stuck_running" and w.finished >= cfg.faults.zombie_after_jobs:
                w.state = "running"

    async def _tick_forever(self) -> None:
        while True:
            await asyncio.sleep(_TICK_S)
            try:
                self._tick(self.now())
            except Exception:  # one bad tick must not stop the endpoint
                log.exception("emulator tick failed")

    def _tick(self, now: float) -> None:
        while self._deadlines and self._deadlines[0][0] <= now:
            _, job_id = heapq.heappop(self._deadlines)
            job = self.jobs.get(job_id)
            if job is None:
                continue
            if now >= job.expires_at and not job.terminal:  # policy.ttl: the job vanishes (404)
                if job.status == JobStatus.IN_QUEUE:
                    with contextlib.suppress(ValueError):
                        self.queue.remove(job.id)
                if job.task is not None:
                    job.task.cancel()
                job.status = JobStatus.CANCELLED
                job.touch()
                del self.jobs[job.id]
            elif job.terminal and now >= job.retain_until:
                del self.jobs[job.id]
        stuck = self.config.faults.zombie is not None  # a zombie never scales down: that is the bug
        idle = [
            w
            for w in self.workers.values()
            if w.state == "idle"
            and not w.jobs
            and now - w.idle_since >= self.config.idle_timeout_s
            and not (stuck and w.finished >= self.config.faults.zombie_after_jobs)
        ]
        for w in idle:
            if len(self.workers) <= self.config.min_workers:
                break
            del self.workers[w.id]
            if w.task is not None and not w.task.done():
                w.task.cancel()  # a remote worker's process is stopped (SIGTERM, then SIGKILL)
            self.last_scale_down = now
            self.note("scale-down", w.id)
        if self.launcher is not None:
            self._check_pings(now)
        self._reconcile()

    def _check_pings(self, now: float) -> None:
        """A remote worker silent for three ping intervals is lost: unhealthy, its jobs requeued, restarted."""
        limit = 3 * self.config.ping_interval_ms / 1000
        for w in list(self.workers.values()):
            silent = w.last_ping is not None and now - w.last_ping > limit
            if w.remote and silent and w.state in ("idle", "running") and self.launcher is not None:
                self.worker_lost(w, f"no ping for {now - (w.last_ping or now):.0f} s")
                self._stop_worker(w)  # its run() starts a new one

    def worker_lost(self, w: EWorker, why: str) -> None:
        """A remote worker died or went silent: it is unhealthy, and each job it held goes back to the queue
        once (the platform retries it), then fails."""
        w.state = "unhealthy"
        w.last_ping = None
        w.stopping.clear()
        if w.take is not None and not w.take[0].done():
            w.take[0].set_result([])
        w.take = None
        self.note("lost", f"{w.id}: {why}")
        for job_id in sorted(w.jobs):
            job = self.jobs.get(job_id)
            w.jobs.discard(job_id)
            if job is None or job.terminal:
                continue
            if job.retries < 1:
                job.status, job.started_at, job.worker_id = JobStatus.IN_QUEUE, None, None
                job.retries += 1
                self.retried += 1
                self.queue.appendleft(job.id)
                job.touch()
            else:
                job.status, job.error = JobStatus.FAILED, f"the worker running this job was lost twice ({why})"
                self.finish(w, job)
        self._reconcile()
