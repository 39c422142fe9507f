"""Async client for RunPod Serverless queue endpoints.

What it does that the field reports needed (../shared/seeds/):

* every wait has a wall-clock deadline; at the deadline the job is CANCELLED (it stops billing)
  and a :class:`~harness.errors.DiagnosedTimeout` says why: zombie worker, cold start, no
  capacity, backlog or slow execution, with the job id, the elapsed time and the /health numbers;
* a zombie worker is called out early, once the job has sat in the queue ``stuck_after_s``;
* ``runsync`` never loses the job id: a reply that is not final falls back to polling;
* polling starts quick and backs off; 429 honours Retry-After on https too; only idempotent calls
  are retried on 5xx/connection errors;
* the API key never appears in a repr, a log line or an exception message.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import re
from collections.abc import AsyncIterator, Mapping
from typing import Any

import httpx

from harness.clock import Clock, SystemClock
from harness.errors import (
    ColdStartTooSlow,
    ConfigError,
    DiagnosedTimeout,
    HarnessError,
    NoCapacity,
    ProtocolError,
    QueueBacklog,
    RequestTimeout,
    SlowExecution,
    StatusError,
    TransportError,
    ZombieWorker,
)
from harness.health import Diagnosis, DiagnosisKind, Health, Watchdog
from harness.jobs import Job, JobStatus, raise_for_job
from harness.polling import PollPolicy, RetryPolicy
from harness.transport import ClientLifecycle, HTTPCore

__all__ = ["DEFAULT_BASE_URL", "TIMEOUT_ERRORS", "RunPodClient"]

DEFAULT_BASE_URL = "https://api.runpod.ai/v2"
RUNSYNC_WAIT_MS = (1000, 300_000)  # the platform's accepted range for ?wait=
log = logging.getLogger("harness.runpod")
_ID = re.compile(r"^[A-Za-z0-9._-]{1,128}$")

TIMEOUT_ERRORS: dict[DiagnosisKind, type[DiagnosedTimeout]] = {
    DiagnosisKind.ZOMBIE: ZombieWorker,
    DiagnosisKind.COLD_START: ColdStartTooSlow,
    DiagnosisKind.NO_CAPACITY: NoCapacity,
    DiagnosisKind.BACKLOG: QueueBacklog,
    DiagnosisKind.SLOW_EXECUTION: SlowExecution,
    DiagnosisKind.UNDETERMINED: DiagnosedTimeout,
}


def _check_id(kind: str, value: str) -> str:
    if not isinstance(value, str) or not _ID.match(value):
        raise ConfigError(f"invalid {kind}: expected letters, digits, '.', '_' or '-' (1-128 chars)")
    return value


class RunPodClient(ClientLifecycle):
    """``async with RunPodClient(endpoint_id, api_key) as rp: job = await rp.run({...}, timeout=120)``"""

    def __init__(
        self,
        endpoint_id: str,
        api_key: str | None,
        *,
        base_url: str = DEFAULT_BASE_URL,
        transport: httpx.AsyncBaseTransport | None = None,
        request_timeout: float = 30.0,
        poll: PollPolicy | None = None,
        retry: RetryPolicy | None = None,
        clock: Clock | None = None,
        stuck_after_s: float = 120.0,
        health_every_s: float = 5.0,
        rng: random.Random | None = None,
        long_poll: bool = True,
    ) -> None:
        if not api_key:
            raise ConfigError("no RunPod API key: set RUNPOD_API_KEY or pass api_key")
        self.endpoint_id = _check_id("endpoint id", endpoint_id)
        self.base_url = base_url.rstrip("/")
        self.poll = poll or PollPolicy()
        self.clock: Clock = clock or SystemClock()
        self.stuck_after_s = stuck_after_s
        self.health_every_s = health_every_s
        self._long_poll: bool | None = None if long_poll else False  # None: not known yet
        self._core = HTTPCore(
            f"{self.base_url}/{self.endpoint_id}",
            headers={"Authorization": f"Bearer {api_key}", "User-Agent": "devai-harness"},
            secrets=(api_key,),
            transport=transport,
            timeout=request_timeout,
            retry=retry or RetryPolicy(),
            clock=self.clock,
            rng=rng,
        )

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **kwargs: Any) -> RunPodClient:
        """RUNPOD_API_KEY, RUNPOD_ENDPOINT_ID and (optional) RUNPOD_ENDPOINT_BASE_URL."""
        env = os.environ if env is None else env
        endpoint = env.get("RUNPOD_ENDPOINT_ID")
        if not endpoint:
            raise ConfigError("RUNPOD_ENDPOINT_ID is not set")
        if env.get("RUNPOD_ENDPOINT_BASE_URL"):
            kwargs.setdefault("base_url", env["RUNPOD_ENDPOINT_BASE_URL"])
        return cls(endpoint, env.get("RUNPOD_API_KEY"), **kwargs)

    def __repr__(self) -> str:
        return f"RunPodClient(endpoint_id={self.endpoint_id!r}, base_url={self.base_url!r}, api_key=<redacted>)"

    __str__ = __repr__

    # --- single routes ------------------------------------------------------------------

    async def _call(
        self,
        method: str,
        path: str,
        *,
        idempotent: bool,
        body: Any = None,
        params: Mapping[str, Any] | None = None,
        timeout: float | None = None,
        job_on_400: bool = False,
        max_attempts: int | None = None,
    ) -> Any:
        resp = await self._core.send(
            method,
            path,
            idempotent=idempotent,
            json_body=body,
            params=params,
            timeout=timeout,
            max_attempts=max_attempts,
        )
        if resp.status_code == 400 and job_on_400:
            data = self._core.json(method, path, resp)
            if isinstance(data, dict) and "status" in data and "id" in data:
                return data  # a runsync failure arrives as HTTP 400 carrying the FAILED job
        if resp.status_code >= 400:
            hint = {401: "unauthorized: check RUNPOD_API_KEY", 404: "unknown endpoint, or job expired"}.get(
                resp.status_code, ""
            )
            raise self._core.status_error(method, path, resp, hint)
        return self._core.json(method, path, resp)

    @staticmethod
    def _body(input: Any, policy: Mapping[str, Any] | None, webhook: str | None) -> dict[str, Any]:
        body: dict[str, Any] = {"input": input}
        if policy:
            body["policy"] = dict(policy)
        if webhook:
            body["webhook"] = webhook
        return body

    async def submit(self, input: Any, *, policy: Mapping[str, Any] | None = None, webhook: str | None = None) -> str:
        """POST /run. Never retried on 5xx/connection errors: the job might exist already."""
        data = await self._call("POST", "/run", idempotent=False, body=self._body(input, policy, webhook))
        return Job.from_json(data).id

    async def status(self, job_id: str) -> Job:
        data = await self._call("GET", f"/status/{_check_id('job id', job_id)}", idempotent=True)
        return Job.from_json(data, fallback_id=job_id)

    async def cancel(self, job_id: str) -> Job:
        data = await self._call("POST", f"/cancel/{_check_id('job id', job_id)}", idempotent=True)
        return Job.from_json(data, fallback_id=job_id)

    async def retry(self, job_id: str) -> Job:
        """Re-queue a FAILED or TIMED_OUT job (the platform refuses others)."""
        data = await self._call("POST", f"/retry/{_check_id('job id', job_id)}", idempotent=False)
        return Job.from_json(data, fallback_id=job_id)

    async def purge_queue(self) -> int:
        """Remove queued (not running) jobs; returns how many."""
        data = await self._call("POST", "/purge-queue", idempotent=False)
        removed = data.get("removed") if isinstance(data, dict) else None
        if not isinstance(removed, int):
            raise ProtocolError("purge-queue reply without a 'removed' count")
        return removed

    async def health(self, *, max_attempts: int | None = None) -> Health:
        data = await self._call("GET", "/health", idempotent=True, max_attempts=max_attempts)
        if not isinstance(data, dict):
            raise ProtocolError("health reply is not an object")
        return Health.from_json(data, taken_at=self.clock.now())

    # --- waiting ------------------------------------------------------------------------

    async def wait(
        self, job_id: str, *, timeout: float, stuck_after_s: float | None = None, started_at: float | None = None
    ) -> Job:
        """Poll until the job is terminal and return it (any terminal status; see ``run``).

        Raises a DiagnosedTimeout subclass, after cancelling the job, when ``timeout`` seconds pass
        or when a zombie worker is seen first."""
        start = self.clock.now() if started_at is None else started_at
        dog = self._watchdog(start, stuck_after_s)
        attempt = 0
        while True:
            try:
                job, held = await self._observe(job_id, start + timeout - self.clock.now())
            except TransportError as exc:
                exc.add_note(f"job {job_id} may still be queued or running (and billing)")
                raise
            if job.terminal:
                return job
            await self._tick(job, dog, start, start + timeout, 0 if held else attempt, sleep=not held)
            attempt += 1

    async def _observe(self, job_id: str, remaining: float) -> tuple[Job, bool]:
        """(job, whether the server held the request). Long-polls /status-sync?wait= (RunPod's JS/Go SDKs
        use it) so completion is seen within milliseconds with few requests; each hold lasts at most one
        poll cap, so the watchdog still decides between polls. Endpoints without the route: /status polling."""
        if self._long_poll is False or remaining < RUNSYNC_WAIT_MS[0] / 1000:
            return await self.status(job_id), False
        wait_ms = int(min(remaining, self.poll.cap_s) * 1000)
        wait_ms = max(RUNSYNC_WAIT_MS[0], wait_ms)
        path = f"/status-sync/{_check_id('job id', job_id)}"
        try:
            data = await self._call("GET", path, idempotent=True, params={"wait": wait_ms}, timeout=wait_ms / 1000 + 15)
        except StatusError as exc:
            if self._long_poll or exc.status_code not in (404, 405):
                raise
            job = await self.status(job_id)  # raises if the job itself is unknown
            self._long_poll = False  # this endpoint has no /status-sync
            return job, False
        self._long_poll = True
        return Job.from_json(data, fallback_id=job_id), True

    async def run(
        self, input: Any, *, timeout: float, policy: Mapping[str, Any] | None = None, stuck_after_s: float | None = None
    ) -> Job:
        """Submit, wait, and return the COMPLETED job; FAILED/CANCELLED/TIMED_OUT raise JobErrors."""
        start = self.clock.now()
        job_id = await self.submit(input, policy=policy)
        return raise_for_job(
            await self._guarded_wait(job_id, timeout=timeout, stuck_after_s=stuck_after_s, started_at=start)
        )

    async def runsync(
        self,
        input: Any,
        *,
        timeout: float,
        wait_ms: int = 90_000,
        policy: Mapping[str, Any] | None = None,
        stuck_after_s: float | None = None,
    ) -> Job:
        """POST /runsync?wait=...; when the job outlives the wait the reply is not final and we keep
        polling with its id until ``timeout``. Returns the COMPLETED job or raises as ``run``."""
        start = self.clock.now()
        wait_ms = int(min(max(min(wait_ms, timeout * 1000), RUNSYNC_WAIT_MS[0]), RUNSYNC_WAIT_MS[1]))
        try:
            data = await self._call(
                "POST",
                "/runsync",
                idempotent=False,
                body=self._body(input, policy, None),
                params={"wait": wait_ms},
                timeout=wait_ms / 1000 + 15,
                job_on_400=True,
            )
        except RequestTimeout as exc:
            exc.add_note(
                "the runsync reply (which carries the job id) never came: the job may run and bill "
                "unseen; use run() (submit + poll) for jobs longer than the wait"
            )
            raise
        job = Job.from_json(data)
        if not job.terminal:
            log.debug("runsync %s came back %s: polling", job.id, job.status)
            job = await self._guarded_wait(job.id, timeout=timeout, stuck_after_s=stuck_after_s, started_at=start)
        return raise_for_job(job)

    async def stream(self, job_id: str, *, timeout: float, stuck_after_s: float | None = None) -> AsyncIterator[Any]:
        """Yield each streamed chunk's ``output`` as /stream delivers them. Ends when the job is
        terminal and nothing is left buffered, for every terminal status (CANCELLED too); a job that
        ended FAILED/TIMED_OUT/CANCELLED raises its JobError after its chunks were yielded."""
        start = self.clock.now()
        dog = self._watchdog(start, stuck_after_s)
        attempt = 0
        path = f"/stream/{_check_id('job id', job_id)}"
        while True:
            data = await self._call("GET", path, idempotent=True)
            if not isinstance(data, dict):
                raise ProtocolError(f"GET {path}: reply is not an object")
            items = data.get("stream") or []
            if not isinstance(items, list):
                raise ProtocolError(f"GET {path}: 'stream' is not a list")
            for item in items:
                yield item.get("output") if isinstance(item, dict) and "output" in item else item
            job = Job.from_json(data, fallback_id=job_id)
            if job.terminal and not items:
                if job.status is not JobStatus.COMPLETED:
                    raise_for_job(await self.status(job_id))  # /stream carries no error text
                return
            if items:
                attempt = 0  # a producing job: come back quickly
                if job.terminal:
                    continue
            await self._tick(job, dog, start, start + timeout, attempt)
            attempt += 1

    # --- internals ----------------------------------------------------------------------

    def _watchdog(self, start: float, stuck_after_s: float | None) -> Watchdog:
        return Watchdog(
            stuck_after_s=self.stuck_after_s if stuck_after_s is None else stuck_after_s,
            started_at=start,
            health_every_s=self.health_every_s,
        )

    async def _tick(
        self, job: Job, dog: Watchdog, start: float, deadline: float, attempt: int, *, sleep: bool = True
    ) -> None:
        """Record one non-terminal observation; give up with a diagnosis, or sleep until the next poll."""
        now = self.clock.now()
        dog.observe_job(now, job.status)
        last = dog.snapshots[-1].taken_at if dog.snapshots else None
        fresh_needed = now >= deadline and (last is None or now - last >= self.health_every_s)
        if dog.wants_health(now) or fresh_needed:  # the final verdict needs a current snapshot
            snap = await self._health_quietly()
            if snap is not None:
                dog.observe_health(snap)
        verdict = dog.early_verdict(now)
        if verdict is None and now >= deadline:
            verdict = dog.final_verdict(now)
        if verdict is not None:
            await self._give_up(job, dog, verdict, now - start)
        if sleep:
            await self.clock.sleep(self.poll.next_delay(attempt, deadline - now))

    async def _health_quietly(self) -> Health | None:
        try:
            # One attempt: a diagnosis must not push the caller's deadline back with retries.
            return await self.health(max_attempts=1)
        except HarnessError as exc:
            log.debug("health snapshot failed: %s", exc)
            return None

    async def _cancel_quietly(self, job_id: str) -> bool:
        try:
            async with asyncio.timeout(10):
                job = await self.cancel(job_id)
            return job.terminal
        except (HarnessError, TimeoutError) as exc:
            log.warning("could not cancel job %s: %s", job_id, exc)
            return False

    async def _give_up(self, job: Job, dog: Watchdog, verdict: Diagnosis, elapsed: float) -> None:
        cancelled = await self._cancel_quietly(job.id)
        health = dog.snapshots[-1] if dog.snapshots else None  # taken before the cancel: the state that mattered
        error = TIMEOUT_ERRORS[verdict.kind]
        msg = (
            f"job {job.id} not finished after {elapsed:.1f} s (last status {job.status}): "
            f"{verdict.kind}: {verdict.reason}. Health: {health.summary() if health else 'unavailable'}. "
            + ("The job was cancelled." if cancelled else "Cancelling the job FAILED: it may still bill.")
        )
        raise error(msg, job_id=job.id, elapsed_s=elapsed, diagnosis=verdict, health=health, cancelled=cancelled)

    async def _guarded_wait(self, job_id: str, **kwargs: Any) -> Job:
        """wait(), but if our caller gives up (task cancelled, Ctrl-C) the job is cancelled too,
        so it does not keep billing unseen (runpod-cli #49)."""
        try:
            return await self.wait(job_id, **kwargs)
        except (asyncio.CancelledError, KeyboardInterrupt):
            await asyncio.shield(self._cancel_quietly(job_id))
            raise
