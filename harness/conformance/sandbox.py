"""Run model-written code in a throwaway subprocess: own temp dir, time limit, no network.

Python runs in isolated mode (-I) with an audit hook that refuses DNS look-ups, connections and
subprocesses, under pytest; JavaScript runs with node when a node binary exists (it does not on a
fresh CI machine: then the run is reported as skipped, never as passed). Not a security boundary
against a hostile model — a guard against accidents (a test that calls the network or hangs).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

__all__ = ["SandboxResult", "check_javascript", "run_javascript", "run_pytest"]

_GUARD = """
import sys
def _no_network(event, args):
    if event in ("socket.connect", "socket.getaddrinfo", "subprocess.Popen", "os.system"):
        raise PermissionError(f"sandbox: {event} is not allowed")
sys.addaudithook(_no_network)
"""


@dataclass(frozen=True, slots=True)
class SandboxResult:
    ok: bool
    output: str
    timed_out: bool = False
    skipped: str | None = None  # why it could not run at all

    @property
    def tail(self) -> str:
        lines = [line for line in self.output.strip().splitlines() if line.strip()]
        return "\n".join(lines[-8:])


def _run(cmd: list[str], cwd: Path, timeout: float) -> SandboxResult:
    # A bare environment: no secrets from ours, no installed pytest plugins (they cost ~1 s a run).
    env = {
        "PATH": "/usr/bin:/bin",
        "PYTHONDONTWRITEBYTECODE": "1",
        "HOME": str(cwd),
        "LANG": "C.UTF-8",
        "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1",
    }
    try:
        proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env, check=False)
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout.decode(errors="replace") if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        return SandboxResult(False, out + f"\n(killed after {timeout:g} s)", timed_out=True)
    return SandboxResult(proc.returncode == 0, proc.stdout + proc.stderr)


def run_pytest(code: str, tests: str, *, timeout: float = 30.0) -> SandboxResult:
    """``code`` as module ``solution``; ``tests`` run against it with ``from solution import *``."""
    with tempfile.TemporaryDirectory(prefix="devai-sandbox-") as tmp:
        root = Path(tmp)
        (root / "solution.py").write_text(code, encoding="utf-8")
        (root / "test_solution.py").write_text("from solution import *  # noqa\n" + tests, encoding="utf-8")
        (root / "conftest.py").write_text(_GUARD, encoding="utf-8")
        cmd = [
            sys.executable,
            "-I",
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-p",
            "no:locust",
            "-p",
            "no:devai_harness",
            "-o",
            "addopts=",
            "test_solution.py",
        ]
        return _run(cmd, root, timeout)


def check_javascript(code: str, *, timeout: float = 30.0) -> SandboxResult:
    """Syntax only (``node --check``): nothing is run."""
    node = shutil.which("node")
    if node is None:
        return SandboxResult(False, "", skipped="node is not installed on this machine")
    with tempfile.TemporaryDirectory(prefix="devai-sandbox-") as tmp:
        (Path(tmp) / "main.js").write_text(code, encoding="utf-8")
        return _run([node, "--check", "main.js"], Path(tmp), timeout)


def run_javascript(code: str, tests: str, *, timeout: float = 30.0) -> SandboxResult:
    """CommonJS ``code`` (exports via module.exports) followed by assert-based ``tests``."""
    node = shutil.which("node")
    if node is None:
        return SandboxResult(False, "", skipped="node is not installed on this machine")
    with tempfile.TemporaryDirectory(prefix="devai-sandbox-") as tmp:
        root = Path(tmp)
        (root / "main.js").write_text(code + "\n;\n" + tests, encoding="utf-8")
        return _run([node, "--disallow-code-generation-from-strings", "main.js"], root, timeout)
