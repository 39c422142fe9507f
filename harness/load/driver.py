"""Sync drivers for locust users (gevent; asyncio.run() fails there): RunPod jobs and OpenAI streams.

They make the same decisions as the async clients by calling the same pure code — PollPolicy for when to
poll, Watchdog for what a stuck job means, ``record_event`` for stream timing, ``extract`` for outputs —
over geventhttpclient (harness.load.http: a quarter of httpx's CPU per request, which is timing error under load).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from typing import Any

from harness.errors import ProtocolError, RequestTimeout, StreamStalled, StreamTruncated
from harness.health import Health, Watchdog
from harness.jobs import Job
from harness.load.http import SyncHTTP
from harness.openai import record_event
from harness.polling import PollPolicy
from harness.runpod import TIMEOUT_ERRORS
from harness.shapes import openai_usage
from harness.sse import SSEComment, SSEParser
from harness.timing import RequestTiming
from harness.transport import Redactor

__all__ = ["SyncOpenAI", "SyncRunPod"]


def _count_tokens(timing: RequestTiming, usage: Any) -> None:
    """Token counts only from the server's usage object (as the async client: shapes.openai_usage)."""
    if (u := openai_usage(usage)) is not None:
        timing.input_tokens, timing.output_tokens = u.input_tokens, u.output_tokens


class SyncRunPod:
    def __init__(
        self,
        base_url: str,
        endpoint_id: str,
        api_key: str,
        *,
        poll: PollPolicy | None = None,
        stuck_after_s: float = 120.0,
        request_timeout: float = 60.0,
        sleep: Callable[[float], None] = time.sleep,
        now: Callable[[], float] = time.monotonic,
    ) -> None:
        self._http = SyncHTTP(
            f"{base_url.rstrip('/')}/{endpoint_id}",
            {"Authorization": f"Bearer {api_key}", "User-Agent": "devai-harness"},
            timeout=request_timeout,
            redact=Redactor(api_key),
        )
        self.poll = poll or PollPolicy()
        self.stuck_after_s = stuck_after_s
        self._sleep, self._now = sleep, now

    def close(self) -> None:
        self._http.close()

    def _call(self, method: str, path: str, body: Any = None) -> Any:
        return self._http.call(method, path, body)

    def health(self) -> Health:
        return Health.from_json(self._call("GET", "/health"), taken_at=self._now())

    def run(self, job_input: Any, *, timeout: float) -> Job:
        """Submit and poll to a terminal status (returned, whatever it is); at the deadline cancel and
        raise the diagnosed timeout, as RunPodClient.run does."""
        start = self._now()
        job = Job.from_json(self._call("POST", "/run", {"input": job_input}))
        dog = Watchdog(stuck_after_s=self.stuck_after_s, started_at=start)
        attempt = 0
        while True:
            job = Job.from_json(self._call("GET", f"/status/{job.id}"), fallback_id=job.id)
            if job.terminal:
                return job
            now = self._now()
            dog.observe_job(now, job.status)
            if dog.wants_health(now) or now - start >= timeout:
                with contextlib.suppress(Exception):  # a diagnosis without health is still a diagnosis
                    dog.observe_health(self.health())
            verdict = dog.early_verdict(now) or (dog.final_verdict(now) if now - start >= timeout else None)
            if verdict is not None:
                try:
                    cancelled = Job.from_json(self._call("POST", f"/cancel/{job.id}"), fallback_id=job.id).terminal
                except Exception:
                    cancelled = False
                health = dog.snapshots[-1] if dog.snapshots else None
                raise TIMEOUT_ERRORS[verdict.kind](
                    f"job {job.id}: {verdict.kind}: {verdict.reason}",
                    job_id=job.id,
                    elapsed_s=now - start,
                    diagnosis=verdict,
                    health=health,
                    cancelled=cancelled,
                )
            self._sleep(self.poll.next_delay(attempt, start + timeout - now))
            attempt += 1


class SyncOpenAI:
    def __init__(
        self,
        base_url: str,
        api_key: str | None = None,
        *,
        stall_timeout_s: float = 30.0,
        now: Callable[[], float] = time.perf_counter,
    ) -> None:
        """``stall_timeout_s``: the longest silence allowed, between stream chunks or before a whole reply."""
        headers = {"User-Agent": "devai-harness"} | ({"Authorization": f"Bearer {api_key}"} if api_key else {})
        self._http = SyncHTTP(base_url, headers, timeout=stall_timeout_s, redact=Redactor(api_key))
        self._now = now

    def close(self) -> None:
        self._http.close()

    def chat(self, messages: list[dict[str, Any]], *, model: str, max_tokens: int) -> RequestTiming:
        """One non-streaming chat completion: e2e, usage and the server's id."""
        body = {"model": model, "messages": messages, "max_tokens": max_tokens}
        timing = RequestTiming(name="chat")
        t0 = self._now()
        reply = self._http.call("POST", "/chat/completions", body)
        timing.tt_headers = timing.tt_ack = timing.e2e = timing.ttft = self._now() - t0
        if not isinstance(reply, dict):
            raise ProtocolError("POST /chat/completions: reply is not a JSON object")
        timing.request_id = reply["id"] if isinstance(reply.get("id"), str) else None
        _count_tokens(timing, reply.get("usage"))
        return timing

    def chat_stream(
        self, messages: list[dict[str, Any]], *, model: str, max_tokens: int, include_usage: bool = True
    ) -> RequestTiming:
        body: dict[str, Any] = {"model": model, "messages": messages, "max_tokens": max_tokens, "stream": True}
        if include_usage:
            body["stream_options"] = {"include_usage": True}
        timing = RequestTiming(name="chat")
        chunks: list[dict[str, Any]] = []
        t0 = self._now()
        done, last = False, None
        with self._http.stream("POST", "/chat/completions", body) as lines:
            timing.tt_headers = self._now() - t0
            parser = SSEParser()
            try:
                for data in lines:
                    now = self._now() - t0
                    timing.tt_ack = timing.tt_ack if timing.tt_ack is not None else now
                    # Whole lines: a UTF-8 sequence never holds a newline byte, so no character is split.
                    for rec in parser.feed(data.decode("utf-8", "replace")):
                        if isinstance(rec, SSEComment):
                            timing.keepalives.append(now)
                        elif rec.is_done:
                            done = True
                            timing.e2e = now  # the answer ends at [DONE]
                        else:
                            last = record_event(rec, chunks, timing, now, last, None)
            except RequestTimeout:
                raise StreamStalled("no bytes within the stall timeout", waited_s=self._now() - t0) from None
        if timing.e2e is None:
            timing.e2e = self._now() - t0
        if not done and not chunks:
            raise StreamTruncated("stream ended without chunks or [DONE]")
        _count_tokens(timing, next((c["usage"] for c in reversed(chunks) if isinstance(c.get("usage"), dict)), None))
        return timing
