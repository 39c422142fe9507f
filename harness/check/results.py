"""The main job's typed results: a stage's verdict, summary and rows, and the run that holds them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from harness.core.verdict import Verdict, combine
from harness.reporting.junit import JUnitCase
from harness.reporting.rows import Row
from harness.targets import Target

__all__ = ["CheckRun", "StageResult", "SuiteRow"]

PASS, FAIL, NOT_CHECKED, NA, ERROR = Verdict.PASS, Verdict.FAIL, Verdict.NOT_CHECKED, Verdict.NA, Verdict.ERROR


@dataclass(frozen=True, slots=True)
class SuiteRow:
    """One test of the conformance suite, as its JUnit file said: a :class:`~harness.reporting.rows.Row`."""

    test: str
    outcome: str  # passed | failure | error | skipped
    message: str

    COLUMNS: ClassVar[tuple[str, ...]] = ("test", "outcome", "message")
    SECTION: ClassVar[str | None] = "Suite: {summary}"
    TERMINAL: ClassVar[bool] = False  # hundreds of tests: the page lists what did not pass

    def cells(self) -> list[str]:
        return [self.test, self.outcome, self.message]

    def listed(self) -> bool:
        return self.outcome != "passed"

    def junit(self) -> JUnitCase | None:
        failed = self.message if self.outcome in ("failure", "error") else None
        return JUnitCase(
            "check.suite", self.test, failure=failed, skipped=self.message if self.outcome == "skipped" else None
        )


@dataclass(slots=True)
class StageResult:
    """A stage's verdict, one line, and its typed rows (each knows how it is shown)."""

    name: str
    verdict: str
    summary: str
    rows: Sequence[Row] = field(default_factory=list)
    error: str | None = None
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.verdict in (PASS, NA)


@dataclass(slots=True)
class CheckRun:
    target: Target
    run_dir: Path
    started_at: str
    stages: list[StageResult] = field(default_factory=list)
    report: dict[str, Path] = field(default_factory=dict)
    report_json: dict[str, Any] = field(default_factory=dict)  # what report.json holds, once written
    interrupted: str | None = None  # what it was doing when Ctrl-C came
    requests: dict[str, Any] | None = None  # the recorded requests' report (checks, phases), once written

    @property
    def ok(self) -> bool:
        return self.verdict is PASS

    @property
    def verdict(self) -> Verdict:
        """core.verdict.combine over the stages; an interrupted run is an ERROR unless something failed."""
        return combine([Verdict(s.verdict) for s in self.stages] + ([ERROR] if self.interrupted else []))

    def to_json(self) -> dict[str, Any]:
        return {
            "target": asdict(self.target),
            "run_dir": str(self.run_dir),
            "started_at": self.started_at,
            "verdict": self.verdict,
            "interrupted": self.interrupted,
            "stages": [asdict(s) for s in self.stages],
        }
