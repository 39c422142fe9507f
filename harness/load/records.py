"""One record per request, kept exactly (locust's histograms bucket response times), one JSONL file per
process so locust's ``--processes N`` workers (and distributed workers on other hosts) never share a file.

:func:`iter_records` streams the records of one or several run directories — each line checked, duplicates
refused — without holding them all; :func:`load_records` is the same as a list, oldest first. A record is
identified by (host, process id, sequence number), so files copied together from several machines merge.
"""

from __future__ import annotations

import json
import os
import socket
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, TextIO

from harness.core.errors import ConfigError

__all__ = ["LoadRecord", "RecordWriter", "iter_records", "load_records", "record_files"]


@dataclass(slots=True)
class LoadRecord:
    process: int
    seq: int
    label: str  # the scenario: latency | capacity | arrivals | streaming | chat
    phase: str  # cold | warm | hot | cN | rN | stream | chat
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
    http_status: int | None = None  # the HTTP status of a failed request, when it got one
    workers_before: dict[str, int | None] = field(default_factory=dict)
    confirmed: bool | None = None  # the phase label, checked against evidence
    evidence: str = ""
    concurrency: int | None = None
    rate: float | None = None
    worker_id: str | None = None
    request_id: str | None = None  # the server's id for the answer, to find a slow request in the server's logs
    host: str | None = None  # the load machine that sent it (set by RecordWriter)

    @property
    def key(self) -> tuple[str | None, int, int]:
        return (self.host, self.process, self.seq)


FIELDS = tuple(f.name for f in fields(LoadRecord))
_REQUIRED = ("process", "seq", "label", "phase", "start_unix")


class RecordWriter:
    """Appends records to ``RUN_DIR/records-<host>-<pid>.jsonl``; safe across greenlets and threads."""

    def __init__(self, run_dir: str | Path) -> None:
        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._seq = 0
        self.pid = os.getpid()
        self.host = socket.gethostname()
        self._file: TextIO | None = None  # opened on first write, kept open: an open() per request costs under load

    @property
    def path(self) -> Path:
        return self.run_dir / f"records-{self.host}-{self.pid}.jsonl"

    def next_seq(self) -> int:
        with self._lock:
            self._seq += 1
            return self._seq

    def write(self, record: LoadRecord) -> None:
        record.host = record.host or self.host
        line = json.dumps({f: getattr(record, f) for f in FIELDS})  # asdict() deep-copies: 5x slower
        with self._lock:
            if self._file is None:  # line-buffered: every record is on disk once write() returns
                self._file = open(self.path, "a", encoding="utf-8", buffering=1)  # noqa: SIM115
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


def record_files(run_dirs: str | Path | Sequence[str | Path]) -> list[Path]:
    """Every records-*.jsonl under the given run directories (a file may be given directly)."""
    dirs = [run_dirs] if isinstance(run_dirs, (str, Path)) else list(run_dirs)
    files: list[Path] = []
    for d in map(Path, dirs):
        if d.is_file():
            files.append(d)
        elif d.is_dir():
            files.extend(sorted(d.glob("records-*.jsonl")))
        else:
            raise ConfigError(f"{d}: no such run directory")
    return files


def iter_records(run_dirs: str | Path | Sequence[str | Path]) -> Iterator[dict[str, Any]]:
    """Each record as a dict, file by file; a line that is not a record, or a record seen twice, raises."""
    seen: dict[tuple[Any, int, int], str] = {}
    for path in record_files(run_dirs):
        with path.open(encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                if not line.strip():
                    continue
                where = f"{path}:{n}"
                try:
                    data: dict[str, Any] = json.loads(line)
                except ValueError:
                    raise ConfigError(f"{where}: not a load record (not JSON)") from None
                if not isinstance(data, dict) or any(k not in data for k in _REQUIRED):
                    raise ConfigError(f"{where}: not a load record (needs {', '.join(_REQUIRED)})")
                unknown = set(data) - set(FIELDS)
                if unknown:
                    raise ConfigError(f"{where}: not a load record (unknown field(s) {', '.join(sorted(unknown))})")
                key = (data.get("host"), data["process"], data["seq"])
                if key in seen:
                    raise ConfigError(f"{where}: record {key} appears twice (first at {seen[key]})")
                seen[key] = where
                yield data


def load_records(run_dirs: str | Path | Sequence[str | Path]) -> list[LoadRecord]:
    return sorted((LoadRecord(**d) for d in iter_records(run_dirs)), key=lambda r: r.start_unix)
