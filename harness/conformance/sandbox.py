"""Run model-written code — a fix, generated tests, a refactor — where it can do no harm.

Each run gets a fresh folder and runs under :mod:`harness.conformance.isolation` (bubblewrap, else a container,
else nothing: then the code is not run unless the user opted in, and the check is skipped saying why — never
silently run, never silently passed). Python runs isolated (-I) under pytest, with an audit hook refusing
network and subprocesses as an inner layer; JavaScript runs under node (skipped, saying so, where there is none).
Either runs under our runner (:mod:`harness.conformance.runners`), and a pass needs its report: an exit code
alone proves nothing. A sandbox that could not start is the harness's error, never the answer's failure.
What the code printed comes back bounded and with known secrets (our API keys' values) scrubbed: a hostile answer
must not be able to carry a secret into a report.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from harness.conformance import cleanup, runners
from harness.conformance.isolation import OPT_IN_ENV, RunOutcome, choose, image_has, opted_in, run_isolated
from harness.core.wire import Redactor

__all__ = ["SandboxResult", "check_javascript", "run_javascript", "run_pytest", "sandbox_in_use"]

_SECRET_ENV = ("RUNPOD_API_KEY", "OPENAI_API_KEY", "RUNPOD_AI_API_KEY", "HF_TOKEN", "AWS_SECRET_ACCESS_KEY")


@dataclass(frozen=True, slots=True)
class SandboxResult:
    ok: bool
    output: str
    timed_out: bool = False
    skipped: str | None = None  # why it could not run at all (no sandbox, no node): NOT CHECKED
    reason: str = ""  # why it did not pass, in a few words
    error: str | None = None  # the sandbox itself failed (it could not start): the harness's ERROR, not the code's
    isolation: str = ""  # what bounded this run
    left: str | None = None  # what its cleanup could not remove, and where

    @property
    def tail(self) -> str:
        lines = [line[:300] for line in self.output.strip().splitlines() if line.strip()]
        return "\n".join(lines[-8:])


def sandbox_in_use(unsafe_run_model_code: bool = False) -> str:
    """What model-written code runs in here, for reports: "bubblewrap (bubblewrap 0.8.0)", or why nothing runs."""
    iso = choose()
    if iso.isolated:
        return iso.describe()  # what bounds each case included
    if opted_in(unsafe_run_model_code):
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
def _folder(files: dict[str, str], left: list[str]) -> Iterator[Path]:
    """A fresh folder with ``files`` (read-only inside the sandbox, which gives the code a sized tmpfs around
    them); removed after, or what could not be removed is put in ``left``."""
    root = Path(tempfile.mkdtemp(prefix="devai-sandbox-"))
    try:
        for name, text in files.items():
            (root / name).write_text(text, encoding="utf-8")
            (root / name).chmod(0o644)  # readable by nobody whatever the umask
        yield root
    finally:
        if (why := cleanup.remove(root)) is not None:
            left.append(why)


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


def _run(root: Path, program: str, args: list[str], timeout: float, expected: set[str]) -> SandboxResult:
    """Run model-written code through our runner: a pass needs the runner's own report (see runners)."""
    nonce = runners.new_nonce()
    outcome = run_isolated(choose(), root, program, args, timeout=timeout, nonce=nonce)
    output, proof, held = _scrub(outcome.output), outcome.proof or runners.Proof(), outcome.isolation
    if outcome.returncode is None and not proof.started:
        why = f"the sandbox did not start {program} in {outcome.limit_s:g} s"
        return SandboxResult(False, output, reason=why, error=why, isolation=held)
    if not proof.started:  # our launcher or runner failed before the code existed: never the answer's fault
        why = f"the sandbox could not start {program}: {_first(output) or f'exit {outcome.returncode}'}"
        return SandboxResult(False, output, reason=why, error=why, isolation=held)
    if outcome.returncode is None:
        why = f"killed after {outcome.limit_s:g} s"
        return SandboxResult(False, output + f"\n({why})", timed_out=True, reason=why, isolation=held)
    if proof.finished is None:
        why = f"the run ended before reporting (exit {outcome.returncode}){_killed(outcome)}"
        return SandboxResult(False, output + f"\n({why})", reason=why, isolation=held)
    why = proof.passed(expected) or (f"exit {outcome.returncode}" if outcome.returncode != 0 else "")
    return SandboxResult(not why, output, reason=why + _killed(outcome) if why else "", isolation=held)


def _killed(outcome: RunOutcome) -> str:
    if outcome.oom_killed:
        return ": killed for memory, over the case's limit"
    if outcome.returncode in (137, -9) and choose().kind == "container":  # the container's memory limit, mostly
        return ": killed by SIGKILL, over the container's memory or process limits"
    return ""


def _first(text: str) -> str:
    return next((line.strip()[:300] for line in text.splitlines() if line.strip()), "")


_PYTEST = ["-q", "-p", "no:cacheprovider", "-p", "no:locust", "-p", "no:devai_harness", "-o", "addopts="]
_PYTEST += ["--capture=tee-sys"]  # what it printed reaches us even when it is killed at its time limit


def run_pytest(code: str, tests: str, *, timeout: float = 30.0) -> SandboxResult:
    """``code`` as module ``solution``; ``tests`` run against it with ``from solution import *``."""
    if (why := _refusal()) is not None:
        return SandboxResult(False, "", skipped=why)
    files = {"solution.py": code, "test_solution.py": "from solution import *  # noqa\n" + tests}
    left: list[str] = []
    with _folder(files, left) as root:
        args = ["-I", "-u", "-c", runners.PYTHON_BOOTSTRAP, *_PYTEST, "test_solution.py"]
        result = _run(root, "python", args, timeout, runners.expected_tests(tests))
    return dataclasses.replace(result, left="; ".join(left) or None)


def _node(why_not: str | None) -> str | None:
    if why_not is not None:
        return why_not
    iso = choose()
    if iso.kind == "container":
        return None if image_has(iso.detail.removeprefix("docker image "), "node") else f"{iso.detail} has no node"
    return None if shutil.which("node") else "node is not installed on this machine"


def check_javascript(code: str, *, timeout: float = 30.0) -> SandboxResult:
    """Syntax only (``node --check``): nothing of the code runs, so its exit code can be trusted."""
    if (why := _node(_refusal())) is not None:
        return SandboxResult(False, "", skipped=why)
    left: list[str] = []
    with _folder({"main.js": code}, left) as root:
        outcome = run_isolated(choose(), root, "node", ["--check", "main.js"], timeout=timeout)
    output = _scrub(outcome.output)
    if outcome.returncode not in (0, None) and output.lstrip().startswith(_LAUNCH_FAILURES):
        why = f"the sandbox could not start node: {_first(output)}"
        return SandboxResult(False, output, reason=why, error=why, isolation=outcome.isolation)
    timed_out = outcome.returncode is None
    why = "" if outcome.returncode == 0 else f"killed after {outcome.limit_s:g} s" if timed_out else "syntax error"
    held, gone = outcome.isolation, "; ".join(left) or None
    return SandboxResult(not why, output, timed_out, reason=why, isolation=held, left=gone)


_LAUNCH_FAILURES = ("bwrap:", "setpriv:", "prlimit:")


def run_javascript(code: str, tests: str, *, timeout: float = 30.0) -> SandboxResult:
    """CommonJS ``code`` (exports via module.exports) followed by assert-based ``tests``, required by our runner."""
    if (why := _node(_refusal())) is not None:
        return SandboxResult(False, "", skipped=why)
    left: list[str] = []
    with _folder({"main.js": code + "\n;\n" + tests, "runner.js": runners.NODE_RUNNER}, left) as root:
        flags = ["--disallow-code-generation-from-strings", "--max-old-space-size=512"]
        result = _run(root, "node", [*flags, "runner.js", "main.js"], timeout, set())
    return dataclasses.replace(result, left="; ".join(left) or None)
