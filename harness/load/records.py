"""One record per request, kept exactly (locust's histograms bucket response times), one JSONL file per
process so locust's ``--processes N`` workers (and distributed workers on other hosts) never share a file.

:func:`iter_records` streams the records of one or several run directories — each line checked, duplicates
refused — without holding them all; :func:`load_records` is the same as a list, oldest first. A record is
identified by (host, process id, sequence number), so files copied together from several machines merge.

Nothing goes missing silently: a request writes a small ``{"begun": seq}`` line when it starts (its sequence
number) and its record when it ends, so a begun request without a record was in flight when its process stopped;
and each process keeps ``process-<host>-<pid>.json`` (its role, its clock's offset from the locust master's, and
whether it closed its records — a process killed mid-run never does). :func:`contributors` reads both.
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

__all__ = [
    "Contributor",
    "LoadRecord",
    "RecordWriter",
    "contributors",
    "contributors_from",
    "iter_records",
    "load_records",
    "record_files",
]


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

        self.role = "local"  # or master | worker (locust's distributed mode)
        self.clock_offset_s: float | None = None  # this host's clock minus the locust master's, when told
        self.lag: dict[str, Any] | None = None  # the process's own scheduling lag (harness.load.lag), at close
        self.timing: dict[str, Any] | None = None  # where its request times came from (harness.load.packetclock)

    @property
    def path(self) -> Path:
        return self.run_dir / f"records-{self.host}-{self.pid}.jsonl"

    @property
    def manifest(self) -> Path:
        return self.run_dir / f"process-{self.host}-{self.pid}.json"

    def next_seq(self) -> int:
        """A request begins: its sequence number, written down (a request that never ends is then known)."""
        with self._lock:
            self._seq += 1
            self._line(json.dumps({"begun": self._seq}))
            return self._seq

    def _line(self, line: str) -> None:  # under self._lock
        if self._file is None:  # line-buffered: every line is on disk once write() returns
            self._write_manifest(ended=False)
            self._file = open(self.path, "a", encoding="utf-8", buffering=1)  # noqa: SIM115
        self._file.write(line + "\n")

    def _write_manifest(self, *, ended: bool) -> None:
        data = {
            "host": self.host,
            "process": self.pid,
            "role": self.role,
            "clock_offset_s": self.clock_offset_s,
            "requests_begun": self._seq,
            "ended": ended,
            "scheduling_lag": self.lag,
            "timing": self.timing,
        }
        self.manifest.write_text(json.dumps(data) + "\n", encoding="utf-8")

    def write(self, record: LoadRecord) -> None:
        record.host = record.host or self.host
        line = json.dumps({f: getattr(record, f) for f in FIELDS})  # asdict() deep-copies: 5x slower
        with self._lock:
            self._line(line)

    def __enter__(self) -> RecordWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None
                self._write_manifest(ended=True)


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


def iter_records(
    run_dirs: str | Path | Sequence[str | Path],
    begun: dict[Path, set[int]] | None = None,
    counts: dict[Path, int] | None = None,
) -> Iterator[dict[str, Any]]:
    """Each record as a dict, file by file; a line that is not a record, or a record seen twice, raises.
    ``begun`` (when given) collects, per file, the sequence numbers of requests that began and have no record;
    ``counts`` the records per file."""
    seen: dict[tuple[Any, int, int], str] = {}
    for path in record_files(run_dirs):
        open_requests: set[int] = set()
        with path.open(encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                if not line.strip():
                    continue
                where = f"{path}:{n}"
                try:
                    data: dict[str, Any] = json.loads(line)
                except ValueError:
                    raise ConfigError(f"{where}: not a load record (not JSON)") from None
                if isinstance(data, dict) and set(data) == {"begun"}:
                    open_requests.add(int(data["begun"]))
                    continue
                if not isinstance(data, dict) or any(k not in data for k in _REQUIRED):
                    raise ConfigError(f"{where}: not a load record (needs {', '.join(_REQUIRED)})")
                unknown = set(data) - set(FIELDS)
                if unknown:
                    raise ConfigError(f"{where}: not a load record (unknown field(s) {', '.join(sorted(unknown))})")
                key = (data.get("host"), data["process"], data["seq"])
                if key in seen:
                    raise ConfigError(f"{where}: record {key} appears twice (first at {seen[key]})")
                seen[key] = where
                open_requests.discard(int(data["seq"]))
                if counts is not None:
                    counts[path] = counts.get(path, 0) + 1
                yield data
        if begun is not None:
            begun[path] = open_requests


def load_records(run_dirs: str | Path | Sequence[str | Path]) -> list[LoadRecord]:
    return sorted((LoadRecord(**d) for d in iter_records(run_dirs)), key=lambda r: r.start_unix)


@dataclass(slots=True)
class Contributor:
    """One load process's share of a run."""

    host: str
    process: int
    role: str = "unknown"  # local | master | worker; unknown: no process file (records from an older version)
    records: int = 0
    lost: int = 0  # began and never finished: in flight when the process stopped
    ended: bool | None = None  # closed its records; False: killed mid-run; None: no process file
    clock_offset_s: float | None = None
    lag: dict[str, Any] | None = None  # its scheduling lag: p50_ms, p99_ms, max_ms, samples
    timing: dict[str, Any] | None = None  # {"source": "packets", "stamped", "fallbacks", "dropped"} or None

    def describe(self) -> str:
        state = {True: "closed its records", False: "stopped WITHOUT closing its records (killed?)", None: "?"}
        said = f"{self.host} pid {self.process} ({self.role}): {self.records} records, {state[self.ended]}"
        if self.lost:
            said += f", {self.lost} request(s) in flight lost"
        if self.clock_offset_s is not None:
            said += f", clock {self.clock_offset_s * 1000:+.0f} ms from the master's"
        return said


def contributors(run_dirs: str | Path | Sequence[str | Path]) -> list[Contributor]:
    """Who sent what: per process file, its records, its requests lost in flight, and its process file."""
    begun: dict[Path, set[int]] = {}
    counts: dict[Path, int] = {}
    for _ in iter_records(run_dirs, begun, counts):
        pass
    return contributors_from(begun, counts)


def contributors_from(begun: dict[Path, set[int]], counts: dict[Path, int]) -> list[Contributor]:
    out = []
    for path, lost in begun.items():
        host, _, pid = path.stem.removeprefix("records-").rpartition("-")
        c = Contributor(host or "?", int(pid) if pid.isdigit() else -1, records=counts.get(path, 0), lost=len(lost))
        manifest = path.with_name(f"process-{host}-{pid}.json")
        if manifest.is_file():
            data = json.loads(manifest.read_text(encoding="utf-8"))
            c.role, c.ended, c.clock_offset_s = data.get("role", "?"), data.get("ended"), data.get("clock_offset_s")
            c.lag, c.timing = data.get("scheduling_lag"), data.get("timing")
        out.append(c)
    return out
