"""Run model-written code — a fix, generated tests, a refactor — where it can do no harm.

Each run gets a fresh folder and runs under :mod:`harness.conformance.isolation` (bubblewrap, else a container,
else nothing: then the code is not run unless the user opted in, and the check is skipped saying why — never
silently run, never silently passed). Python runs isolated (-I) under pytest, with an audit hook refusing
network and subprocesses as an inner layer; JavaScript runs under node (skipped, saying so, where there is none).
What the code printed comes back bounded and with known secrets (our API keys' values) scrubbed: a hostile answer
must not be able to carry a secret into a report.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from harness.conformance.isolation import NOBODY, OPT_IN_ENV, choose, image_has, opted_in, run_isolated
from harness.core.wire import Redactor

__all__ = ["SandboxResult", "check_javascript", "run_javascript", "run_pytest", "sandbox_in_use"]

_GUARD = """
import sys
def _no_network(event, args):
    if event in ("socket.connect", "socket.getaddrinfo", "subprocess.Popen", "os.system", "os.fork", "os.forkpty",
                 "os.exec", "os.posix_spawn", "os.spawn"):
        raise PermissionError(f"sandbox: {event} is not allowed")
sys.addaudithook(_no_network)
"""
_SECRET_ENV = ("RUNPOD_API_KEY", "OPENAI_API_KEY", "RUNPOD_AI_API_KEY", "HF_TOKEN", "AWS_SECRET_ACCESS_KEY")


@dataclass(frozen=True, slots=True)
class SandboxResult:
    ok: bool
    output: str
    timed_out: bool = False
    skipped: str | None = None  # why it could not run at all

    @property
    def tail(self) -> str:
        lines = [line[:300] for line in self.output.strip().splitlines() if line.strip()]
        return "\n".join(lines[-8:])


def sandbox_in_use() -> str:
    """What model-written code runs in here, for reports: "bubblewrap (bubblewrap 0.8.0)", or why nothing runs."""
    iso = choose()
    if iso.isolated:
        return iso.describe()
    if opted_in():
        return f"NO ISOLATION ({OPT_IN_ENV} set: model-written code runs as you): {iso.detail}"
    return f"none: model-written code is not run ({iso.detail}; --unsafe-run-model-code runs it anyway)"


def _refusal() -> str | None:
    iso = choose()
    if iso.isolated or opted_in():
        return None
    return (
        f"model-written code is not run without a sandbox ({iso.detail}); install bubblewrap, or pass "
        "--unsafe-run-model-code to run it unisolated"
    )


@contextmanager
def _folder() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="devai-sandbox-") as tmp:
        root = Path(tmp)
        if os.getuid() == 0 and choose().isolated:
            os.chown(root, NOBODY, NOBODY)  # the code runs as nobody: its folder is the one place it may write
        yield root


# Key-like strings of the services our users hold keys for: RunPod (rpa_...), OpenAI (sk-...), AWS access keys.
_KEYLIKE = re.compile(r"\b(rpa_[A-Za-z0-9]{20,}|sk-[A-Za-z0-9_-]{20,}|AKIA[0-9A-Z]{16})\b")


def _known_secrets() -> list[str | None]:
    """Our environment's keys, and the RunPod CLI's own key file (runpod-python reads it too)."""
    found: list[str | None] = [os.environ.get(k) for k in _SECRET_ENV]
    with contextlib.suppress(OSError, ValueError):
        text = (Path.home() / ".runpod" / "config.toml").read_text(encoding="utf-8")
        found += re.findall(r"""api_key\s*=\s*["']([^"']+)["']""", text)
    return found


def _scrub(text: str) -> str:
    return _KEYLIKE.sub("***", Redactor(*_known_secrets())(text))


def _run(root: Path, program: str, args: list[str], timeout: float) -> SandboxResult:
    outcome = run_isolated(choose(), root, program, args, timeout=timeout)
    output = _scrub(outcome.output)
    if outcome.returncode not in (0, None) and output.lstrip().startswith(_LAUNCH_FAILURES):
        # Our launcher failed before the code existed: the harness's fault, never the answer's.
        return SandboxResult(False, output, skipped=f"the sandbox could not start {program}: {_first(output)}")
    if outcome.returncode is None:
        return SandboxResult(False, output + f"\n(killed after {outcome.limit_s:g} s)", timed_out=True)
    if outcome.returncode in (137, -9):  # SIGKILL we did not send: the container's memory limit, most often
        output += "\n(killed by SIGKILL: over the sandbox's memory or process limits)"
    return SandboxResult(outcome.returncode == 0, output)


_LAUNCH_FAILURES = ("bwrap:", "setpriv:", "prlimit:")


def _first(text: str) -> str:
    return next((line.strip()[:300] for line in text.splitlines() if line.strip()), "")


def run_pytest(code: str, tests: str, *, timeout: float = 30.0) -> SandboxResult:
    """``code`` as module ``solution``; ``tests`` run against it with ``from solution import *``."""
    if (why := _refusal()) is not None:
        return SandboxResult(False, "", skipped=why)
    with _folder() as root:
        (root / "solution.py").write_text(code, encoding="utf-8")
        (root / "test_solution.py").write_text("from solution import *  # noqa\n" + tests, encoding="utf-8")
        (root / "conftest.py").write_text(_GUARD, encoding="utf-8")
        args = ["-I", "-u", "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:locust", "-p", "no:devai_harness"]
        args += ["--capture=tee-sys"]  # what it printed reaches us even when it is killed at its time limit
        return _run(root, "python", [*args, "-o", "addopts=", "test_solution.py"], timeout)


def _node(why_not: str | None) -> str | None:
    if why_not is not None:
        return why_not
    iso = choose()
    if iso.kind == "container":
        return None if image_has(iso.detail.removeprefix("docker image "), "node") else f"{iso.detail} has no node"
    return None if shutil.which("node") else "node is not installed on this machine"


def check_javascript(code: str, *, timeout: float = 30.0) -> SandboxResult:
    """Syntax only (``node --check``): nothing is run."""
    if (why := _node(_refusal())) is not None:
        return SandboxResult(False, "", skipped=why)
    with _folder() as root:
        (root / "main.js").write_text(code, encoding="utf-8")
        return _run(root, "node", ["--check", "main.js"], timeout)


def run_javascript(code: str, tests: str, *, timeout: float = 30.0) -> SandboxResult:
    """CommonJS ``code`` (exports via module.exports) followed by assert-based ``tests``."""
    if (why := _node(_refusal())) is not None:
        return SandboxResult(False, "", skipped=why)
    with _folder() as root:
        (root / "main.js").write_text(code + "\n;\n" + tests, encoding="utf-8")
        flags = ["--disallow-code-generation-from-strings", "--max-old-space-size=512"]
        return _run(root, "node", [*flags, "main.js"], timeout)
