"""A cgroup per sandboxed case: memory (with swap) and process count for the case as a whole.

Per-process rlimits alone let 64 processes take 2 GiB each; a cgroup counts them together, tmpfs pages (the
sandbox's /tmp and case folder) included. cgroup v2 is used where our own cgroup can delegate the memory and pids
controllers to a child; else cgroup v1's memory and pids hierarchies (both needed). A run joins its cgroup through
a one-line shell shim that writes its own pid before it execs bubblewrap, so nothing of the run starts outside it.
Where no cgroup can be made (not root, no delegation, no controllers), runs keep the per-process limits and the
summary says so.
"""

from __future__ import annotations

import contextlib
import functools
import os
import signal
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

__all__ = ["CaseGroup", "Controllers", "find", "make"]

MEMORY_BYTES = 1 << 30
EXTRA_PROCESSES = 8  # bubblewrap's own processes and the shim, over the case's own count


@dataclass(frozen=True, slots=True)
class Controllers:
    """Where a case's cgroup is made: one v2 folder, or v1's memory and pids folders."""

    version: int
    memory: Path
    pids: Path

    def describe(self, processes: int) -> str:
        return f"cgroup v{self.version} per case: memory {MEMORY_BYTES >> 20} MiB, {processes} processes"


@dataclass(slots=True)
class CaseGroup:
    controllers: Controllers
    dirs: list[Path]

    @property
    def procs(self) -> list[str]:
        return [str(d / "cgroup.procs") for d in self.dirs]

    def shim(self, argv: list[str]) -> list[str]:
        """``argv`` run inside this cgroup: the shell writes its pid to every procs file, then execs."""
        files = (self.procs * 2)[:2]
        return ["/bin/sh", "-c", 'echo $$ > "$1" && echo $$ > "$2" && shift 2 && exec "$@"', "sh", *files, *argv]

    def oom_killed(self) -> int:
        name = "memory.events" if self.controllers.version == 2 else "memory.oom_control"
        with contextlib.suppress(OSError, ValueError):
            for line in (self.dirs[0] / name).read_text().splitlines():
                key, _, value = line.partition(" ")
                if key == "oom_kill":
                    return int(value)
        return 0

    def close(self) -> str | None:
        """Kill whatever is left in it and remove it; None, or what could not be removed."""
        left = []
        for d in self.dirs:
            if not _empty(d):
                left.append(str(d))
        return f"cgroups left: {', '.join(left)}" if left else None


def _empty(d: Path) -> bool:
    kill = d / "cgroup.kill"
    with contextlib.suppress(OSError):
        if kill.exists():
            kill.write_text("1")
    for _ in range(200):  # a second at most: killed processes leave within milliseconds
        with contextlib.suppress(OSError):
            d.rmdir()
            return True
        with contextlib.suppress(OSError, ValueError):
            for pid in (d / "cgroup.procs").read_text().split():
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(int(pid), signal.SIGKILL)
        time.sleep(0.005)
    return not d.exists()


def make(found: Controllers, processes: int) -> CaseGroup | str:
    """A fresh cgroup with the case's limits, or why none could be made."""
    name = f"devai-case-{uuid.uuid4().hex[:12]}"
    dirs = [found.memory / name] if found.version == 2 else [found.memory / name, found.pids / name]
    group = CaseGroup(found, [])
    try:
        for d in dirs:
            d.mkdir()
            group.dirs.append(d)
        for d, file, value in _limits(found, dirs, processes + EXTRA_PROCESSES):
            if file.endswith(".memsw.limit_in_bytes") and not (d / file).exists():
                continue  # no swap accounting on this kernel: memory alone
            (d / file).write_text(value)
    except OSError as exc:
        group.close()
        return f"no cgroup could be made: {exc.strerror or exc}"
    return group


def _limits(found: Controllers, dirs: list[Path], pids: int) -> list[tuple[Path, str, str]]:
    if found.version == 2:
        d = dirs[0]
        swap = [(d, "memory.swap.max", "0")] if (found.memory / "memory.swap.max").exists() else []
        return [(d, "memory.max", str(MEMORY_BYTES)), *swap, (d, "pids.max", str(pids))]
    mem, pid = dirs
    return [
        (mem, "memory.limit_in_bytes", str(MEMORY_BYTES)),
        (mem, "memory.memsw.limit_in_bytes", str(MEMORY_BYTES)),
        (pid, "pids.max", str(pids)),
    ]


@functools.cache
def find() -> Controllers | str:
    """Where this process may make cases' cgroups, or why it may not (asked once per process)."""
    if os.geteuid() != 0:
        return "not root: no cgroup of our own"
    mounts, mine = _mounts(), _own_cgroups()
    why = []
    if "" in mounts and "" in mine:
        v2 = _v2(_cgroup_dir(mounts[""], mine[""]))
        if isinstance(v2, Controllers):
            return v2
        why.append(v2)
    if "memory" in mounts and "pids" in mounts and "memory" in mine and "pids" in mine:
        memory, pids = (_cgroup_dir(mounts[c], mine[c]) for c in ("memory", "pids"))
        if os.access(memory, os.W_OK) and os.access(pids, os.W_OK):
            return Controllers(1, memory, pids)
        why.append("the v1 memory and pids cgroups are not writable")
    return "; ".join(why) or "no memory and pids cgroup controllers are mounted"


def _v2(here: Path) -> Controllers | str:
    try:
        controllers = set((here / "cgroup.controllers").read_text().split())
        if not {"memory", "pids"} <= controllers:
            return "cgroup v2 has no memory and pids controllers here"
        enabled = set((here / "cgroup.subtree_control").read_text().split())
        if not {"memory", "pids"} <= enabled:
            (here / "cgroup.subtree_control").write_text("+memory +pids")
    except OSError as exc:
        return f"cgroup v2 cannot delegate memory and pids here: {exc.strerror or exc}"
    return Controllers(2, here, here)


def _cgroup_dir(mount: tuple[Path, str], path: str) -> Path:
    point, root = mount
    rel = os.path.relpath(path, root) if path.startswith(root) else path.lstrip("/")
    return point if rel == "." else point / rel


def _mounts() -> dict[str, tuple[Path, str]]:
    """Controller ("" for v2) -> (mount point, mount root), from /proc/self/mountinfo."""
    found: dict[str, tuple[Path, str]] = {}
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/mountinfo").read_text().splitlines():
            left, _, right = line.partition(" - ")
            fields, rest = left.split(), right.split()
            if len(fields) < 5 or len(rest) < 3:
                continue
            if rest[0] == "cgroup2":
                found.setdefault("", (Path(fields[4]), fields[3]))
            elif rest[0] == "cgroup":
                for option in rest[2].split(","):
                    if option in ("memory", "pids"):
                        found.setdefault(option, (Path(fields[4]), fields[3]))
    return found


def _own_cgroups() -> dict[str, str]:
    """Controller ("" for v2) -> this process's cgroup path, from /proc/self/cgroup."""
    mine: dict[str, str] = {}
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/cgroup").read_text().splitlines():
            _, controllers, path = line.split(":", 2)
            for c in controllers.split(",") if controllers else [""]:
                mine[c] = path
    return mine
