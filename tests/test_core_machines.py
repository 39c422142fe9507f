"""The pure machines, driven directly: observations in, decisions out, no I/O and no clock (times are arguments).
core.waiting (the job wait both drivers run), core.streaming (the stream accumulator) and core.timing (the
figures a request's timing gives)."""

from __future__ import annotations

import json

import pytest

from harness.core.errors import StreamErrorEvent, StreamStalled, StreamTruncated, ZombieWorker
from harness.core.health import DiagnosisKind, Health
from harness.core.jobs import Job, JobStatus
from harness.core.polling import PollPolicy
from harness.core.streaming import StreamAccumulator
from harness.core.timing import RequestTiming
from harness.core.waiting import FetchHealth, Finished, GiveUp, JobWait, Poll, Sleep, State


def job(status: JobStatus) -> Job:
    return Job("j1", status)


def health(at: float, *, idle: int = 0, running: int = 0, in_queue: int = 1, in_progress: int = 0) -> Health:
    workers = {"idle": idle, "running": running}
    return Health.from_json({"jobs": {"inQueue": in_queue, "inProgress": in_progress}, "workers": workers}, taken_at=at)


# --- core.waiting ------------------------------------------------------------------------------


def test_a_job_done_at_the_first_look_is_finished_without_a_sleep() -> None:
    wait = JobWait("j1", started_at=0.0, timeout_s=60, long_poll=False)
    assert wait.next(0.0) == Poll(None) and wait.state is State.POLL
    wait.job_seen(0.1, job(JobStatus.COMPLETED))
    assert wait.state is State.FINISHED
    assert wait.next(0.1) == Finished(job(JobStatus.COMPLETED)) and wait.state is State.DONE
    with pytest.raises(RuntimeError, match="the wait is over"):
        wait.next(0.2)


def test_a_running_job_is_polled_with_growing_sleeps_under_the_cap() -> None:
    policy = PollPolicy()
    wait = JobWait("j1", started_at=0.0, timeout_s=600, poll=policy, long_poll=False)
    sleeps = []
    now = 0.0
    for _ in range(8):
        assert isinstance(wait.next(now), Poll)
        wait.job_seen(now, job(JobStatus.IN_PROGRESS))
        action = wait.next(now)
        assert isinstance(action, Sleep), action
        sleeps.append(action.seconds)
        now += action.seconds
    assert sleeps == sorted(sleeps) and sleeps[-1] > sleeps[0] and max(sleeps) <= policy.cap_s, sleeps


def test_the_long_poll_is_asked_and_a_404_falls_back_to_status_for_good() -> None:
    wait = JobWait("j1", started_at=0.0, timeout_s=60)
    first = wait.next(0.0)
    assert isinstance(first, Poll) and first.wait_ms is not None and first.http_timeout_s == first.wait_ms / 1000 + 15
    assert wait.status_sync_refused(404) and wait.long_poll is False
    assert wait.next(0.1) == Poll(None)
    worked = JobWait("j1", started_at=0.0, timeout_s=60)
    worked.next(0.0)
    worked.job_seen(2.0, job(JobStatus.IN_QUEUE), held=True)  # the long poll worked once
    assert not worked.status_sync_refused(404) and worked.long_poll  # a 404 now is a real error, the caller's


def test_a_held_poll_is_looked_at_again_at_once() -> None:
    wait = JobWait("j1", started_at=0.0, timeout_s=60)
    wait.next(0.0)
    wait.job_seen(5.0, job(JobStatus.IN_QUEUE), held=True)
    assert wait.long_poll is True and isinstance(wait.next(5.0), Poll)  # no Sleep between holds


def test_a_job_queued_beside_an_idle_worker_is_called_a_zombie_early() -> None:
    wait = JobWait("j1", started_at=0.0, timeout_s=600, stuck_after_s=10, health_every_s=2, long_poll=False)
    now, actions = 0.0, []
    while now < 60:
        action = wait.next(now)
        actions.append(type(action).__name__)
        if isinstance(action, Poll):
            wait.job_seen(now, job(JobStatus.IN_QUEUE))
        elif isinstance(action, FetchHealth):
            wait.health_seen(health(now, idle=1))
        elif isinstance(action, Sleep):
            now += action.seconds
        else:
            break
    assert isinstance(action, GiveUp) and action.diagnosis.kind is DiagnosisKind.ZOMBIE, actions
    assert 10 <= action.elapsed_s < 20  # at the stuck threshold, long before the 600 s deadline
    assert "FetchHealth" in actions and actions.index("FetchHealth") > 0  # snapshots from half the threshold
    error = wait.timeout_error(action, cancelled=False)
    assert isinstance(error, ZombieWorker) and error.cancelled is False and "it may still bill" in str(error)


def test_at_the_deadline_a_running_job_is_slow_execution() -> None:
    wait = JobWait("j1", started_at=0.0, timeout_s=3, long_poll=False)
    now = 0.0
    while True:
        action = wait.next(now)
        if isinstance(action, Poll):
            wait.job_seen(now, job(JobStatus.IN_PROGRESS))
        elif isinstance(action, FetchHealth):
            wait.health_seen(None)  # /health failed: the wait goes on without it
        elif isinstance(action, Sleep):
            now += max(action.seconds, 0.5)
        else:
            break
    assert isinstance(action, GiveUp) and action.diagnosis.kind is DiagnosisKind.SLOW_EXECUTION


# --- core.streaming ----------------------------------------------------------------------------


def chunk(text: str, finish: str | None = None) -> bytes:
    body = {"id": "c1", "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": finish}]}
    return f"data: {json.dumps(body)}\n\n".encode()


def test_bytes_cut_anywhere_give_the_same_completion_and_times() -> None:
    stream = chunk("Hel") + b": keep-alive\n\n" + chunk("lo", finish="stop") + b"data: [DONE]\n\n"
    whole = StreamAccumulator("POST /v1/chat/completions")
    whole.headers(0.01)
    whole.feed(stream, 0.2)
    bytewise = StreamAccumulator("POST /v1/chat/completions")
    bytewise.headers(0.01)
    for i in range(len(stream)):
        bytewise.feed(stream[i : i + 1], 0.2 + i / 1000)
    a, b = whole.finish(0.3), bytewise.finish(1.0)
    assert a.text == b.text == "Hello" and a.finish_reason == b.finish_reason == "stop"
    assert a.timing.ttft == 0.2 and b.timing.ttft is not None and b.timing.ttft > 0.2
    assert len(a.timing.keepalives) == len(b.timing.keepalives) == 1 and not a.findings


def test_the_budget_names_the_clock_that_runs_out_first() -> None:
    acc = StreamAccumulator("s", stall_timeout_s=30, ttft_timeout_s=10, total_timeout_s=60)
    assert (acc.budget(2.0).kind, acc.budget(2.0).seconds) == ("ttft", 8.0)  # before the 30 s stall clock
    acc.feed(b": keep-alive\n\n", 9.0)  # a keep-alive does not stop the TTFT clock
    assert (acc.budget(9.0).kind, acc.budget(9.0).seconds) == ("ttft", 1.0)
    acc.feed(chunk("x"), 9.5)
    assert (acc.budget(10.0).kind, acc.budget(10.0).seconds) == ("stall", 30)  # content came: no TTFT clock
    assert (acc.budget(40.0).kind, acc.budget(40.0).seconds) == ("total", 20.0)
    with pytest.raises(StreamStalled, match="total deadline"):
        acc.feed(chunk("y"), 61.0)  # bytes that keep coming still end at the total


def test_an_error_event_is_raised_at_once_and_a_cut_stream_is_truncated() -> None:
    acc = StreamAccumulator("s")
    with pytest.raises(StreamErrorEvent):
        acc.feed(b'data: {"error": {"message": "CUDA out of memory", "code": 500}}\n\n', 0.1)
    cut = StreamAccumulator("s")
    cut.feed(chunk("half"), 0.1)
    with pytest.raises(StreamTruncated, match="without \\[DONE\\] or a finish_reason"):
        cut.finish(0.2)


# --- core.timing -------------------------------------------------------------------------------


def test_each_tools_convention_from_one_timing() -> None:
    t = RequestTiming(ttft=0.2, last_content=1.1, e2e=1.2, output_tokens=10)
    assert t.tpot == pytest.approx((1.2 - 0.2) / 9)  # vLLM bench: includes the tail after the last token
    assert t.itl_guidellm == pytest.approx((1.1 - 0.2) / 9)  # GuideLLM: first to last token
    assert t.output_tokens_per_s == pytest.approx(10 / 1.2) and t.decode_tokens_per_s == pytest.approx(9 / 1.0)
    two = RequestTiming(ttft=0.2, last_content=1.1, e2e=1.2, output_tokens=20, choices=2)  # n=2: per choice
    assert two.tpot == pytest.approx(t.tpot) and two.output_tokens_per_s == pytest.approx(20 / 1.2)
    whole = RequestTiming(streamed=False, ttft=None, e2e=1.2, output_tokens=10)
    assert whole.tpot is None and whole.itl_guidellm is None  # no per-token timing without a stream
    assert RequestTiming(ttft=0.2, e2e=1.2, output_tokens=1).tpot is None  # one token: no gap to average


def test_a_failed_request_keeps_its_timing_as_a_note() -> None:
    t, exc = RequestTiming(name="chat", ttft=0.3), RuntimeError("cut")
    t.failed(exc, 2.5)
    assert (t.status, t.error, t.e2e) == ("error", "RuntimeError", 2.5)
    assert exc.__notes__ and json.dumps(t.to_json()) and "'ttft': 0.3" in exc.__notes__[0]


# --- core.verdict ------------------------------------------------------------------------------


def test_one_rule_combines_every_commands_checks() -> None:
    from harness.core.verdict import Verdict, combine

    P, F, E, N, NA = Verdict.PASS, Verdict.FAIL, Verdict.ERROR, Verdict.NOT_CHECKED, Verdict.NA
    assert combine([P, NA, P]) is P
    assert combine([P, F, E, N]) is F  # a finding outranks our own trouble
    assert combine([P, E, N]) is E  # our own trouble is never the endpoint's FAIL
    assert combine([P, N]) is N  # partly checked is not a pass
    assert combine([]) is combine([NA, NA]) is N  # nothing ran
