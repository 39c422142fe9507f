"""Async client for RunPod Serverless queue endpoints: an I/O loop around :mod:`harness.core.waiting`.

What it does that the field reports needed (docs/reference/field-reports.md; README "The RunPod client"):

* every wait has a wall-clock deadline; at the deadline the job is CANCELLED (it stops billing)
  and a :class:`~harness.core.errors.DiagnosedTimeout` says why: zombie worker, cold start, no
  capacity, backlog or slow execution, with the job id, the elapsed time and the /health numbers;
* a zombie worker is called out early, once the job has sat in the queue ``stuck_after_s``;
* ``runsync`` never loses the job id: a reply that is not final falls back to polling;
* polling starts quick and backs off; 429 honours Retry-After on https too; only idempotent calls
  are retried on 5xx/connection errors;
* the API key never appears in a repr, a log line or an exception message.

``RunPodClient.local(url)`` speaks runpod-python's own local test server (``python handler.py --rp_serve_api``):
routes at the root, ``POST /status`` and ``POST /stream`` that run the job during the request (once: the server
forgets the job afterwards), and no /health, /cancel, /status-sync, /retry or /purge-queue — those raise
:class:`~harness.core.errors.ConfigError` saying so, and a wait there is diagnosed without health.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
from collections.abc import AsyncIterator, Mapping
from typing import Any, Protocol

import httpx

from harness.clients.transport import ClientLifecycle, HTTPCore, deadline
from harness.core.clock import Clock, SystemClock
from harness.core.errors import ConfigError, HarnessError, ProtocolError, RequestTimeout, StatusError, TransportError
from harness.core.health import Health
from harness.core.jobs import Job, JobStatus, raise_for_job
from harness.core.polling import PollPolicy, RetryPolicy
from harness.core.waiting import LONG_POLL_MS, FetchHealth, Finished, GiveUp, JobWait, Poll, Sleep
from harness.core.wire import RUNPOD_BASE_URL, auth_headers, check_id, job_body, runpod_hint

__all__ = ["DEFAULT_BASE_URL", "Endpoint", "RunPodClient"]

DEFAULT_BASE_URL = RUNPOD_BASE_URL
_GRACE_S = 2.0  # an HTTP call may end this much after its job's deadline (the poll in flight when it passed)
_CANCEL_S = 10.0
log = logging.getLogger("harness.clients.runpod")


class Endpoint(Protocol):
    """Anything that names an endpoint: the emulator, a test double, a config object."""

    @property
    def endpoint_id(self) -> str: ...

    @property
    def api_key(self) -> str: ...

    @property
    def base_url(self) -> str: ...


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
        sdk_local: bool = False,
    ) -> None:
        if not api_key and not sdk_local:
            raise ConfigError("no RunPod API key: set RUNPOD_API_KEY or pass api_key")
        self.endpoint_id = check_id("endpoint id", endpoint_id)
        self.base_url = base_url.rstrip("/")
        self.sdk_local = sdk_local
        self.poll = poll or PollPolicy()
        self.clock: Clock = clock or SystemClock()
        self.stuck_after_s = stuck_after_s
        self.health_every_s = health_every_s
        self._long_poll: bool | None = None if long_poll and not sdk_local else False  # None: not known yet
        self._core = HTTPCore(
            self.base_url if sdk_local else f"{self.base_url}/{self.endpoint_id}",
            headers=auth_headers(api_key),
            secrets=(api_key,),
            transport=transport,
            timeout=request_timeout,
            retry=retry or RetryPolicy(),
            clock=self.clock,
            rng=rng,
        )

    @classmethod
    def of(cls, endpoint: Endpoint, **kwargs: Any) -> RunPodClient:
        """A client for anything that names an endpoint (``RunPodClient.of(emulator)``)."""
        return cls(endpoint.endpoint_id, endpoint.api_key, base_url=endpoint.base_url, **kwargs)

    @classmethod
    def local(cls, base_url: str = "http://127.0.0.1:8000", **kwargs: Any) -> RunPodClient:
        """runpod-python's local test server. Its POST /status runs the whole job inside the request, so the
        request timeout defaults to 600 s."""
        kwargs.setdefault("request_timeout", 600.0)
        return cls("local", kwargs.pop("api_key", None), base_url=base_url, sdk_local=True, **kwargs)

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
        if self.sdk_local:
            return f"RunPodClient.local({self.base_url!r})"
        return f"RunPodClient(endpoint_id={self.endpoint_id!r}, base_url={self.base_url!r}, api_key=<redacted>)"

    def _platform_only(self, route: str) -> None:
        if self.sdk_local:
            raise ConfigError(f"runpod-python's local test server has no {route}")

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
            data = self._core.json(method, resp)
            if isinstance(data, dict) and "status" in data and "id" in data:
                return data  # a runsync failure arrives as HTTP 400 carrying the FAILED job
        if resp.status_code >= 400:
            route = path.strip("/").split("/", 1)[0]
            hint = runpod_hint(resp.status_code, route)
            if self.sdk_local and resp.status_code == 500 and route in ("status", "stream"):
                hint = "the SDK's local server runs the handler inside this request: it raised (see its console)"
            raise self._core.status_error(method, resp, hint)
        return self._core.json(method, resp)

    async def submit(self, input: Any, *, policy: Mapping[str, Any] | None = None, webhook: str | None = None) -> str:
        """POST /run. Never retried on 5xx/connection errors: the job might exist already."""
        data = await self._call("POST", "/run", idempotent=False, body=job_body(input, policy, webhook))
        return Job.from_json(data).id

    async def status(self, job_id: str) -> Job:
        method = "POST" if self.sdk_local else "GET"  # the SDK's local server: POST only
        data = await self._call(method, f"/status/{check_id('job id', job_id)}", idempotent=True)
        return Job.from_json(data, fallback_id=job_id)

    async def cancel(self, job_id: str) -> Job:
        self._platform_only("/cancel")
        data = await self._call("POST", f"/cancel/{check_id('job id', job_id)}", idempotent=True)
        return Job.from_json(data, fallback_id=job_id)

    async def retry(self, job_id: str) -> Job:
        """Re-queue a FAILED or TIMED_OUT job (the platform refuses others)."""
        self._platform_only("/retry")
        data = await self._call("POST", f"/retry/{check_id('job id', job_id)}", idempotent=False)
        return Job.from_json(data, fallback_id=job_id)

    async def purge_queue(self) -> int:
        """Remove queued (not running) jobs; returns how many."""
        self._platform_only("/purge-queue")
        data = await self._call("POST", "/purge-queue", idempotent=False)
        removed = data.get("removed") if isinstance(data, dict) else None
        if not isinstance(removed, int):
            raise ProtocolError("purge-queue reply without a 'removed' count")
        return removed

    async def health(self, *, max_attempts: int | None = None) -> Health:
        self._platform_only("/health")
        data = await self._call("GET", "/health", idempotent=True, max_attempts=max_attempts)
        if not isinstance(data, dict):
            raise ProtocolError("health reply is not an object")
        return Health.from_json(data, taken_at=self.clock.now())

    # --- waiting ------------------------------------------------------------------------

    def _job_wait(self, job_id: str, start: float, timeout: float, stuck_after_s: float | None) -> JobWait:
        return JobWait(
            check_id("job id", job_id),
            started_at=start,
            timeout_s=timeout,
            poll=self.poll,
            stuck_after_s=self.stuck_after_s if stuck_after_s is None else stuck_after_s,
            health_every_s=self.health_every_s,
            long_poll=self._long_poll,
        )

    async def wait(
        self, job_id: str, *, timeout: float, stuck_after_s: float | None = None, started_at: float | None = None
    ) -> Job:
        """Poll until the job is terminal and return it (any terminal status; see ``run``).

        Raises a DiagnosedTimeout subclass, after cancelling the job, when ``timeout`` seconds pass
        or when a zombie worker is seen first."""
        start = self.clock.now() if started_at is None else started_at
        w = self._job_wait(job_id, start, timeout, stuck_after_s)
        try:
            with deadline(timeout + _GRACE_S):  # no HTTP call inside outlives the wait (a dripping /status either)
                return await self._wait_loop(w)
        except TransportError as exc:
            if not self.sdk_local:  # the local server runs a job inside the request that fetches it
                exc.add_note(f"job {job_id} may still be queued or running (and billing)")
            raise
        finally:
            if w.long_poll is not None:
                self._long_poll = w.long_poll  # learned once per client

    async def _wait_loop(self, w: JobWait) -> Job:
        while True:
            action = w.next(self.clock.now())
            if isinstance(action, Poll):
                await self._observe(w, action)
            elif isinstance(action, FetchHealth):
                w.health_seen(await self._health_quietly())
            elif isinstance(action, Sleep):
                await self.clock.sleep(action.seconds)
            elif isinstance(action, Finished):
                return action.job
            else:
                await self._give_up(w, action)

    async def _observe(self, w: JobWait, poll: Poll) -> None:
        """GET /status, or long-poll /status-sync?wait= (RunPod's JS and Go SDKs use it): completion is seen
        within milliseconds with few requests."""
        if poll.wait_ms is None:
            w.job_seen(self.clock.now(), await self.status(w.job_id))
            return
        try:
            data = await self._call(
                "GET",
                f"/status-sync/{w.job_id}",
                idempotent=True,
                params={"wait": poll.wait_ms},
                timeout=poll.http_timeout_s,
            )
        except StatusError as exc:
            if not w.status_sync_refused(exc.status_code):
                raise
            return  # no /status-sync here: the next action is a plain /status poll
        w.job_seen(self.clock.now(), Job.from_json(data, fallback_id=w.job_id), held=True)

    async def run(
        self, input: Any, *, timeout: float, policy: Mapping[str, Any] | None = None, stuck_after_s: float | None = None
    ) -> Job:
        """Submit, wait, and return the COMPLETED job; FAILED/CANCELLED/TIMED_OUT raise JobErrors."""
        start = self.clock.now()
        with deadline(timeout + _GRACE_S):  # the submit too: a silent /run cannot outlast the job's timeout
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
        wait_ms = int(min(max(min(wait_ms, timeout * 1000), LONG_POLL_MS[0]), LONG_POLL_MS[1]))
        try:
            with deadline(timeout + _GRACE_S):
                data = await self._call(
                    "POST",
                    "/runsync",
                    idempotent=False,
                    body=job_body(input, policy),
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
        w = self._job_wait(job_id, self.clock.now(), timeout, stuck_after_s)
        w.long_poll = False  # /stream is polled; an empty poll is held by the platform itself
        path = f"/stream/{w.job_id}"
        while True:
            action = w.next(self.clock.now())
            if isinstance(action, Poll):
                data = await self._call("POST" if self.sdk_local else "GET", path, idempotent=True)
                if not isinstance(data, dict):
                    raise ProtocolError(f"GET {path}: reply is not an object")
                items = data.get("stream") or []
                if not isinstance(items, list):
                    raise ProtocolError(f"GET {path}: 'stream' is not a list")
                for item in items:
                    yield item.get("output") if isinstance(item, dict) and "output" in item else item
                job = Job.from_json(data, fallback_id=job_id)
                # More may be buffered behind these: look again at once (the SDK's local server sends all at once).
                drain = job.terminal and bool(items) and not self.sdk_local
                if drain:
                    job = Job(job.id, JobStatus.IN_PROGRESS)
                w.job_seen(self.clock.now(), job, held=drain, progressed=bool(items))
                if self.sdk_local and job.terminal and job.status is not JobStatus.COMPLETED:
                    raise_for_job(job)  # the local server forgets a job once answered: its error is here
            elif isinstance(action, FetchHealth):
                w.health_seen(await self._health_quietly())
            elif isinstance(action, Sleep):
                await self.clock.sleep(action.seconds)
            elif isinstance(action, Finished):
                if action.job.status is not JobStatus.COMPLETED:
                    raise_for_job(await self.status(job_id))  # /stream carries no error text
                return
            else:
                await self._give_up(w, action)

    # --- internals ----------------------------------------------------------------------

    async def _health_quietly(self) -> Health | None:
        try:
            return await self.health(max_attempts=1)
        except HarnessError as exc:
            log.debug("health snapshot failed: %s", exc)
            return None

    async def _cancel_quietly(self, job_id: str) -> bool:
        try:
            with deadline(_CANCEL_S, fresh=True):  # its own time: the job's deadline has passed already
                job = await self.cancel(job_id)
            return job.terminal
        except (HarnessError, TimeoutError) as exc:
            log.warning("could not cancel job %s: %s", job_id, exc)
            return False

    async def _give_up(self, w: JobWait, give_up: GiveUp) -> None:
        raise w.timeout_error(give_up, await self._cancel_quietly(give_up.job.id))

    async def _guarded_wait(self, job_id: str, **kwargs: Any) -> Job:
        """wait(), but if our caller gives up (task cancelled, Ctrl-C) the job is cancelled too,
        so it does not keep billing unseen (runpod-cli #49)."""
        try:
            return await self.wait(job_id, **kwargs)
        except (asyncio.CancelledError, KeyboardInterrupt):
            await asyncio.shield(self._cancel_quietly(job_id))
            raise
