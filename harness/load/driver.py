"""Sync drivers for locust users (gevent; asyncio.run() fails there): RunPod jobs and OpenAI streams.

Each is a short I/O loop around the same core as the async clients — :class:`~harness.core.waiting.JobWait`
decides when to poll, long-poll, snapshot /health and give up; :class:`~harness.core.streaming.StreamAccumulator`
decides what a stream amounts to; :mod:`harness.core.wire` builds requests and maps errors — so the same bytes
and job histories get the same verdicts (tests/test_parity.py holds them to it). HTTP goes through
geventhttpclient (:mod:`harness.load.http`: a quarter of httpx's CPU per request, which is timing error under
load).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import Any

from harness.core.errors import ConfigError, HarnessError, ProtocolError, RequestTimeout, StatusError, TransportError
from harness.core.health import Health
from harness.core.jobs import Job, raise_for_job
from harness.core.polling import PollPolicy, RetryPolicy
from harness.core.streaming import Completion, StreamAccumulator, reply_completion
from harness.core.timing import RequestTiming
from harness.core.waiting import FetchHealth, Finished, GiveUp, JobWait, Poll, Sleep
from harness.core.wire import Redactor, auth_headers, chat_body, check_id, job_body, runpod_hint
from harness.load.http import SyncHTTP
from harness.load.packetclock import PacketClock

__all__ = ["SyncOpenAI", "SyncRunPod"]


class SyncRunPod:
    """RunPod's queue API for one locust user: ``run`` = submit + wait, as ``RunPodClient.run``."""

    def __init__(
        self,
        base_url: str,
        endpoint_id: str,
        api_key: str,
        *,
        poll: PollPolicy | None = None,
        retry: RetryPolicy | None = None,
        stuck_after_s: float = 120.0,
        health_every_s: float = 5.0,
        request_timeout: float = 60.0,
        long_poll: bool = True,
        sleep: Callable[[float], None] = time.sleep,
        now: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        if not api_key:
            raise ConfigError("no RunPod API key: set RUNPOD_API_KEY (or the variable --api-key-env names)")
        self.endpoint_id = check_id("endpoint id", endpoint_id)
        self._http = SyncHTTP(
            f"{base_url.rstrip('/')}/{self.endpoint_id}",
            auth_headers(api_key),
            timeout=request_timeout,
            redact=Redactor(api_key),
            retry=retry,
            sleep=sleep,
            rng=rng,
        )
        self.poll = poll or PollPolicy()
        self.stuck_after_s = stuck_after_s
        self.health_every_s = health_every_s
        self._long_poll: bool | None = None if long_poll else False
        self._sleep, self._now = sleep, now

    def close(self) -> None:
        self._http.close()

    def _call(self, method: str, path: str, body: Any = None, **kwargs: Any) -> Any:
        route = path.strip("/").split("/", 1)[0]
        return self._http.call(method, path, body, hint=lambda status: runpod_hint(status, route), **kwargs)

    def health(self, *, max_attempts: int | None = None) -> Health:
        data = self._call("GET", "/health", max_attempts=max_attempts)
        if not isinstance(data, dict):
            raise ProtocolError("health reply is not an object")
        return Health.from_json(data, taken_at=self._now())

    def submit(self, job_input: Any, *, policy: dict[str, Any] | None = None) -> str:
        return Job.from_json(self._call("POST", "/run", job_body(job_input, policy), idempotent=False)).id

    def status(self, job_id: str) -> Job:
        return Job.from_json(self._call("GET", f"/status/{check_id('job id', job_id)}"), fallback_id=job_id)

    def cancel(self, job_id: str) -> Job:
        return Job.from_json(self._call("POST", f"/cancel/{check_id('job id', job_id)}"), fallback_id=job_id)

    def run(self, job_input: Any, *, timeout: float) -> Job:
        """Submit and wait; the COMPLETED job, or the typed JobError / DiagnosedTimeout (job cancelled)."""
        start = self._now()
        return raise_for_job(self.wait(self.submit(job_input), timeout=timeout, started_at=start))

    def wait(self, job_id: str, *, timeout: float, started_at: float | None = None) -> Job:
        """Until the job is terminal (returned, whatever it is), or a diagnosed timeout."""
        w = JobWait(
            check_id("job id", job_id),
            started_at=self._now() if started_at is None else started_at,
            timeout_s=timeout,
            poll=self.poll,
            stuck_after_s=self.stuck_after_s,
            health_every_s=self.health_every_s,
            long_poll=self._long_poll,
        )
        try:
            while True:
                action = w.next(self._now())
                if isinstance(action, Poll):
                    self._observe(w, action)
                elif isinstance(action, FetchHealth):
                    w.health_seen(self._health_quietly())
                elif isinstance(action, Sleep):
                    self._sleep(action.seconds)
                elif isinstance(action, Finished):
                    return action.job
                else:
                    self._give_up(w, action)
        except TransportError as exc:
            exc.add_note(f"job {job_id} may still be queued or running (and billing)")
            raise
        finally:
            if w.long_poll is not None:
                self._long_poll = w.long_poll

    def _observe(self, w: JobWait, poll: Poll) -> None:
        if poll.wait_ms is None:
            w.job_seen(self._now(), self.status(w.job_id))
            return
        try:
            data = self._call("GET", f"/status-sync/{w.job_id}?wait={poll.wait_ms}", timeout=poll.http_timeout_s)
        except StatusError as exc:
            if not w.status_sync_refused(exc.status_code):
                raise
            return
        w.job_seen(self._now(), Job.from_json(data, fallback_id=w.job_id), held=True)

    def _health_quietly(self) -> Health | None:
        try:
            return self.health(max_attempts=1)
        except HarnessError:
            return None  # a diagnosis without health is still a diagnosis

    def _give_up(self, w: JobWait, give_up: GiveUp) -> None:
        try:
            cancelled = self.cancel(give_up.job.id).terminal
        except HarnessError:
            cancelled = False
        raise w.timeout_error(give_up, cancelled)


class SyncOpenAI:
    """An OpenAI-compatible server for one locust user: ``chat`` (whole reply) and ``chat_stream``."""

    def __init__(
        self,
        base_url: str,
        api_key: str | None = None,
        *,
        stall_timeout_s: float = 30.0,
        ttft_timeout_s: float | None = None,
        request_timeout: float | None = None,
        retry: RetryPolicy | None = None,
        now: Callable[[], float] = time.perf_counter,
        packet_clock: PacketClock | None = None,
    ) -> None:
        """``stall_timeout_s``: the longest silence allowed between stream chunks; ``request_timeout``: the
        longest a request may take in all, a whole reply or a stream (default: the stall timeout; keep-alives never
        extend it); ``packet_clock``: times from the kernel's packet timestamps (harness.load.packetclock; its clock
        is ``time.perf_counter``)."""
        self._http = SyncHTTP(
            base_url,
            auth_headers(api_key),
            timeout=request_timeout or stall_timeout_s,
            redact=Redactor(api_key),
            retry=retry,
            packet_clock=packet_clock,
        )
        self.stall_timeout_s = stall_timeout_s
        self.ttft_timeout_s = ttft_timeout_s
        self.total_timeout_s = request_timeout or stall_timeout_s
        self._now = now

    def close(self) -> None:
        self._http.close()

    def models(self) -> list[str]:
        data = self._http.call("GET", "/models")
        items = data.get("data") if isinstance(data, dict) else None
        if not isinstance(items, list):
            raise ProtocolError("GET /models: no 'data' list")
        return [str(m["id"]) for m in items if isinstance(m, dict) and "id" in m]

    def chat(
        self,
        messages: list[dict[str, Any]],
        *,
        model: str,
        max_tokens: int | None = None,
        extra: dict[str, Any] | None = None,
    ) -> Completion:
        """One non-streamed chat completion: e2e, usage, tokens per second and the server's id (no TTFT)."""
        body = chat_body(model, messages, max_tokens=max_tokens, stream=False, extra=extra)
        timing = RequestTiming(name="chat", streamed=False)
        t0 = self._now()
        try:
            reply = self._http.call("POST", "/chat/completions", body, idempotent=False)
            t0 = self._http.sent_at(t0)
            timing.tt_headers = timing.tt_ack = timing.e2e = self._http.received_at(self._now()) - t0
            return reply_completion(reply, timing, where=f"POST {self._http.where('/chat/completions')}", model=model)
        except BaseException as exc:
            timing.failed(exc, self._now() - t0)
            raise

    def chat_stream(
        self,
        messages: list[dict[str, Any]],
        *,
        model: str,
        max_tokens: int | None = None,
        include_usage: bool = True,
        extra: dict[str, Any] | None = None,
    ) -> Completion:
        body = chat_body(model, messages, max_tokens=max_tokens, stream=True, include_usage=include_usage, extra=extra)
        acc = StreamAccumulator(
            f"POST {self._http.where('/chat/completions')}",
            stall_timeout_s=self.stall_timeout_s,
            ttft_timeout_s=self.ttft_timeout_s,
            total_timeout_s=self.total_timeout_s,
            max_line=self._http.limits.line_bytes,
        )
        t0 = self._now()
        try:
            with self._http.stream("POST", "/chat/completions", body, first_byte_s=acc.budget(0).seconds) as read:
                t0 = self._http.sent_at(t0)
                arrived = self._http.received_at  # the packet's time when the process has a packet clock
                acc.headers(arrived(self._now()) - t0)
                while True:
                    budget = acc.budget(self._now() - t0)
                    try:
                        data = read(budget.seconds)
                    except RequestTimeout:
                        raise acc.stalled(budget, self._now() - t0) from None
                    if not data:
                        break
                    acc.feed(data, arrived(self._now()) - t0)
            return acc.finish(arrived(self._now()) - t0, model=model)
        except BaseException as exc:
            acc.timing.failed(exc, self._now() - t0)
            raise
