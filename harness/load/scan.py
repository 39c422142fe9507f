"""One pass over a run's records (every ``records-*.jsonl`` of its folders): per-phase columns of floats for the
figures and plots, who sent what, and the CSV (one row per request) written on the way — so a 100,000-request run
is read in seconds within a few hundred MB (benchmarks/report_scale.py keeps the figure)."""

from __future__ import annotations

import contextlib
import csv
import json
import math
from array import array
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from harness.load.metrics import PhaseStats
from harness.load.records import FIELDS, Contributor, contributors_from, iter_records
from harness.reporting.files import write_streamed

__all__ = ["OPENAI_LABELS", "RUNPOD_LABELS", "RunData", "scan"]

RUNPOD_LABELS = frozenset({"latency", "capacity", "arrivals"})
OPENAI_LABELS = frozenset({"streaming", "chat"})
_JSON_COLUMNS = tuple(i for i, f in enumerate(FIELDS) if f in ("gaps_s", "workers_before"))  # lists and dicts


@dataclass(slots=True)
class RunData:
    phases: dict[str, PhaseStats] = field(default_factory=dict)
    sources: Counter[str] = field(default_factory=Counter)  # "host pid" -> records
    starts: array[float] = field(default_factory=lambda: array("d"))  # every request, in file order
    e2e: array[float] = field(default_factory=lambda: array("d"))  # NaN for a failed request
    phase_of: list[str] = field(default_factory=list)
    ready: list[tuple[float, int]] = field(default_factory=list)  # (start, ready workers seen before it)
    labels: Counter[str] = field(default_factory=Counter)
    contributors: list[Contributor] = field(default_factory=list)

    @property
    def records(self) -> int:
        return len(self.starts)


def scan(run_dirs: str | Path | Sequence[str | Path], csv_path: Path | None = None) -> RunData:
    """One pass over every record; the CSV (one row per request) is written on the way."""
    data = RunData()
    with contextlib.ExitStack() as stack:
        writer = None
        if csv_path is not None:  # the records' fields were scrubbed when they were written
            writer = csv.writer(stack.enter_context(write_streamed(csv_path, "w", newline="", encoding="utf-8")))
            writer.writerow(FIELDS)
        begun: dict[Path, set[int]] = {}
        counts: dict[Path, int] = {}
        torn: dict[Path, int] = {}
        for r in iter_records(run_dirs, begun, counts, torn):
            phase = str(r["phase"])
            stats = data.phases.get(phase) or data.phases.setdefault(phase, PhaseStats(phase))
            stats.add(r)
            data.labels[str(r["label"])] += 1
            data.sources[f"{r.get('host') or '?'} {r['process']}"] += 1
            data.starts.append(float(r["start_unix"]))
            e2e = r.get("e2e_s")
            data.e2e.append(float(e2e) if r.get("status") == "ok" and isinstance(e2e, (int, float)) else math.nan)
            data.phase_of.append(phase)
            workers = r.get("workers_before") or {}
            if workers:
                data.ready.append((float(r["start_unix"]), (workers.get("idle") or 0) + (workers.get("running") or 0)))
            if writer is not None:
                row = [r.get(k) for k in FIELDS]
                for i in _JSON_COLUMNS:
                    row[i] = json.dumps(row[i]) if row[i] is not None else None
                writer.writerow(row)
    data.contributors = contributors_from(begun, counts, torn)
    return data
