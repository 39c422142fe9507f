"""One record per request, kept exactly (locust's histograms bucket response times), one JSONL file per
process so locust's ``--processes N`` workers never share a file; :func:`load_records` merges them and
refuses duplicates."""

from __future__ import annotations

import json
import os
import threading
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, TextIO

from harness.core.errors import ConfigError

__all__ = ["LoadRecord", "RecordWriter", "load_records"]


@dataclass(slots=True)
class LoadRecord:
    process: int
    seq: int
    label: str  # the scenario: latency | capacity | streaming
    phase: str  # cold | warm | hot | step-N | stream
    start_unix: float
    e2e_s: float | None = None
    delay_ms: int | None = None  # RunPod delayTime: queue + cold start
    execution_ms: int | None = None
    ttft_s: float | None = None
    tt_ack_s: float | None = None
    gaps_s: list[float] = field(default_factory=list)
    input_tokens: int | None = None
    output_tokens: int | None = None
    status: str = "ok"
    error: str | None = None  # the cause: the error's type, e.g. ZombieWorker, RateLimited, JobFailed
    error_message: str | None = None  # what it said (the worker's message for JobFailed), bounded
    workers_before: dict[str, int | None] = field(default_factory=dict)
    confirmed: bool | None = None  # the phase label, checked against evidence
    evidence: str = ""
    concurrency: int | None = None
    rate: float | None = None
    worker_id: str | None = None
    request_id: str | None = None  # the server's id for the answer, to find a slow request in the server's logs

    @property
    def key(self) -> tuple[int, int]:
        return (self.process, self.seq)


_FIELDS = tuple(f.name for f in fields(LoadRecord))


class RecordWriter:
    """Appends records to ``RUN_DIR/records-<pid>.jsonl``; safe across greenlets and threads."""

    def __init__(self, run_dir: str | Path) -> None:
        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._seq = 0
        self.pid = os.getpid()
        self._file: TextIO | None = None  # opened on first write, kept open: an open() per request costs under load

    def next_seq(self) -> int:
        with self._lock:
            self._seq += 1
            return self._seq

    def write(self, record: LoadRecord) -> None:
        line = json.dumps({f: getattr(record, f) for f in _FIELDS})  # asdict() deep-copies: 5x slower
        with self._lock:
            if self._file is None:  # line-buffered: every record is on disk once write() returns
                self._file = open(self.run_dir / f"records-{self.pid}.jsonl", "a", encoding="utf-8", buffering=1)  # noqa: SIM115
            self._file.write(line + "\n")

    def __enter__(self) -> RecordWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None


def load_records(run_dir: str | Path) -> list[LoadRecord]:
    records: list[LoadRecord] = []
    seen: set[tuple[int, int]] = set()
    for path in sorted(Path(run_dir).glob("records-*.jsonl")):
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            try:
                data: dict[str, Any] = json.loads(line)
                rec = LoadRecord(**data)
            except (ValueError, TypeError) as exc:
                raise ConfigError(f"{path}:{n}: not a load record: {exc}") from None
            if rec.key in seen:
                raise ConfigError(f"{path}:{n}: record {rec.key} appears twice")
            seen.add(rec.key)
            records.append(rec)
    return sorted(records, key=lambda r: r.start_unix)
