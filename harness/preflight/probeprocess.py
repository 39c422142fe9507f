"""The import probe as a process we keep hold of: its own process group, its output in files, read with caps.

A worker that forks a daemon at import would otherwise keep running after worker-check says OK; one that prints
a gigabyte at import would be held in our memory whole (and its flood mistaken for a crash loop). Here the
probe's group is killed after it ends (what was still running is counted and said), the probe's report lines are
found anywhere in its output in bounded pieces, and only a bounded tail of the rest comes back as its logs.
A process that leaves the group on purpose (``setsid``) is not seen: that needs a cgroup.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from harness.core.markers import marked_lines

__all__ = ["ProbeRun", "run_probe"]

CHUNK = 1 << 20
MAX_REPORT_LINE = 8 << 20  # the probe's own JSON report: far larger is not ours
TAIL_BYTES = 64 << 10  # of the worker's own output, per stream
MAX_LOG_LINES = 200


@dataclass(slots=True)
class ProbeRun:
    result: dict[str, Any] = field(default_factory=dict)  # the probe's report ({} when it wrote none)
    logs: list[str] = field(default_factory=list)  # a bounded tail of what the worker printed
    hung: str | None = None  # the line it hung on, when it ran past its time limit
    timed_out: bool = False
    returncode: int | None = None
    left_running: int = 0  # processes of its group still running when it ended (killed)
    output_bytes: int = 0  # everything it printed, for the record


def run_probe(cmd: list[str], marker: str, timeout: float, env: dict[str, str], cwd: Path | None) -> ProbeRun:
    run = ProbeRun()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(
            cmd, stdout=out, stderr=err, stdin=subprocess.DEVNULL, env=env, cwd=cwd, start_new_session=True
        )
        try:
            run.returncode = proc.wait(timeout)
        except subprocess.TimeoutExpired:
            run.timed_out = True
        except BaseException:
            _kill_group(proc.pid)
            proc.wait()
            raise
        run.left_running = _kill_group(proc.pid) - (1 if run.timed_out else 0)
        if run.timed_out:
            run.returncode = proc.wait()
        _read(run, out, err, marker)
    return run


def _kill_group(pgid: int) -> int:
    """SIGKILL every process still in the group; how many there were."""
    members = _members(pgid)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)
    return len(members)


def _members(pgid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, ValueError, IndexError):
            stat = (entry / "stat").read_text()
            fields = stat[stat.rindex(")") + 2 :].split()
            if int(fields[2]) == pgid and fields[0] != "Z":  # fields: state, ppid, pgrp...
                found.append(int(entry.name))
    return found


def _read(run: ProbeRun, out: IO[bytes], err: IO[bytes], marker: str) -> None:
    tag = marker.encode()
    beats: list[str] = []
    for stream in (out, err):
        run.output_bytes += stream.seek(0, os.SEEK_END)
        for line in marked_lines(stream, tag, chunk=CHUNK, max_line=MAX_REPORT_LINE):
            text = line.decode("utf-8", "replace")
            if text.startswith("at "):
                beats.append(text[3:])
                del beats[:-1]
            else:
                with contextlib.suppress(ValueError):
                    run.result = json.loads(text)
    if run.timed_out:
        run.hung = beats[-1] if beats else "unknown (no line of yours was on the stack)"
    for stream in (out, err):
        size = stream.seek(0, os.SEEK_END)
        stream.seek(max(0, size - TAIL_BYTES))
        lines = stream.read().decode("utf-8", "replace").splitlines()
        if size > TAIL_BYTES:
            lines = [f"[... {size - TAIL_BYTES} bytes of output left out]", *lines[1:]]
        run.logs += [ln[:500] for ln in lines if ln.strip() and marker not in ln]
    del run.logs[:-MAX_LOG_LINES]
