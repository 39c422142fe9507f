"""Locust users over the sync drivers. Imported only by locustfiles: importing locust patches the
process with gevent. Every request is fired once into locust's stats AND written, exactly, as a
LoadRecord (locust buckets response times; our records keep them).

A user that only sees failures backs off and stops the run, saying why (core.polling.FailureBackoff): a
wrong host, model or key costs a handful of requests, not thousands. The flags below are listed in each
locustfile's header too: locust prints ``--help`` before it loads a locustfile, so it cannot show them.

Distributed (``--master`` / ``--worker``, and ``--processes N``, which is the same on one machine): the master
tells every worker the run's state — the step's TOTAL user count, the total users, its clock — when the run
starts, at each step, and to a worker that joins late when it asks; records are labelled from that, not from a
worker's own clock, so a late joiner's requests land in the step they ran in. A user that ends the run (its
schedule done, or only failures) asks the master to stop everything: a worker quitting alone would make the
master hand its users to the others and run the schedule again. The latency locustfile refuses to run
distributed: its cold/warm/hot schedule is one timeline (a cold request needs the endpoint idle for ALL load).
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import sys
import time
from collections.abc import Iterator
from typing import Any

import gevent
import gevent.event
from gevent import GreenletExit
from locust import LoadTestShape, User, constant, events, task
from locust.env import Environment
from locust.exception import StopUser
from locust.runners import MasterRunner, WorkerRunner

from harness.core.errors import ConfigError, HarnessError, JobError, JobFailed, OutputError, StatusError
from harness.core.polling import FailureBackoff, PollPolicy
from harness.core.prompts import SMOKE_CHAT
from harness.core.scrub import register, secrets_in
from harness.core.shapes import extract
from harness.load.driver import SyncOpenAI, SyncRunPod
from harness.load.lag import LagProbe
from harness.load.packetclock import PacketClock
from harness.load.phases import LATENCY_POLL, PhasePlan, confirm
from harness.load.records import LoadRecord, RecordWriter
from harness.reporting.stdio import ScrubbedStream

__all__ = ["ArrivalUser", "CapacityUser", "ChatUser", "LatencyUser", "StepShape", "StreamingUser"]

PROMPT = {"messages": SMOKE_CHAT, "sampling_params": {"max_tokens": 64}}


@events.init_command_line_parser.add_listener
def _options(parser: Any) -> None:
    parser.add_argument("--run-dir", default="runs/latest", help="where records and the report go")
    parser.add_argument("--endpoint-id", default=os.environ.get("RUNPOD_ENDPOINT_ID", "emulator"))
    parser.add_argument("--api-key-env", default="RUNPOD_API_KEY", help="environment variable holding the key")
    parser.add_argument("--idle-timeout", type=float, default=5.0, help="the endpoint's idle timeout (s)")
    parser.add_argument("--rounds", type=int, default=2, help="latency: cold/hot/warm rounds")
    parser.add_argument("--hot-gap", type=float, default=0.5, help="latency: most seconds between 'hot' requests")
    parser.add_argument("--job-timeout", type=float, default=300.0)
    parser.add_argument("--steps", default="1,2,4,8", help="capacity: users (or rates for ArrivalUser) per step")
    parser.add_argument("--step-seconds", type=float, default=10.0)
    parser.add_argument("--arrivals", default="poisson", choices=["poisson", "gamma"])
    parser.add_argument("--burstiness", type=float, default=1.0, help="gamma shape (< 1 = burstier)")
    parser.add_argument("--model", default=None, help="streaming/chat: the model (default: the first /models lists)")
    parser.add_argument(
        "--packet-clock",
        action="store_true",
        help="streaming/chat: time requests by kernel packet timestamps, right even when this process is starved "
        "of CPU (needs CAP_NET_RAW, e.g. root; plain http)",
    )


_writers: dict[int, RecordWriter] = {}
_probes: dict[int, LagProbe] = {}  # this process's own scheduling lag (harness.load.lag)
_clocks: dict[int, PacketClock | None] = {}  # this process's packet clock, when asked for and permitted
_started: dict[int, float] = {}
_run: dict[str, Any] = {}  # what the master said: step_users, users, offset_s (this clock minus the master's)
_told = gevent.event.Event()  # a worker has heard the master's current step
STATE, HELLO, END = "devai_state", "devai_hello", "devai_end"
LATENCY_ALONE = (
    "the latency locustfile runs one user on one timeline (a cold request needs the endpoint idle for ALL load): "
    "run it without --master/--worker/--processes; capacity, arrivals, streaming and chat run distributed"
)


def _scrub_output() -> None:
    """locust's own output is ours too: stdout, stderr and every logging stream pass the scrubber (a key an
    endpoint echoes into an error never reaches the terminal or a CI log)."""
    register(*secrets_in(os.environ))
    if not isinstance(sys.stdout, ScrubbedStream):
        sys.stdout, sys.stderr = ScrubbedStream(sys.stdout), ScrubbedStream(sys.stderr)
    for logger in [logging.getLogger(), *(logging.getLogger(n) for n in list(logging.root.manager.loggerDict))]:
        for handler in getattr(logger, "handlers", []):
            if isinstance(handler, logging.StreamHandler) and not isinstance(handler.stream, ScrubbedStream):
                handler.setStream(ScrubbedStream(handler.stream))


@events.init.add_listener
def _init(environment: Environment, **_: Any) -> None:
    _scrub_output()
    runner = environment.runner
    distributed = isinstance(runner, (MasterRunner, WorkerRunner))
    if distributed and any(issubclass(u, LatencyUser) for u in environment.user_classes):
        logging.getLogger("harness.load").error(LATENCY_ALONE)
        sys.exit(2)
    if isinstance(runner, WorkerRunner):
        runner.register_message(STATE, _on_state)
        runner.send_message(HELLO, {})  # a late joiner's spawn can come before this: it asks now, too
    elif isinstance(runner, MasterRunner):
        runner.register_message(END, _on_end)
        runner.register_message(HELLO, lambda environment, msg, **_: _tell(environment, msg.node_id))


@events.test_start.add_listener
def _test_start(environment: Environment, **_: Any) -> None:
    _started[os.getpid()] = time.monotonic()
    if not isinstance(environment.runner, MasterRunner) and os.getpid() not in _probes:  # a process that sends
        probe = _probes[os.getpid()] = LagProbe(sleep=gevent.sleep)
        gevent.spawn(probe.run, lambda: True)
    if isinstance(environment.runner, WorkerRunner):  # where is the run? (None: a late joiner's runner is not set yet)
        environment.runner.send_message(HELLO, {})
    elif isinstance(environment.runner, MasterRunner):
        # Sent before locust's spawn messages (test_start fires first): a worker's first request already knows
        # the run's total users, not only its share.
        users = getattr(environment.parsed_options, "num_users", None)
        if users and environment.shape_class is None:
            _run["users"] = int(users)
        _tell(environment)


@events.spawning_complete.add_listener
def _spawned(user_count: int, **_: Any) -> None:
    """``user_count`` is the run's total on every node (locust sends the master's figure to the workers)."""
    _run["users"] = user_count


def _tell(environment: Environment, client_id: str | None = None) -> None:
    runner = environment.runner
    state = {"step_users": _run.get("step_users"), "users": _run.get("users"), "sent_unix": time.time()}
    if isinstance(runner, MasterRunner):
        runner.send_message(STATE, state, client_id)


def _on_state(environment: Environment, msg: Any, **_: Any) -> None:
    data = msg.data or {}
    _run.update({k: v for k, v in data.items() if k in ("step_users", "users") and v is not None})
    _run["offset_s"] = time.time() - float(data.get("sent_unix", time.time()))  # plus a loopback/LAN hop
    if data.get("step_users") is not None:
        _told.set()
    for writer in _writers.values():
        writer.clock_offset_s = round(_run["offset_s"], 4)


def _on_end(environment: Environment, msg: Any, **_: Any) -> None:
    why = (msg.data or {}).get("why", "")
    logging.getLogger("harness.load").info("a worker ended the run: %s", why)
    if environment.runner is not None:
        gevent.spawn(environment.runner.quit)


def _end_run(env: Environment, why: str) -> None:
    """The whole run stops: on a worker by asking the master (see the module docstring)."""
    runner = env.runner
    if isinstance(runner, WorkerRunner):
        runner.send_message(END, {"why": why})
    elif runner is not None:
        runner.quit()


def _keep(env: Environment, writer: RecordWriter, rec: LoadRecord) -> None:
    """Write the record (see _output_failed)."""
    try:
        writer.write(rec)
    except OutputError as exc:
        raise _output_failed(env, exc) from None


def _seq(env: Environment, writer: RecordWriter) -> int:
    """A request begins: its number, written down (see _output_failed)."""
    try:
        return writer.next_seq()
    except OutputError as exc:
        raise _output_failed(env, exc) from None


def _output_failed(env: Environment, exc: OutputError) -> StopUser:
    """A write that fails (a full disk) stops the whole run once, with one line, instead of a traceback per request
    from every user."""
    if not _run.get("output_failed"):
        _run["output_failed"] = True
        env.process_exit_code = 1  # what was measured could not be kept: not a successful run
        logging.getLogger("harness.load").error("stopping: %s", exc)
        _end_run(env, f"stopping: {exc}")
    return StopUser()


def _set_step(runner: Any, users: int) -> None:
    """The shape moved to a step of ``users``: remembered here, and told to every worker."""
    if _run.get("step_users") == users:
        return
    _run["step_users"] = users
    if isinstance(runner, MasterRunner):
        _tell(runner.environment)


@events.quitting.add_listener
def _quitting(environment: Environment, **_: Any) -> None:
    probe = _probes.get(os.getpid())
    clock = _clocks.get(os.getpid())
    for writer in _writers.values():
        writer.lag = probe.summary() if probe is not None else None
        if clock is not None:
            writer.timing = {"source": "packets", **clock.counts()}
        try:
            writer.close()
        except OutputError as exc:  # the disk is full: said once already when the run stopped for it
            if not _run.get("output_failed"):
                logging.getLogger("harness.load").error("%s", exc)


def _packet_clock(env: Environment) -> PacketClock | None:
    """One per process, opened at its first user when --packet-clock asks; None (said once) when not permitted."""
    pid = os.getpid()
    if not getattr(_opts(env), "packet_clock", False):
        return None
    if pid not in _clocks:
        _clocks[pid] = PacketClock.open()
        if _clocks[pid] is None:
            logging.getLogger("harness.load").warning(
                "--packet-clock: %s; timing by this process's clock", PacketClock.why_not
            )
            _writer(env).timing = {"source": "client", "why": PacketClock.why_not}
    return _clocks[pid]


def _step_users(env: Environment) -> int:
    """The step's TOTAL user count: what the master said (distributed), else from the schedule — a process's own
    user_count is only its share."""
    if isinstance(env.runner, WorkerRunner) and not _told.is_set():
        _told.wait(2.0)  # a late worker's first requests: the master's answer is a round trip away
    if _run.get("step_users") is not None:
        return int(_run["step_users"])
    opts = _opts(env)
    steps = [int(s) for s in opts.steps.split(",")]
    i = int((time.monotonic() - _started.get(os.getpid(), time.monotonic())) // opts.step_seconds)
    return steps[min(i, len(steps) - 1)]


def _opts(env: Environment) -> Any:
    if env.parsed_options is None:
        raise HarnessError("these users need locust's parsed options (run them with the locust command)")
    return env.parsed_options


def _writer(env: Environment) -> RecordWriter:
    pid = os.getpid()  # one file per process: --processes N forks after import
    if pid not in _writers:
        writer = _writers[pid] = RecordWriter(_opts(env).run_dir)
        writer.role = "worker" if isinstance(env.runner, WorkerRunner) else "local"
        offset = _run.get("offset_s")
        writer.clock_offset_s = None if offset is None else round(offset, 4)
    return _writers[pid]


def _runpod(env: Environment, poll: PollPolicy | None = None) -> SyncRunPod:
    opts = _opts(env)
    key = os.environ.get(opts.api_key_env, "")
    if not env.host:
        raise HarnessError("give --host: the endpoint base URL, e.g. https://api.runpod.ai/v2")
    return SyncRunPod(env.host, opts.endpoint_id, key, poll=poll)


def _fire(env: Environment, rec: LoadRecord, exc: BaseException | None) -> None:
    env.events.request.fire(
        request_type="openai" if rec.label in ("streaming", "chat") else "runpod",
        name=rec.phase,
        response_time=(rec.e2e_s or 0) * 1000,
        response_length=rec.output_tokens or 0,
        exception=exc,
        context={"label": rec.label},
    )


def _failed(rec: LoadRecord, exc: HarnessError) -> HarnessError:
    """The cause by type, and what it said (a FAILED job: the worker's own message)."""
    rec.status, rec.error = "error", type(exc).__name__
    message = exc.worker_error.message if isinstance(exc, JobFailed) and exc.worker_error else str(exc)
    rec.error_message = message.splitlines()[0][:300] if message else None
    rec.http_status = exc.status_code if isinstance(exc, StatusError) else None
    if isinstance(exc, JobError):
        job = exc.job
        rec.delay_ms, rec.execution_ms, rec.worker_id = job.delay_time_ms, job.execution_time_ms, job.worker_id
    return exc


@contextlib.contextmanager
def _measured(env: Environment, **fields: Any) -> Iterator[LoadRecord]:
    """One request, begun (its number written down first), then recorded and fired into locust's stats once.

    A HarnessError is the request's failure (recorded, not raised). The run ending while the request is in flight
    (locust kills the user: GreenletExit) records it as ``cut`` with the time it had run, then lets the user stop:
    a stream that never ends is cut at ``-t``, and said so, not lost."""
    writer = _writer(env)
    rec = LoadRecord(process=writer.pid, seq=_seq(env, writer), start_unix=time.time(), **fields)
    t0 = time.perf_counter()
    exc: BaseException | None = None
    try:
        yield rec
    except HarnessError as e:
        exc = _failed(rec, e)
    except GreenletExit:
        rec.status, rec.error, rec.e2e_s = "cut", "RunEnded", time.perf_counter() - t0
        rec.error_message = "the run ended while this request was in flight"
        _keep(env, writer, rec)
        raise
    _keep(env, writer, rec)
    _fire(env, rec, exc)


def _job(env: Environment, rp: SyncRunPod, rec: LoadRecord) -> None:
    """One RunPod job into ``rec`` (its failure raised, with the time it took)."""
    t0 = time.perf_counter()
    try:
        job = rp.run(PROMPT, timeout=_opts(env).job_timeout)
    except HarnessError as exc:
        rec.e2e_s = time.perf_counter() - t0
        _failed(rec, exc)  # its fields now, for the latency user's evidence
        raise
    rec.e2e_s = time.perf_counter() - t0
    rec.delay_ms, rec.execution_ms, rec.worker_id = job.delay_time_ms, job.execution_time_ms, job.worker_id
    got = extract(job.output)
    if got.usage is not None:
        rec.input_tokens, rec.output_tokens = got.usage.input_tokens, got.usage.output_tokens


def _timed_job(env: Environment, rp: SyncRunPod, *, phase: str, **fields: Any) -> LoadRecord:
    """One capacity job, measured."""
    with _measured(env, label="capacity", phase=phase, **fields) as rec:
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
            _end_run(self.environment, said)
            self.stop()
        elif wait:
            gevent.sleep(wait)


LATENCY_GIVE_UP = 3  # requests, all failed, after which the latency schedule stops


class LatencyUser(User):
    """One user walks the phase plan (cold, hot x n, warm x n, per round), then stops the run."""

    fixed_count = 1
    wait_time = constant(0)

    def on_start(self) -> None:
        opts = _opts(self.environment)
        self.rp = _runpod(self.environment, LATENCY_POLL)
        self.steps = iter(PhasePlan(idle_timeout_s=opts.idle_timeout, rounds=opts.rounds).steps())
        self.last_end: float | None = None
        self.outcomes: list[bool] = []

    def on_stop(self) -> None:
        self.rp.close()

    @task
    def step(self) -> None:
        step = next(self.steps, None)
        if step is None:
            _end_run(self.environment, "the latency schedule is done")
            self.stop()
            return
        gevent.sleep(step.wait_s)
        with _measured(self.environment, label="latency", phase=step.phase) as rec:
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
                    hot_gap = _opts(self.environment).hot_gap
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
            _end_run(self.environment, said)
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
        users = _step_users(self.environment)
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
        opts = _opts(self.environment)
        pool = []
        for rate in [float(r) for r in opts.steps.split(",")]:
            end = time.monotonic() + opts.step_seconds
            while time.monotonic() < end:
                gap = (
                    random.gammavariate(opts.burstiness, 1 / (rate * opts.burstiness))
                    if opts.arrivals == "gamma"
                    else random.expovariate(rate)
                )
                gevent.sleep(gap)
                pool.append(gevent.spawn(self._one, rate))
        gevent.joinall(pool, timeout=opts.job_timeout)
        _end_run(self.environment, "the arrival schedule is done")
        self.stop()

    def _one(self, rate: float) -> None:
        _timed_job(self.environment, self.rp, phase=f"r{rate:g}", rate=rate)


_models: dict[str, str] = {}


def _model(env: Environment, oa: SyncOpenAI) -> str:
    """--model, else the first model the server lists (asked once per process)."""
    given = _opts(env).model
    if given:
        return str(given)
    host = env.host or ""
    if host not in _models:
        listed = oa.models()
        if not listed:
            raise ConfigError(f"{host}/models lists no model: give --model")
        _models[host] = listed[0]
    return _models[host]


class StreamingUser(_Careful):
    """N concurrent streams against an OpenAI-compatible URL (--host .../v1): TTFT and every chunk gap."""

    wait_time = constant(0)
    streaming = True

    def on_start(self) -> None:
        super().on_start()
        # A whole non-streaming answer may take as long as a job; a stream must not fall silent for 30 s.
        timeout = _opts(self.environment).job_timeout
        self.oa = SyncOpenAI(
            self.environment.host or "",
            os.environ.get("OPENAI_API_KEY"),
            stall_timeout_s=30.0,
            request_timeout=timeout,
            packet_clock=_packet_clock(self.environment),
        )

    def on_stop(self) -> None:
        self.oa.close()

    @task
    def request(self) -> None:
        users = _run.get("users") or (self.environment.runner.user_count if self.environment.runner else 1)
        label, phase = ("streaming", "stream") if self.streaming else ("chat", "chat")
        with _measured(self.environment, label=label, phase=phase, concurrency=users) as rec:
            messages = SMOKE_CHAT
            model = _model(self.environment, self.oa)
            send = self.oa.chat_stream if self.streaming else self.oa.chat
            t = send(messages, model=model, max_tokens=64).timing
            rec.e2e_s, rec.ttft_s, rec.tt_ack_s, rec.gaps_s = t.e2e, t.ttft, t.tt_ack, t.gaps
            rec.input_tokens, rec.output_tokens, rec.request_id = t.input_tokens, t.output_tokens, t.request_id
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
        _set_step(self.runner, steps[i])
        return (steps[i], steps[i])
