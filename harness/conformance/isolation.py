"""Where model-written code runs: a real sandbox, chosen once per process.

* ``bubblewrap`` (preferred): new mount, network, PID, IPC and UTS namespaces (and a user namespace when we are not
  root); the system directories and the Python installation read-only; the case's folder a sized tmpfs of its own
  with our files bound read-only into it; no home directory, no host files beyond those binds, no network at all
  (not even the host's loopback); a sized /tmp of its own (mounted first, so an interpreter or venv under the host's
  /tmp stays visible); the seccomp filter of :mod:`harness.conformance.seccomp` (no keyring, no nested namespaces,
  no mounts, ptrace, bpf...); and, when we are root, a cgroup per case (:mod:`harness.conformance.cgroups`) that
  bounds the memory and processes of the case as a whole.
* ``container``: ``docker create`` then ``docker start --attach --interactive`` with ``--network none``, a read-only
  root, the same sized /tmp and case folder, memory (swap included), CPU and process limits for the container, as an
  unprivileged user with every capability dropped, under Docker's default seccomp profile, the same rlimits set
  inside by our launcher on the image's python3 — in an image the user names (``DEVAI_SANDBOX_IMAGE``) that has
  python3 with pytest (and node for JavaScript). Creating is not counted in the code's time limit.
* ``none``: no isolation. Model-written code is then NOT run unless the user opts in (``--unsafe-run-model-code``,
  or ``DEVAI_UNSAFE_RUN_MODEL_CODE=1``): the checks that need it say NOT CHECKED and why.

Inside bubblewrap, util-linux's ``prlimit`` and ``setpriv`` (or, without them, a small Python launcher) set resource
limits — address space, CPU seconds, file size, open files, processes — and, when we are root, drop to the
unprivileged ``nobody`` user (so the process limit counts that user's processes, not root's, for whom the kernel
enforces none) before the command runs. On a timeout, or when we are interrupted, the whole process group (the
sandbox's PID namespace with it) is killed. The first line of the run's stdin is the nonce our runner reports with.
What the code prints goes to a file its own file-size limit caps; the caller reads a bounded tail.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from harness.conformance import cgroups, runners, seccomp

__all__ = [
    "OPT_IN_ENV",
    "TIMEOUT_ENV",
    "Isolation",
    "RunOutcome",
    "choose",
    "image_has",
    "limits_text",
    "opted_in",
    "run_isolated",
]

OPT_IN_ENV = "DEVAI_UNSAFE_RUN_MODEL_CODE"
TIMEOUT_ENV = "DEVAI_SANDBOX_TIMEOUT"  # caps every run's time limit (the plugin's --sandbox-timeout)
IMAGE_ENV = "DEVAI_SANDBOX_IMAGE"
NOBODY = 65534
INSIDE = "/devai-work"  # where the case's folder appears in a sandbox (not /work: the host may live there)
MAX_OUTPUT = 64 * 1024  # what a report may receive from one run
CONCURRENT_CASES = 8  # cases that may run at once as nobody, each with its own process budget (per-case cgroups)
LIMITS = {"as_bytes": 2 << 30, "file_bytes": 16 << 20, "files": 256, "processes": 64, "tmp_bytes": 64 << 20}

# Runs inside the sandbox: limits, then (as root) the unprivileged user, then the command.
_LAUNCHER = r"""
import os, resource, sys
cpu, as_bytes, file_bytes, files, processes, drop = (int(x) for x in sys.argv[1:7])
argv = sys.argv[8:]
for what, value in ((resource.RLIMIT_CPU, cpu), (resource.RLIMIT_AS, as_bytes), (resource.RLIMIT_FSIZE, file_bytes),
                    (resource.RLIMIT_NOFILE, files), (resource.RLIMIT_NPROC, processes)):
    resource.setrlimit(what, (value, value))
if drop and os.getuid() == 0:
    os.setgroups([]); os.setgid(drop); os.setuid(drop)
os.chdir(os.environ.get("HOME") or ".")  # the case's folder (docker's -w would undo its tmpfs's mode)
os.execvp(argv[0], argv)
"""


@dataclass(frozen=True, slots=True)
class Isolation:
    kind: str  # bubblewrap | container | none
    detail: str  # what it is (version, image) or why nothing better is here

    @property
    def isolated(self) -> bool:
        return self.kind != "none"

    def describe(self) -> str:
        """What it is and what bounds each case: for the summary line and each run's row."""
        if self.kind == "bubblewrap":
            return f"{self.kind} ({self.detail}): {limits_text()}"
        if self.kind == "container":
            return f"{self.kind} ({self.detail}): {_CONTAINER_LIMITS}"
        return f"{self.kind} ({self.detail})"


@dataclass(frozen=True, slots=True)
class RunOutcome:
    returncode: int | None  # None: killed at the time limit
    output: str  # a bounded tail of stdout and stderr together, without our runner's marker lines
    limit_s: float  # the time limit it ran under
    proof: runners.Proof | None = None  # what our runner reported (None: no nonce was given)
    isolation: str = ""  # what bounded this run
    oom_killed: bool = False  # the case's cgroup killed something of it for memory


def _bwrap_works(bwrap: str) -> str | None:
    """None when bubblewrap can make its namespaces here, else why not (a kernel without user namespaces...)."""
    cmd = [bwrap, "--ro-bind", "/", "/", "--unshare-net", "--unshare-pid", "--die-with-parent", "true"]
    if os.getuid() != 0:
        cmd[5:5] = ["--unshare-user"]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=20, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return str(exc)
    return None if proc.returncode == 0 else (proc.stderr.strip().splitlines() or ["it failed"])[-1]


@functools.cache
def choose() -> Isolation:
    bwrap = shutil.which("bwrap")
    why = []
    if bwrap is not None:
        broken = _bwrap_works(bwrap)
        if broken is None:
            version = subprocess.run([bwrap, "--version"], capture_output=True, text=True, check=False).stdout
            return Isolation("bubblewrap", version.strip() or bwrap)
        why.append(f"bubblewrap cannot run here: {broken}")
    else:
        why.append("bubblewrap (bwrap) is not installed")
    image = os.environ.get(IMAGE_ENV)
    if image and shutil.which("docker"):
        return Isolation("container", f"docker image {image}")
    why.append(f"no container image named in {IMAGE_ENV}" if not image else "docker is not installed")
    return Isolation("none", "; ".join(why))


@functools.cache
def image_has(image: str, program: str) -> bool:
    """Whether the sandbox image can run ``program`` (asked once per process)."""
    cmd = ["docker", "run", "--rm", "--network", "none", image, "sh", "-c", f"command -v {program}"]
    try:
        return subprocess.run(cmd, capture_output=True, timeout=120, check=False).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def opted_in(given: bool = False) -> bool:
    """Whether unisolated runs were asked for: ``given`` (a caller's flag), else the environment's OPT_IN_ENV."""
    return given or os.environ.get(OPT_IN_ENV, "") not in ("", "0", "false", "no")


def _binds() -> list[str]:
    args = ["--ro-bind", "/usr", "/usr", "--perms", "0755", "--dir", "/etc"]
    # Of /etc only what runtimes read (libraries, OpenSSL's config for node): no passwd, no host config.
    for path in ("/bin", "/lib", "/lib64", "/lib32", "/sbin", "/etc/alternatives", "/etc/ld.so.cache", "/etc/ssl"):
        args += ["--ro-bind-try", path, path]
    made: set[str] = {"/tmp"}  # the sized tmpfs, mounted first, so a prefix under /tmp stays visible
    for prefix in sorted({sys.base_prefix, sys.prefix, str(Path(sys.executable).resolve().parent.parent)}):
        if prefix.startswith("/usr"):
            continue
        for parent in reversed(Path(prefix).parents[:-1]):  # bwrap would make them 0700: unreadable after the drop
            if str(parent) not in made:
                made.add(str(parent))
                args += ["--perms", "0755", "--dir", str(parent)]
        args += ["--ro-bind", prefix, prefix]
    return args


def _bwrap_argv(work: Path, argv: list[str], cpu_s: int, seccomp_fd: int | None, per_case: bool = False) -> list[str]:
    bwrap = shutil.which("bwrap") or "bwrap"
    root = os.getuid() == 0
    spaces = ["--unshare-net", "--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try"]
    if not root:
        spaces.insert(0, "--unshare-user")
    tmp = ["--perms", "1777", "--size", str(LIMITS["tmp_bytes"]), "--tmpfs", "/tmp"]
    sandbox = [bwrap, *tmp, *_binds(), *_case_folder(work), "--chdir", INSIDE]
    sandbox += ["--proc", "/proc", "--dev", "/dev", *spaces, "--die-with-parent", "--new-session", "--clearenv"]
    if seccomp_fd is not None:
        sandbox += ["--seccomp", str(seccomp_fd)]
    for key, value in _ENV.items():
        sandbox += ["--setenv", key, value]
    processes = LIMITS["processes"] if root else _my_processes() + LIMITS["processes"]
    if per_case:  # the case's cgroup counts its processes; nobody's RLIMIT_NPROC is shared by concurrent cases
        processes *= CONCURRENT_CASES
    return [*sandbox, "--", *_limited(argv, cpu_s, processes, NOBODY if root else 0)]


def _case_folder(work: Path) -> list[str]:
    """A sized tmpfs (its pages count in the case's cgroup; it vanishes with the sandbox, so no tree the code makes
    is left to remove) with our files bound read-only into it: the code cannot rewrite its own tests."""
    args = ["--size", str(LIMITS["tmp_bytes"]), "--perms", "1777", "--tmpfs", INSIDE]
    for f in sorted(work.iterdir()):
        args += ["--ro-bind", str(f), f"{INSIDE}/{f.name}"]
    return args


def _limited(argv: list[str], cpu_s: int, processes: int, drop: int) -> list[str]:
    """util-linux's prlimit and setpriv when there (an exec each: about a millisecond), else our Python launcher
    (an interpreter start more)."""
    prlimit, setpriv = shutil.which("prlimit"), shutil.which("setpriv")
    if prlimit and setpriv:
        limits = [f"--cpu={cpu_s}", f"--fsize={LIMITS['file_bytes']}", f"--nofile={LIMITS['files']}"]
        limits += [f"--nproc={processes}", f"--as={LIMITS['as_bytes']}"]
        user = [setpriv, f"--reuid={drop}", f"--regid={drop}", "--clear-groups", "--"] if drop else []
        return [prlimit, *limits, "--", *user, *argv]
    numbers = [cpu_s, LIMITS["as_bytes"], LIMITS["file_bytes"], LIMITS["files"], processes, drop]
    return [sys.executable, "-I", "-S", "-c", _LAUNCHER, *map(str, numbers), "--", *argv]


def _container_argv(image: str, work: Path, argv: list[str], cpu_s: int, name: str) -> list[str]:
    docker = shutil.which("docker") or "docker"
    tmpfs = f"size={LIMITS['tmp_bytes'] >> 20}m,mode=1777"
    run = [docker, "create", "--rm", "--interactive", "--name", name, "--network", "none", "--read-only"]
    run += ["--tmpfs", f"/tmp:{tmpfs}", "--tmpfs", f"{INSIDE}:{tmpfs},exec", "--user", str(NOBODY)]
    run += ["--memory", "1g", "--memory-swap", "1g", "--pids-limit", str(LIMITS["processes"]), "--cpus", "1"]
    run += ["--ulimit", f"cpu={cpu_s}", "--cap-drop", "ALL", "--security-opt", "no-new-privileges"]
    for f in sorted(work.iterdir()):
        run += ["-v", f"{f}:{INSIDE}/{f.name}:ro"]
    for key, value in _ENV.items():
        if key != "PATH":  # the image's own PATH finds its python3 and node
            run += ["-e", f"{key}={value}"]
    # The same rlimits as under bubblewrap, set by our launcher on the image's python3: an allocation past the
    # address-space limit fails as MemoryError (and is reported) before the cgroup's OOM killer ends it silently.
    numbers = [cpu_s, LIMITS["as_bytes"] // 2, LIMITS["file_bytes"], LIMITS["files"]]
    numbers += [LIMITS["processes"], 0]
    launcher = ["python3", "-I", "-S", "-c", _LAUNCHER, *map(str, numbers), "--"]
    return [*run, image, *launcher, *argv]


def _my_processes() -> int:
    uid = os.getuid()
    return sum(1 for p in Path("/proc").iterdir() if p.name.isdigit() and _owner(p) == uid)


def _owner(p: Path) -> int | None:
    try:
        return p.stat().st_uid
    except OSError:
        return None


_ENV = {
    "PATH": "/usr/local/bin:/usr/bin:/bin",
    "HOME": INSIDE,
    "LANG": "C.UTF-8",
    "PYTHONDONTWRITEBYTECODE": "1",
    "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1",
}


def _program(isolation: Isolation, program: str) -> str:
    if isolation.kind == "container":
        return "python3" if program == "python" else "node"
    return sys.executable if program == "python" else (shutil.which("node") or "node")


def run_isolated(
    isolation: Isolation, work: Path, program: str, args: list[str], *, timeout: float, nonce: str | None = None
) -> RunOutcome:
    """Run ``program`` (python | node) with ``args`` (paths relative to the work folder) under ``isolation``;
    ``nonce``, when given, is the first line of its stdin (see :mod:`harness.conformance.runners`)."""
    with contextlib.suppress(ValueError):
        timeout = min(timeout, float(os.environ.get(TIMEOUT_ENV) or timeout))
    cpu_s = int(timeout) + 1
    argv = [_program(isolation, program), *args]
    with contextlib.ExitStack() as stack:
        if isolation.kind != "bubblewrap":
            return _start(isolation, work, argv, Run(cpu_s, timeout, nonce, None, None))
        group = _case_group(stack)
        run = Run(cpu_s, timeout, nonce, _seccomp_fd(stack), None if isinstance(group, str) else group)
        outcome = _start(isolation, work, argv, run)
        held = isolation.describe() if run.group is not None else f"bubblewrap: per-process limits only ({group})"
        oom = run.group.oom_killed() if run.group is not None else 0
        return dataclasses.replace(outcome, isolation=held, oom_killed=oom > 0)


@dataclass(frozen=True, slots=True)
class Run:
    cpu_s: int
    timeout: float
    nonce: str | None
    seccomp_fd: int | None
    group: cgroups.CaseGroup | None


def _case_group(stack: contextlib.ExitStack) -> cgroups.CaseGroup | str:
    found = cgroups.find()
    if isinstance(found, str):
        return found
    group = cgroups.make(found, LIMITS["processes"])
    if not isinstance(group, str):
        stack.callback(group.close)
    return group


_CONTAINER_LIMITS = (
    f"memory 1 GiB (swap included) and {LIMITS['processes']} processes per case; /tmp and folder "
    f"{LIMITS['tmp_bytes'] >> 20} MiB each; no capabilities, Docker's default seccomp profile"
)


def limits_text() -> str:
    """What bounds a case as a whole under bubblewrap, for reports."""
    found = cgroups.find()
    whole = found.describe(LIMITS["processes"]) if not isinstance(found, str) else f"per-process limits ({found})"
    filtered = "seccomp filter" if seccomp.supported() else f"no seccomp table for {platform.machine()}"
    return f"{whole}; /tmp and folder {LIMITS['tmp_bytes'] >> 20} MiB each; {filtered}"


def _start(isolation: Isolation, work: Path, argv: list[str], run: Run) -> RunOutcome:
    name = f"devai-sandbox-{uuid.uuid4().hex[:12]}"
    if isolation.kind == "bubblewrap":
        cmd = _bwrap_argv(work, argv, run.cpu_s, run.seccomp_fd, per_case=run.group is not None)
        cmd = run.group.shim(cmd) if run.group is not None else cmd
    elif isolation.kind == "container":
        # Created first (seconds on a copying storage driver, not the code's time), then started and attached:
        # a run killed at its limit always leaves a container that exists, so removing it by name works.
        create = _container_argv(isolation.detail.removeprefix("docker image "), work, argv, run.cpu_s, name)
        made = subprocess.run(create, capture_output=True, text=True, timeout=600, check=False)
        if made.returncode != 0:
            why = f"the sandbox container could not be created: {made.stderr.strip()[-500:]}"
            return RunOutcome(125, why, run.timeout, isolation=isolation.describe())
        cmd = ["docker", "start", "--attach", "--interactive", name]
    else:
        cmd = argv
    with tempfile.TemporaryFile() as out:
        code = _wait(cmd, work, out, run, name if isolation.kind == "container" else None, isolation.kind == "none")
        proof = runners.read_proof(out, run.nonce) if run.nonce is not None else None
        size = out.seek(0, os.SEEK_END)
        out.seek(max(0, size - MAX_OUTPUT))
        text = runners.strip_markers(out.read().decode("utf-8", "replace"))
    if size > MAX_OUTPUT:
        text = f"[... {size - MAX_OUTPUT} bytes of output left out]\n" + text
    return RunOutcome(code, text, run.timeout, proof, isolation.describe())


def _wait(cmd: list[str], work: Path, out: IO[bytes], run: Run, container: str | None, bare: bool) -> int | None:
    """Start it, hand it the nonce, wait for it (killing it at its limit): its exit code, None when killed."""
    proc = subprocess.Popen(
        cmd,
        stdin=subprocess.PIPE,
        stdout=out,
        stderr=subprocess.STDOUT,
        cwd=work,
        env=_ENV if bare else None,
        start_new_session=True,
        pass_fds=() if run.seccomp_fd is None else (run.seccomp_fd,),
    )
    try:
        with contextlib.suppress(OSError):  # it may be gone before it read a byte
            assert proc.stdin is not None
            proc.stdin.write(f"{run.nonce or ''}\n".encode())
            proc.stdin.close()
        return proc.wait(run.timeout)
    except subprocess.TimeoutExpired:
        _kill(proc, container)
        return None
    except BaseException:  # Ctrl-C, or anything of ours: never leave the run behind
        _kill(proc, container)
        raise


def _seccomp_fd(stack: contextlib.ExitStack) -> int | None:
    """The filter in an anonymous file bubblewrap reads at start, closed with ``stack`` (None where the architecture
    has no table)."""
    if not seccomp.supported():
        return None
    fd = os.memfd_create("devai-seccomp", 0)
    stack.callback(os.close, fd)
    os.write(fd, _FILTER())
    os.lseek(fd, 0, os.SEEK_SET)
    return fd


_FILTER = functools.cache(seccomp.filter_program)  # the same program for every run: assembled once


def _kill(proc: subprocess.Popen[bytes], container: str | None) -> None:
    """The whole group (bubblewrap's namespace dies with it); a container is removed by name."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    if container is not None:
        _remove_container(container)


def _remove_container(name: str) -> None:
    subprocess.run(["docker", "rm", "-f", name], capture_output=True, timeout=120, check=False)
