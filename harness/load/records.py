"""One record per request, kept exactly (locust's histograms bucket response times), one JSONL file per
process so locust's ``--processes N`` workers (and distributed workers on other hosts) never share a file.

:func:`iter_records` streams the records of one or several run directories — each line checked, duplicates
refused — without holding them all; :func:`load_records` is the same as a list, oldest first. A record is
identified by (host, process id, sequence number), so files copied together from several machines merge.

Nothing goes missing silently: a request writes a small ``{"begun": seq}`` line when it starts (its sequence
number) and its record when it ends, so a begun request without a record was in flight when its process stopped;
and each process keeps ``process-<host>-<pid>.json`` (its role, its clock's offset from the locust master's, and
whether it closed its records — a process killed mid-run never does). :func:`contributors` reads both. A last line
cut off mid-way (its writer was killed while writing) is skipped and counted, never a reason to refuse the run;
any other line that is not a record is one error naming the file, the line and the field.

Every line written passes the process's scrubber (:mod:`harness.core.scrub`): a key an endpoint echoed into an
error message never reaches the file. A write that fails (a full disk) is :class:`OutputError` naming the folder.
"""

from __future__ import annotations

import json
import math
import os
import socket
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, TextIO

from harness.core.errors import ConfigError, OutputError
from harness.core.jobs import show_value
from harness.core.scrub import scrub
from harness.core.timing import RequestTiming

__all__ = [
    "Contributor",
    "LoadRecord",
    "RecordWriter",
    "check_record",
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
    anomalies: list[str] = field(default_factory=list)  # numbers the endpoint sent that were no numbers (ignored)

    @property
    def key(self) -> tuple[str | None, int, int]:
        return (self.host, self.process, self.seq)

    def take(self, timing: RequestTiming) -> None:
        """A finished OpenAI request's times and counts (its :class:`RequestTiming`), in the record's units."""
        self.e2e_s, self.ttft_s, self.tt_ack_s, self.gaps_s = timing.e2e, timing.ttft, timing.tt_ack, timing.gaps
        self.input_tokens, self.output_tokens = timing.input_tokens, timing.output_tokens
        self.request_id = timing.request_id


FIELDS = tuple(f.name for f in fields(LoadRecord))
_REQUIRED = ("process", "seq", "label", "phase", "start_unix")


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v >= 0


def _gaps(v: Any) -> bool:
    if not isinstance(v, list):
        return False
    try:  # C loops: a report over 100,000 streams of hundreds of gaps each cannot afford a Python check per gap
        return not v or (math.isfinite(math.fsum(v)) and min(v) >= 0)
    except TypeError:
        return False


_CHECKS: tuple[tuple[str, str, Callable[[Any], bool]], ...] = (
    *((n, "a whole number", lambda v: isinstance(v, int) and not isinstance(v, bool)) for n in ("process", "seq")),
    *((n, "text", lambda v: isinstance(v, str)) for n in ("label", "phase", "status")),
    ("start_unix", "a time (seconds since 1970)", _number),
    *(
        (n, "a non-negative number or null", lambda v: v is None or _number(v))
        for n in ("e2e_s", "delay_ms", "execution_ms", "ttft_s", "tt_ack_s", "input_tokens", "output_tokens")
    ),
    *((n, "a non-negative number or null", lambda v: v is None or _number(v)) for n in ("http_status", "concurrency")),
    ("rate", "a non-negative number or null", lambda v: v is None or _number(v)),
    *(
        (n, "text or null", lambda v: v is None or isinstance(v, str))
        for n in ("error", "error_message", "worker_id", "request_id", "host")
    ),
    ("evidence", "text", lambda v: isinstance(v, str)),
    ("gaps_s", "a list of non-negative numbers", _gaps),
    ("workers_before", "an object", lambda v: isinstance(v, dict)),
    ("confirmed", "true, false or null", lambda v: v is None or isinstance(v, bool)),
    ("anomalies", "a list of text", lambda v: isinstance(v, list) and all(isinstance(x, str) for x in v)),
)


def check_record(data: dict[str, Any], where: str) -> None:
    """ConfigError naming the first field that is not what a record holds (absent optional fields are fine)."""
    for name, kind, ok in _CHECKS:
        if name in data and not ok(data[name]):
            raise ConfigError(f"{where}: not a load record: {name} must be {kind}, got {show_value(data[name])}")


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
        try:
            if self._file is None:  # line-buffered: every line is on disk once write() returns
                self._write_manifest(ended=False)
                self._file = open(self.path, "a", encoding="utf-8", buffering=1)  # noqa: SIM115
            self._file.write(scrub(line) + "\n")
        except OSError as exc:
            where = str(self.run_dir)
            raise OutputError(f"cannot write records to {where}: {exc.strerror or exc}", path=where) from None

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
        self.manifest.write_text(scrub(json.dumps(data)) + "\n", encoding="utf-8")

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
                file, self._file = self._file, None
                try:
                    file.close()
                    self._write_manifest(ended=True)
                except OSError as exc:
                    raise OutputError(
                        f"cannot finish the records in {self.run_dir}: {exc.strerror or exc}", path=str(self.run_dir)
                    ) from None


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
    torn: dict[Path, int] | None = None,
) -> Iterator[dict[str, Any]]:
    """Each record as a dict, file by file; a line that is not a record, or a record seen twice, raises ConfigError.
    ``begun`` (when given) collects, per file, the sequence numbers of requests that began and have no record;
    ``counts`` the records per file; ``torn`` the files whose last line was cut off (skipped: its writer was
    killed mid-write)."""
    seen: dict[tuple[Any, int, int], str] = {}
    for path in record_files(run_dirs):
        open_requests: set[int] = set()
        for n, line, last in _lines(path):
            where = f"{path}:{n}"
            try:
                data: dict[str, Any] = json.loads(line)
            except (ValueError, RecursionError):
                if last and not line.endswith("\n"):
                    if torn is not None:
                        torn[path] = torn.get(path, 0) + 1
                    continue
                raise ConfigError(f"{where}: not a load record (not JSON)") from None
            if isinstance(data, dict) and set(data) == {"begun"}:
                if not isinstance(data["begun"], int) or isinstance(data["begun"], bool):
                    raise ConfigError(f"{where}: not a load record: begun must be a whole number")
                open_requests.add(data["begun"])
                continue
            if not isinstance(data, dict) or any(k not in data for k in _REQUIRED):
                raise ConfigError(f"{where}: not a load record (needs {', '.join(_REQUIRED)})")
            unknown = set(data) - set(FIELDS)
            if unknown:
                raise ConfigError(f"{where}: not a load record (unknown field(s) {', '.join(sorted(unknown))})")
            check_record(data, where)
            key = (data.get("host"), data["process"], data["seq"])
            if key in seen:
                raise ConfigError(f"{where}: record {key} appears twice (first at {seen[key]})")
            seen[key] = where
            open_requests.discard(data["seq"])
            if counts is not None:
                counts[path] = counts.get(path, 0) + 1
            yield data
        if begun is not None:
            begun[path] = open_requests


def _lines(path: Path) -> Iterator[tuple[int, str, bool]]:
    """(number, line, is it the last) for every non-blank line; ConfigError for a file that is not UTF-8 text."""
    try:
        with path.open(encoding="utf-8") as f:
            previous: tuple[int, str] | None = None
            for n, line in enumerate(f, 1):
                if not line.strip():
                    continue
                if previous is not None:
                    yield (*previous, False)
                previous = (n, line)
            if previous is not None:
                yield (*previous, True)
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a records file (not UTF-8 text)") from None
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror or exc}") from None


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
    torn: int = 0  # a last line cut off mid-write (skipped)

    def describe(self) -> str:
        state = {True: "closed its records", False: "stopped WITHOUT closing its records (killed?)", None: "?"}
        said = f"{self.host} pid {self.process} ({self.role}): {self.records} records, {state[self.ended]}"
        if self.lost:
            said += f", {self.lost} request(s) in flight lost"
        if self.torn:
            said += f", {self.torn} torn line at the end (skipped: its writer was killed mid-write)"
        if self.clock_offset_s is not None:
            said += f", clock {self.clock_offset_s * 1000:+.0f} ms from the master's"
        return said


def contributors(run_dirs: str | Path | Sequence[str | Path]) -> list[Contributor]:
    """Who sent what: per process file, its records, its requests lost in flight, and its process file."""
    begun: dict[Path, set[int]] = {}
    counts: dict[Path, int] = {}
    torn: dict[Path, int] = {}
    for _ in iter_records(run_dirs, begun, counts, torn):
        pass
    return contributors_from(begun, counts, torn)


def contributors_from(
    begun: dict[Path, set[int]], counts: dict[Path, int], torn: dict[Path, int] | None = None
) -> list[Contributor]:
    out = []
    for path, lost in begun.items():
        host, _, pid = path.stem.removeprefix("records-").rpartition("-")
        c = Contributor(host or "?", int(pid) if pid.isdigit() else -1, records=counts.get(path, 0), lost=len(lost))
        c.torn = (torn or {}).get(path, 0)
        manifest = path.with_name(f"process-{host}-{pid}.json")
        if manifest.is_file():
            _read_manifest(manifest, c)
        out.append(c)
    return out


_MANIFEST: dict[str, tuple[type | tuple[type, ...], ...]] = {
    "role": (str,),
    "ended": (bool, type(None)),
    "clock_offset_s": (int, float, type(None)),
    "scheduling_lag": (dict, type(None)),
    "timing": (dict, type(None)),
}


def _read_manifest(path: Path, c: Contributor) -> None:
    """A process file into ``c``; one that is torn (its process killed while writing it) or not one: ConfigError."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise ConfigError(f"{path}: not a process file (not JSON: torn when its process was killed?)") from None
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror or exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: not a process file (not an object)")
    for key, types in _MANIFEST.items():
        if key in data and (not isinstance(data[key], types) or (key != "ended" and isinstance(data[key], bool))):
            raise ConfigError(f"{path}: not a process file: {key} is {show_value(data[key])}")
    c.role, c.ended, c.clock_offset_s = data.get("role", "?"), data.get("ended"), data.get("clock_offset_s")
    c.lag, c.timing = data.get("scheduling_lag"), data.get("timing")
