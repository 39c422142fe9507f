"""One locust run, in one process: the harness's options, the run's state, the listeners that keep distributed
runs on one timeline, and the bookkeeping of every request (begun, recorded, fired once) — what every user in
:mod:`harness.load.users` shares. Importing it imports locust (gevent's patching): locustfiles only.

Distributed (``--master`` / ``--worker``, and ``--processes N``, which is the same on one machine): the master
tells every worker the run's state — the step's TOTAL user count, the total users, its clock — when the run
starts, at each step, and to a worker that joins late when it asks; records are labelled from that, not from a
worker's own clock, so a late joiner's requests land in the step they ran in. A user that ends the run (its
schedule done, or only failures) asks the master to stop everything: a worker quitting alone would make the
master hand its users to the others and run the schedule again.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import gevent
import gevent.event
from gevent import GreenletExit
from locust import events
from locust.env import Environment
from locust.exception import StopUser
from locust.runners import MasterRunner, WorkerRunner

from harness.core.errors import HarnessError, JobError, JobFailed, OutputError, StatusError
from harness.core.scrub import register, secrets_in
from harness.load.lag import LagProbe
from harness.load.packetclock import PacketClock
from harness.load.records import LoadRecord, RecordWriter
from harness.reporting.stdio import ScrubbedStream

__all__ = [
    "RUN",
    "Here",
    "RunState",
    "end_run",
    "failed",
    "here",
    "measured",
    "opts",
    "packet_clock",
    "scrub_output",
    "set_step",
    "step_users",
    "writer",
]

STATE, HELLO, END = "devai_state", "devai_hello", "devai_end"
LATENCY_ALONE = (
    "the latency locustfile runs one user on one timeline (a cold request needs the endpoint idle for ALL load): "
    "run it without --master/--worker/--processes; capacity, arrivals, streaming and chat run distributed"
)


@dataclass
class Here:
    """What this process holds for its run (``--processes N`` forks after import: one per pid)."""

    writer: RecordWriter | None = None
    probe: LagProbe | None = None  # its own scheduling lag (harness.load.lag)
    clock: PacketClock | None = None  # its packet clock, when asked for and permitted
    clock_asked: bool = False
    started: float | None = None  # monotonic, at test start
    models: dict[str, str] = field(default_factory=dict)  # host -> the first model /models lists


@dataclass
class RunState:
    """What the master said about the run (distributed), or this process's own view of it."""

    step_users: int | None = None  # the step's TOTAL user count
    users: int | None = None  # the run's total users
    offset_s: float | None = None  # this clock minus the master's
    output_failed: bool = False  # a write failed (a full disk): said once, the run stopped
    told: gevent.event.Event = field(default_factory=gevent.event.Event)  # a worker has heard the current step


RUN = RunState()
_HERE: dict[int, Here] = {}


def here() -> Here:
    return _HERE.setdefault(os.getpid(), Here())


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


def scrub_output() -> None:
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
    scrub_output()
    runner = environment.runner
    distributed = isinstance(runner, (MasterRunner, WorkerRunner))
    if distributed and any(getattr(u, "alone", False) for u in environment.user_classes):
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
    mine = here()
    mine.started = time.monotonic()
    if not isinstance(environment.runner, MasterRunner) and mine.probe is None:  # a process that sends
        mine.probe = LagProbe(sleep=gevent.sleep)
        gevent.spawn(mine.probe.run, lambda: True)
    if isinstance(environment.runner, WorkerRunner):  # where is the run? (None: a late joiner's runner is not set yet)
        environment.runner.send_message(HELLO, {})
    elif isinstance(environment.runner, MasterRunner):
        # Sent before locust's spawn messages (test_start fires first): a worker's first request already knows
        # the run's total users, not only its share.
        users = getattr(environment.parsed_options, "num_users", None)
        if users and environment.shape_class is None:
            RUN.users = int(users)
        _tell(environment)


@events.spawning_complete.add_listener
def _spawned(user_count: int, **_: Any) -> None:
    """``user_count`` is the run's total on every node (locust sends the master's figure to the workers)."""
    RUN.users = user_count


def _tell(environment: Environment, client_id: str | None = None) -> None:
    runner = environment.runner
    state = {"step_users": RUN.step_users, "users": RUN.users, "sent_unix": time.time()}
    if isinstance(runner, MasterRunner):
        runner.send_message(STATE, state, client_id)


def _on_state(environment: Environment, msg: Any, **_: Any) -> None:
    data = msg.data or {}
    RUN.step_users = data["step_users"] if data.get("step_users") is not None else RUN.step_users
    RUN.users = data["users"] if data.get("users") is not None else RUN.users
    RUN.offset_s = time.time() - float(data.get("sent_unix", time.time()))  # plus a loopback/LAN hop
    if data.get("step_users") is not None:
        RUN.told.set()
    mine = here()
    if mine.writer is not None:
        mine.writer.clock_offset_s = round(RUN.offset_s, 4)


def _on_end(environment: Environment, msg: Any, **_: Any) -> None:
    why = (msg.data or {}).get("why", "")
    logging.getLogger("harness.load").info("a worker ended the run: %s", why)
    if environment.runner is not None:
        gevent.spawn(environment.runner.quit)


def end_run(env: Environment, why: str) -> None:
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
    if not RUN.output_failed:
        RUN.output_failed = True
        env.process_exit_code = 1  # what was measured could not be kept: not a successful run
        logging.getLogger("harness.load").error("stopping: %s", exc)
        end_run(env, f"stopping: {exc}")
    return StopUser()


def set_step(runner: Any, users: int) -> None:
    """The shape moved to a step of ``users``: remembered here, and told to every worker."""
    if RUN.step_users == users:
        return
    RUN.step_users = users
    if isinstance(runner, MasterRunner):
        _tell(runner.environment)


@events.quitting.add_listener
def _quitting(environment: Environment, **_: Any) -> None:
    mine = here()
    if mine.writer is None:
        return
    mine.writer.lag = mine.probe.summary() if mine.probe is not None else None
    if mine.clock is not None:
        mine.writer.timing = {"source": "packets", **mine.clock.counts()}
    try:
        mine.writer.close()
    except OutputError as exc:  # the disk is full: said once already when the run stopped for it
        if not RUN.output_failed:
            logging.getLogger("harness.load").error("%s", exc)


def packet_clock(env: Environment) -> PacketClock | None:
    """One per process, opened at its first user when --packet-clock asks; None (said once) when not permitted."""
    mine = here()
    if not getattr(opts(env), "packet_clock", False):
        return None
    if not mine.clock_asked:
        mine.clock_asked, mine.clock = True, PacketClock.open()
        if mine.clock is None:
            logging.getLogger("harness.load").warning(
                "--packet-clock: %s; timing by this process's clock", PacketClock.why_not
            )
            writer(env).timing = {"source": "client", "why": PacketClock.why_not}
    return mine.clock


def step_users(env: Environment) -> int:
    """The step's TOTAL user count: what the master said (distributed), else from the schedule — a process's own
    user_count is only its share."""
    if isinstance(env.runner, WorkerRunner) and not RUN.told.is_set():
        RUN.told.wait(2.0)  # a late worker's first requests: the master's answer is a round trip away
    if RUN.step_users is not None:
        return RUN.step_users
    given = opts(env)
    steps = [int(s) for s in given.steps.split(",")]
    started = here().started
    i = int((time.monotonic() - (time.monotonic() if started is None else started)) // given.step_seconds)
    return steps[min(i, len(steps) - 1)]


def opts(env: Environment) -> Any:
    if env.parsed_options is None:
        raise HarnessError("these users need locust's parsed options (run them with the locust command)")
    return env.parsed_options


def writer(env: Environment) -> RecordWriter:
    """This process's record file (one per process: ``--processes N`` forks after import)."""
    mine = here()
    if mine.writer is None:
        mine.writer = RecordWriter(opts(env).run_dir)
        mine.writer.role = "worker" if isinstance(env.runner, WorkerRunner) else "local"
        mine.writer.clock_offset_s = None if RUN.offset_s is None else round(RUN.offset_s, 4)
    return mine.writer


def _fire(env: Environment, rec: LoadRecord, exc: BaseException | None) -> None:
    env.events.request.fire(
        request_type="openai" if rec.label in ("streaming", "chat") else "runpod",
        name=rec.phase,
        response_time=(rec.e2e_s or 0) * 1000,
        response_length=rec.output_tokens or 0,
        exception=exc,
        context={"label": rec.label},
    )


def failed(rec: LoadRecord, exc: HarnessError) -> HarnessError:
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
def measured(env: Environment, **fields: Any) -> Iterator[LoadRecord]:
    """One request, begun (its number written down first), then recorded and fired into locust's stats once.

    A HarnessError is the request's failure (recorded, not raised). The run ending while the request is in flight
    (locust kills the user: GreenletExit) records it as ``cut`` with the time it had run, then lets the user stop:
    a stream that never ends is cut at ``-t``, and said so, not lost."""
    out = writer(env)
    rec = LoadRecord(process=out.pid, seq=_seq(env, out), start_unix=time.time(), **fields)
    t0 = time.perf_counter()
    exc: BaseException | None = None
    try:
        yield rec
    except HarnessError as e:
        exc = failed(rec, e)
    except GreenletExit:
        rec.status, rec.error, rec.e2e_s = "cut", "RunEnded", time.perf_counter() - t0
        rec.error_message = "the run ended while this request was in flight"
        _keep(env, out, rec)
        raise
    _keep(env, out, rec)
    _fire(env, rec, exc)
