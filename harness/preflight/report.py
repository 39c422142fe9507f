"""What worker-check found: named checks (pass, warn, fail, skip), the jobs it ran, and the verdict.

A report where nothing was checked is NOT CHECKED, never OK.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from harness.core.errors import ConfigError
from harness.core.verdict import WORDS, Verdict, combine

__all__ = ["EVENT_TITLES", "IMPORT_CHECKS", "CheckResult", "WorkerReport", "load_test_input"]

FIX_LAZY = (
    "import-time work runs on every cold start, before runpod.serverless.start(); if it fails, the "
    "container dies with no logs and jobs sit IN_QUEUE (field report 002). Load lazily on the first "
    "request (or guard it and log before each heavy step)."
)
EVENT_TITLES = {
    "heavy-import": "framework imported at import time",
    "weights-opened": "weight file opened at import time",
    "network": "network access at import time",
    "server": "socket bound (a server?) at import time",
    "subprocess": "subprocess started at import time",
}


IMPORT_CHECKS = frozenset(
    {
        "import",
        "import time",
        "threads started at import time",
        "CUDA initialised at import time",
        *EVENT_TITLES.values(),
    }
)


@dataclass(slots=True)
class CheckResult:
    name: str
    status: str  # pass | warn | fail | skip
    summary: str
    details: list[str] = field(default_factory=list)

    @property
    def verdict(self) -> Verdict:
        """A warning holds (it works, at a cost); a skipped check is NOT CHECKED."""
        return {"fail": Verdict.FAIL, "skip": Verdict.NOT_CHECKED}.get(self.status, Verdict.PASS)


@dataclass(slots=True)
class WorkerReport:
    handler: str
    checks: list[CheckResult] = field(default_factory=list)
    jobs: list[dict[str, Any]] = field(default_factory=list)
    import_probe: dict[str, Any] = field(default_factory=dict)
    logs: list[str] = field(default_factory=list)

    @property
    def verdict(self) -> Verdict:
        return combine(c.verdict for c in self.checks)

    @property
    def ok(self) -> bool:
        """Nothing failed, and everything was checked (core.verdict.combine: all-skipped is not a pass)."""
        return self.verdict is Verdict.PASS

    def add(self, name: str, status: str, summary: str, details: list[str] | None = None) -> None:
        self.checks.append(CheckResult(name, status, summary, details or []))

    def to_json(self) -> dict[str, Any]:
        return {
            "handler": self.handler,
            "ok": self.ok,
            "checks": [asdict(c) for c in self.checks],
            "jobs": self.jobs,
            "import_probe": self.import_probe,
            "logs": self.logs[-50:],
        }

    def render(self) -> str:
        marks = {"pass": "PASS", "warn": "WARN", "fail": "FAIL", "skip": "SKIP"}
        out = [f"worker-check {self.handler}"]
        for c in self.checks:
            out.append(f"  {marks[c.status]}  {c.name}: {c.summary}")
            out.extend(f"          {line}" for line in c.details)
        if self.jobs:
            out.append("  jobs under the emulator (delayTime includes the cold start and the import):")
            for j in self.jobs:
                delay, ex = (("-" if v is None else v) for v in (j["delay_ms"], j["execution_ms"]))
                out.append(
                    f"          #{j['n']} {j['phase']:4s} {j['status']:9s} delay {delay} ms, "
                    f"execution {ex} ms, shape {j['shape']}"
                )
        if self.logs:
            cut = self.logs[0].startswith("[... ")  # only a tail was kept: say how much was left out
            count = f"{self.logs[0][1:-1]}, then {len(self.logs) - 1}" if cut else str(len(self.logs))
            out.append(f"  the handler printed {count} line(s) while importing; last: {self.logs[-1][:120]}")
        if any(c.status in ("warn", "fail") and c.name in IMPORT_CHECKS for c in self.checks):
            out.append(f"  how to fix: {FIX_LAZY}")
        fails, warns = (sum(c.status == s for c in self.checks) for s in ("fail", "warn"))
        verdict = WORDS["worker-check"].get(self.verdict, self.verdict)
        out.append(f"verdict: {verdict} ({fails} failed, {warns} warnings)")
        return "\n".join(out)


def load_test_input(handler_path: Path, given: str | None) -> tuple[Any, str]:
    """``--input`` JSON, else test_input.json beside the handler (RunPod's convention), else a default.
    ``{"input": {...}}`` and a bare input are both accepted."""
    if given is not None:
        source, text = "--input", given
    elif (handler_path.parent / "test_input.json").is_file():
        source, text = "test_input.json", (handler_path.parent / "test_input.json").read_text(encoding="utf-8")
    else:
        return {"prompt": "Hello"}, "default input {'prompt': 'Hello'} (no --input, no test_input.json)"
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise ConfigError(f"{source} is not valid JSON: {exc}") from None
    if isinstance(data, dict) and set(data) == {"input"}:
        data = data["input"]
    return data, source
