"""Locust users over the sync drivers. Imported only by locustfiles: importing locust patches the
process with gevent. Every request is fired once into locust's stats AND written, exactly, as a
LoadRecord (locust buckets response times; our records keep them).

A user that only sees failures backs off and stops the run, saying why (core.polling.FailureBackoff): a
wrong host, model or key costs a handful of requests, not thousands. The flags below are listed in each
locustfile's header too: locust prints ``--help`` before it loads a locustfile, so it cannot show them.

The run's options, state and distributed glue, and each request's bookkeeping, are :mod:`harness.load.locustrun`.
The latency locustfile refuses to run distributed: its cold/warm/hot schedule is one timeline (a cold request
needs the endpoint idle for ALL load).
"""

from __future__ import annotations

import logging
import os
import random
import time
from typing import Any

import gevent
import gevent.event
from locust import LoadTestShape, User, constant, task
from locust.env import Environment

from harness.core.errors import ConfigError, HarnessError
from harness.core.polling import FailureBackoff, PollPolicy
from harness.core.prompts import SMOKE_CHAT
from harness.core.shapes import extract
from harness.load.driver import SyncOpenAI, SyncRunPod
from harness.load.locustrun import (
    RUN,
    end_run,
    failed,
    here,
    measured,
    opts,
    packet_clock,
    set_step,
    step_users,
)
from harness.load.phases import LATENCY_POLL, PhasePlan, confirm
from harness.load.records import LoadRecord

__all__ = ["ArrivalUser", "CapacityUser", "ChatUser", "LatencyUser", "StepShape", "StreamingUser"]

PROMPT = {"messages": SMOKE_CHAT, "sampling_params": {"max_tokens": 64}}


def _runpod(env: Environment, poll: PollPolicy | None = None) -> SyncRunPod:
    given = opts(env)
    key = os.environ.get(given.api_key_env, "")
    if not env.host:
        raise HarnessError("give --host: the endpoint base URL, e.g. https://api.runpod.ai/v2")
    return SyncRunPod(env.host, given.endpoint_id, key, poll=poll)


def _job(env: Environment, rp: SyncRunPod, rec: LoadRecord) -> None:
    """One RunPod job into ``rec`` (its failure raised, with the time it took)."""
    t0 = time.perf_counter()
    try:
        job = rp.run(PROMPT, timeout=opts(env).job_timeout)
    except HarnessError as exc:
        rec.e2e_s = time.perf_counter() - t0
        failed(rec, exc)  # its fields now, for the latency user's evidence
        raise
    rec.e2e_s = time.perf_counter() - t0
    rec.delay_ms, rec.execution_ms, rec.worker_id = job.delay_time_ms, job.execution_time_ms, job.worker_id
    got = extract(job.output)
    if got.usage is not None:
        rec.input_tokens, rec.output_tokens = got.usage.input_tokens, got.usage.output_tokens


def _timed_job(env: Environment, rp: SyncRunPod, *, phase: str, **fields: Any) -> LoadRecord:
    """One capacity job, measured."""
    with measured(env, label="capacity", phase=phase, **fields) as rec:
        _job(env, rp, rec)
    return rec


class _Careful(User):
    """Backs off after failures and stops the whole run when they are all it sees."""

    abstract = True

    def on_start(self) -> None:
        self.backoff = FailureBackoff()

    def settle(self, rec: LoadRecord) -> None:
        # A 4xx other than 408/429 (a wrong model, URL or key) will not get better by retrying.
        permanent = rec.http_status is not None and 400 <= rec.http_status < 500 and rec.http_status not in (408, 429)
        wait = self.backoff.record(rec.status == "ok", permanent=permanent)
        if wait is None:
            why = f"{rec.error}: {rec.error_message}" if rec.error_message else str(rec.error)
            said = f"stopping: the last {self.backoff.in_a_row} requests failed ({why})"
            logging.getLogger("harness.load").error(said)
            end_run(self.environment, said)
            self.stop()
        elif wait:
            gevent.sleep(wait)


LATENCY_GIVE_UP = 3  # requests, all failed, after which the latency schedule stops


class LatencyUser(User):
    """One user walks the phase plan (cold, hot x n, warm x n, per round), then stops the run."""

    alone = True  # refuses a distributed run (locustrun.LATENCY_ALONE)

    fixed_count = 1
    wait_time = constant(0)

    def on_start(self) -> None:
        given = opts(self.environment)
        self.rp = _runpod(self.environment, LATENCY_POLL)
        self.steps = iter(PhasePlan(idle_timeout_s=given.idle_timeout, rounds=given.rounds).steps())
        self.last_end: float | None = None
        self.outcomes: list[bool] = []

    def on_stop(self) -> None:
        self.rp.close()

    @task
    def step(self) -> None:
        step = next(self.steps, None)
        if step is None:
            end_run(self.environment, "the latency schedule is done")
            self.stop()
            return
        gevent.sleep(step.wait_s)
        with measured(self.environment, label="latency", phase=step.phase) as rec:
            try:
                workers = self.rp.health().workers
                rec.workers_before = {k: getattr(workers, k) for k in ("idle", "running", "initializing", "unhealthy")}
            except HarnessError as health_error:
                rec.evidence = f"no health snapshot: {health_error}"
            gap = None if self.last_end is None else time.monotonic() - self.last_end
            rec.start_unix = time.time()
            try:
                _job(self.environment, self.rp, rec)
            finally:
                self.last_end = time.monotonic()
                if rec.workers_before:
                    hot_gap = opts(self.environment).hot_gap
                    rec.confirmed, rec.evidence = confirm(step.phase, rec.workers_before, gap, hot_gap)
                    rec.evidence += f"; delayTime {rec.delay_ms} ms"
        self._stop_if_only_failures(rec)

    def _stop_if_only_failures(self, rec: LoadRecord) -> None:
        """The schedule's waits are the measurement (no backoff between phases), but a dead endpoint does not get
        the whole schedule: the first LATENCY_GIVE_UP requests all failing stop the run, saying why."""
        self.outcomes.append(rec.status == "ok")
        if len(self.outcomes) == LATENCY_GIVE_UP and not any(self.outcomes):
            why = f"{rec.error}: {rec.error_message}" if rec.error_message else str(rec.error)
            said = f"stopping: the first {LATENCY_GIVE_UP} requests of the latency schedule all failed ({why})"
            logging.getLogger("harness.load").error(said)
            end_run(self.environment, said)
            self.stop()


class CapacityUser(_Careful):
    """Closed loop: every user runs jobs back to back; StepShape raises the user count per step."""

    wait_time = constant(0)

    def on_start(self) -> None:
        super().on_start()
        self.rp = _runpod(self.environment)

    def on_stop(self) -> None:
        self.rp.close()

    @task
    def job(self) -> None:
        users = step_users(self.environment)
        self.settle(_timed_job(self.environment, self.rp, phase=f"c{users}", concurrency=users))


class ArrivalUser(User):
    """Open loop: arrivals at each step's rate (Poisson, or gamma with --burstiness), each in its own greenlet,
    so a slow endpoint cannot slow the arrivals down (no coordinated omission)."""

    fixed_count = 1
    wait_time = constant(0)

    def on_start(self) -> None:
        self.rp = _runpod(self.environment)

    @task
    def arrive(self) -> None:
        given = opts(self.environment)
        pool = []
        for rate in [float(r) for r in given.steps.split(",")]:
            end = time.monotonic() + given.step_seconds
            while time.monotonic() < end:
                gap = (
                    random.gammavariate(given.burstiness, 1 / (rate * given.burstiness))
                    if given.arrivals == "gamma"
                    else random.expovariate(rate)
                )
                gevent.sleep(gap)
                pool.append(gevent.spawn(self._one, rate))
        gevent.joinall(pool, timeout=given.job_timeout)
        end_run(self.environment, "the arrival schedule is done")
        self.stop()

    def _one(self, rate: float) -> None:
        _timed_job(self.environment, self.rp, phase=f"r{rate:g}", rate=rate)


def _model(env: Environment, oa: SyncOpenAI) -> str:
    """--model, else the first model the server lists (asked once per process)."""
    given = opts(env).model
    if given:
        return str(given)
    host = env.host or ""
    models = here().models
    if host not in models:
        listed = oa.models()
        if not listed:
            raise ConfigError(f"{host}/models lists no model: give --model")
        models[host] = listed[0]
    return models[host]


class StreamingUser(_Careful):
    """N concurrent streams against an OpenAI-compatible URL (--host .../v1): TTFT and every chunk gap."""

    wait_time = constant(0)
    streaming = True

    def on_start(self) -> None:
        super().on_start()
        # A whole non-streaming answer may take as long as a job; a stream must not fall silent for 30 s.
        timeout = opts(self.environment).job_timeout
        self.oa = SyncOpenAI(
            self.environment.host or "",
            os.environ.get("OPENAI_API_KEY"),
            stall_timeout_s=30.0,
            request_timeout=timeout,
            packet_clock=packet_clock(self.environment),
        )

    def on_stop(self) -> None:
        self.oa.close()

    @task
    def request(self) -> None:
        users = RUN.users or (self.environment.runner.user_count if self.environment.runner else 1)
        label, phase = ("streaming", "stream") if self.streaming else ("chat", "chat")
        with measured(self.environment, label=label, phase=phase, concurrency=users) as rec:
            messages = SMOKE_CHAT
            model = _model(self.environment, self.oa)
            send = self.oa.chat_stream if self.streaming else self.oa.chat
            rec.take(send(messages, model=model, max_tokens=64).timing)
        self.settle(rec)


class ChatUser(StreamingUser):
    """Non-streaming chat completions against an OpenAI-compatible URL: requests/s and e2e per request."""

    streaming = False


class StepShape(LoadTestShape):
    """Users per step from --steps, each held --step-seconds; then the run ends."""

    def tick(self) -> tuple[int, float] | None:
        opts = self.runner.environment.parsed_options if self.runner is not None else None
        steps = [int(s) for s in (opts.steps if opts else "1,2,4,8").split(",")]
        step_s = opts.step_seconds if opts else 10.0
        i = int(self.get_run_time() // step_s)
        if i >= len(steps):
            return None
        set_step(self.runner, steps[i])
        return (steps[i], steps[i])
