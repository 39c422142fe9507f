"""What the conformance suite needs besides checks: targets, recorded clocks, cassette serialisation,
and the results table / report.

Replay runs the client's real polling and timeout code from cassettes. Its decisions depend on the
responses and on the clock, so recording also keeps every clock reading the client made (a
``.clock.yaml`` beside the cassette) and replay hands them back in order: the same polls, the same
verdicts (a zombie diagnosed after 3 s of recorded time), in milliseconds.
"""

from __future__ import annotations

import datetime
import json
import time
import xml.etree.ElementTree as ET
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import yaml

from harness.clock import SystemClock
from harness.errors import ConfigError

__all__ = [
    "REPLAY_BASE_URL",
    "REPLAY_ENDPOINT",
    "CassetteYAML",
    "RecordingClock",
    "ReplayClock",
    "ResultRow",
    "Results",
]

REPLAY_BASE_URL = "https://api.runpod.ai/v2"
REPLAY_ENDPOINT = "replay"
REPLAY_KEY = "replay-key-not-a-secret"


class RecordingClock(SystemClock):
    """The system clock, remembering every reading relative to its start."""

    def __init__(self) -> None:
        self._t0 = time.monotonic()
        self.readings: list[float] = []

    def now(self) -> float:
        value = time.monotonic() - self._t0
        self.readings.append(round(value, 6))
        return value

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(
            yaml.safe_dump(
                {"note": "clock readings of the client while recording (devai-harness)", "readings": self.readings}
            ),
            encoding="utf-8",
        )


class ReplayClock:
    """Hands back recorded readings in order; sleeps return at once (the readings already say when)."""

    def __init__(self, path: Path) -> None:
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except OSError:
            raise ConfigError(f"no recorded clock at {path}: record the cassette again") from None
        self.readings: list[float] = list(data.get("readings") or [])
        self._i = 0
        self.sleeps: list[float] = []

    def now(self) -> float:
        if self._i >= len(self.readings):  # the client asked more than when recording: replay diverged
            raise ConfigError(f"replay asked the clock more often than the recording did ({len(self.readings)})")
        value = self.readings[self._i]
        self._i += 1
        return value

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)


class CassetteYAML:
    """vcrpy serializer: plain YAML plus a ``meta`` block (how, when, with what it was made)."""

    meta: ClassVar[dict[str, Any]] = {}

    @classmethod
    def serialize(cls, cassette_dict: dict[str, Any]) -> str:
        from harness import __version__

        meta = {
            "made_by": "devai-harness record",
            "recorded_at": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            "harness_version": __version__,
            **cls.meta,
        }
        return yaml.safe_dump({"meta": meta, **cassette_dict}, sort_keys=False, allow_unicode=True, width=1000)

    @staticmethod
    def deserialize(text: str) -> dict[str, Any]:
        data = yaml.safe_load(text) or {}
        data.pop("meta", None)
        return dict(data)


@dataclass(slots=True)
class ResultRow:
    test: str
    task: str
    case: str
    form: str
    checks: dict[str, str] = field(default_factory=dict)  # check -> pass | fail: message | skip: reason
    latency_ms: float | None = None
    output_tokens: int | None = None
    shape: str = "-"


@dataclass(slots=True)
class Results:
    rows: list[ResultRow] = field(default_factory=list)

    def table(self) -> str:
        """task x case x form: checks passed, the ones that failed or were skipped, latency, tokens, shape."""
        if not self.rows:
            return ""
        self.rows.sort(key=lambda r: (r.task, r.case, r.form))  # xdist workers finish in any order
        head = ["task", "case", "form", "checks", "failed / skipped", "ms", "tokens", "shape"]
        body = []
        for r in self.rows:
            kinds = [v.split(":")[0] for v in r.checks.values()]
            odd = [
                f"{'FAIL' if v.startswith('fail') else 'skip'} {k.removeprefix('check_')}"
                for k, v in r.checks.items()
                if not v.startswith("pass")
            ]
            body.append(
                [
                    r.task,
                    r.case,
                    r.form,
                    f"{kinds.count('pass')}/{len(kinds)} ok",
                    ", ".join(odd) or "-",
                    "-" if r.latency_ms is None else f"{r.latency_ms:.0f}",
                    "-" if r.output_tokens is None else str(r.output_tokens),
                    r.shape,
                ]
            )
        widths = [max(len(h), *(len(b[i]) for b in body)) for i, h in enumerate(head)]
        lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in [head, *body]]
        return "\n".join(lines)

    def write(self, path: str | Path) -> tuple[Path, Path]:
        """``PATH.json`` (every row) and ``PATH.xml`` (JUnit: one testcase per check)."""
        base = Path(path)
        base.parent.mkdir(parents=True, exist_ok=True)
        json_path, xml_path = base.with_suffix(".json"), base.with_suffix(".xml")
        json_path.write_text(json.dumps([asdict(r) for r in self.rows], indent=2), encoding="utf-8")
        suite = ET.Element("testsuite", name="devai-harness", tests=str(sum(len(r.checks) for r in self.rows)))
        for r in self.rows:
            for check, verdict in r.checks.items():
                case = ET.SubElement(suite, "testcase", classname=f"{r.task}.{r.case}.{r.form}", name=check)
                kind, _, message = verdict.partition(": ")
                if kind == "fail":
                    ET.SubElement(case, "failure", message=message[:500])
                elif kind == "skip":
                    ET.SubElement(case, "skipped", message=message[:500])
        failures = sum(v.startswith("fail") for r in self.rows for v in r.checks.values())
        suite.set("failures", str(failures))
        ET.ElementTree(suite).write(xml_path, encoding="utf-8", xml_declaration=True)
        return json_path, xml_path
