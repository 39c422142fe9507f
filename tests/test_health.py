"""Health parsing (tolerant of every key set seen) and the Watchdog's verdicts."""

from __future__ import annotations

from typing import Any

import pytest

from harness.core.health import DiagnosisKind, Health, Watchdog
from harness.core.jobs import JobStatus

DOCS_NOW = {
    "jobs": {"completed": 1, "failed": 5, "inProgress": 0, "inQueue": 2, "retried": 0},
    "workers": {"idle": 0, "running": 0},
}
SDK_2024 = {
    "jobs": {"completed": 1},
    "workers": {"idle": 1, "initializing": 0, "ready": 1, "running": 0, "throttled": 0},
}
SEED_000 = {
    "workers": {"idle": 1, "initializing": 0, "ready": 1, "running": 1, "throttled": 0, "unhealthy": 0},
    "jobs": {"completed": 56, "failed": 0, "inProgress": 0, "inQueue": 2, "retried": 0},
}


@pytest.mark.parametrize(
    ("data", "idle", "unhealthy", "in_queue"),
    [
        pytest.param(DOCS_NOW, 0, None, 2, id="current-docs"),
        pytest.param(SDK_2024, 1, None, None, id="sdk-2024"),
        pytest.param(SEED_000, 1, 0, 2, id="field-report"),
        pytest.param({"workers": {"idle": "1", "new_key": 3}, "extra": True}, None, None, None, id="odd-types"),
        pytest.param({}, None, None, None, id="empty"),
        pytest.param([], None, None, None, id="not-an-object"),
    ],
)
def test_health_parsing_is_tolerant(data: Any, idle: int | None, unhealthy: int | None, in_queue: int | None) -> None:
    h = Health.from_json(data)
    assert (h.workers.idle, h.workers.unhealthy, h.jobs.in_queue) == (idle, unhealthy, in_queue)


def test_summary_names_only_reported_counts() -> None:
    assert Health.from_json(DOCS_NOW).summary() == (
        "workers idle=0 running=0; jobs inQueue=2 inProgress=0 completed=1 failed=5"
    )


def test_ready_minus_running_counts_as_available_without_idle() -> None:
    h = Health.from_json({"workers": {"ready": 3, "running": 1}})
    assert h.workers.available == 2


def snap(t: float, workers: dict[str, int], **jobs: int) -> Health:
    return Health.from_json({"workers": workers, "jobs": jobs}, taken_at=t)


def dog_after(snaps: list[Health], status: JobStatus = JobStatus.IN_QUEUE, stuck: float = 60) -> Watchdog:
    dog = Watchdog(stuck_after_s=stuck, started_at=0)
    for h in snaps:
        dog.observe_job(h.taken_at, status)
        dog.observe_health(h)
    return dog


def test_no_snapshots_before_half_the_threshold() -> None:
    dog = Watchdog(stuck_after_s=60, started_at=0, health_every_s=5)
    dog.observe_job(10, JobStatus.IN_QUEUE)
    assert not dog.wants_health(29)
    assert dog.wants_health(30)
    dog.observe_health(snap(30, {}))
    assert not dog.wants_health(33)
    assert dog.wants_health(35)


def test_no_early_verdict_before_the_threshold() -> None:
    dog = dog_after([snap(40, {"idle": 2})])
    assert dog.early_verdict(59) is None
    verdict = dog.early_verdict(60)
    assert verdict is not None and verdict.kind is DiagnosisKind.ZOMBIE


def test_leaving_the_queue_resets_the_clock() -> None:
    dog = Watchdog(stuck_after_s=60, started_at=0)
    dog.observe_job(50, JobStatus.IN_PROGRESS)
    dog.observe_job(55, JobStatus.IN_QUEUE)  # /retry put it back
    dog.observe_health(snap(56, {"idle": 1}))
    assert dog.early_verdict(100) is None
    assert dog.early_verdict(115) is not None


@pytest.mark.parametrize(
    ("snaps", "status", "kind"),
    [
        pytest.param(
            [snap(40, {"idle": 1, "ready": 1, "running": 1}, inQueue=2, completed=56, inProgress=0)],
            JobStatus.IN_QUEUE,
            DiagnosisKind.ZOMBIE,
            id="seed-000-zombie",
        ),
        pytest.param(
            [snap(40, {"idle": 0, "unhealthy": 3})], JobStatus.IN_QUEUE, DiagnosisKind.ZOMBIE, id="crash-loop"
        ),
        pytest.param(
            [snap(40, {"idle": 0, "initializing": 1})], JobStatus.IN_QUEUE, DiagnosisKind.COLD_START, id="initializing"
        ),
        pytest.param(
            [snap(40, {"idle": 0, "running": 0, "throttled": 2})],
            JobStatus.IN_QUEUE,
            DiagnosisKind.NO_CAPACITY,
            id="throttled-only",
        ),
        pytest.param([snap(40, {})], JobStatus.IN_QUEUE, DiagnosisKind.NO_CAPACITY, id="no-workers"),
        pytest.param(
            [
                snap(30, {"idle": 0, "running": 2}, completed=1, inProgress=2),
                snap(70, {"idle": 0, "running": 2}, completed=9, inProgress=2),
            ],
            JobStatus.IN_QUEUE,
            DiagnosisKind.BACKLOG,
            id="moving-queue",
        ),
        pytest.param(
            [
                snap(30, {"idle": 0, "running": 2}, completed=1, inProgress=2),
                snap(70, {"idle": 0, "running": 2}, completed=1, inProgress=2),
            ],
            JobStatus.IN_QUEUE,
            DiagnosisKind.ZOMBIE,
            id="running-nothing-finishes",
        ),
        pytest.param(
            [snap(40, {"idle": 0, "running": 1}, inProgress=1)],
            JobStatus.IN_PROGRESS,
            DiagnosisKind.SLOW_EXECUTION,
            id="in-progress",
        ),
        pytest.param([], JobStatus.IN_QUEUE, DiagnosisKind.UNDETERMINED, id="no-health"),
    ],
)
def test_final_verdicts(snaps: list[Health], status: JobStatus, kind: DiagnosisKind) -> None:
    dog = dog_after(snaps, status)
    if not snaps:
        dog.observe_job(100, status)
    assert dog.final_verdict(100).kind is kind


def test_field_report_001_snapshot_is_a_zombie_whatever_the_deadline() -> None:
    """running 1, inProgress 0, unhealthy 1: nothing runs, so it is a zombie even 3 s in (not 'a busy worker')."""
    fr001 = snap(3, {"idle": 0, "ready": 0, "running": 1, "unhealthy": 1}, completed=118, inQueue=1, inProgress=0)
    dog = dog_after([fr001], stuck=120)
    verdict = dog.final_verdict(3)
    assert verdict.kind is DiagnosisKind.ZOMBIE
    assert "no job in progress" in verdict.reason and "1 unhealthy" in verdict.reason


def test_a_crash_loop_is_a_zombie_whatever_the_deadline() -> None:
    dog = dog_after([snap(2, {"idle": 0, "running": 0, "unhealthy": 2})], stuck=120)
    assert dog.final_verdict(2).kind is DiagnosisKind.ZOMBIE


@pytest.mark.parametrize(
    ("workers", "jobs", "kind", "words"),
    [
        ({"idle": 0, "running": 1}, {"inProgress": 1}, DiagnosisKind.BACKLOG, "running 1 job(s); too little history"),
        ({"idle": 0, "running": 1}, {}, DiagnosisKind.UNDETERMINED, "workers idle=0 running=1"),
    ],
)
def test_too_little_history_says_what_it_saw(
    workers: dict[str, int], jobs: dict[str, int], kind: DiagnosisKind, words: str
) -> None:
    health = Health.from_json({"workers": workers, "jobs": jobs}, taken_at=3)
    dog = dog_after([health], stuck=120)
    verdict = dog.final_verdict(3)
    assert verdict.kind is kind and words in verdict.reason
    assert "busy" not in verdict.reason  # no worker is invented
