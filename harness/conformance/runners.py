"""How a sandboxed run proves it ran: our runner reports through a channel the case's code does not hold.

The host draws a nonce per run and writes it as the first line of the run's stdin. Our runner (the Python
bootstrap below, or ``runner.js`` for node) reads that line byte by byte before any case code exists, keeps it in
its own locals, and writes ``@@devai-<nonce> {json}`` lines straight to fd 1: ``started`` before the code runs,
``finished`` (with pytest's exit code and the names of the tests that passed and failed) after. The verdict then
needs positive proof: a run whose code exits early (``os._exit``, ``sys.exit`` at import, ``process.exit``), kills
its reporter or execs something else never writes ``finished``, and fails with "the run ended before reporting".

Out of scope, and why: the nonce lives in the same process as the case's code, so code written against this
harness by name — walking interpreter frames or the garbage collector to the runner's locals, reading its own
memory through /proc/self/mem, or patching pytest's internals so failing tests report as passed — can forge a
``finished`` line. Such code has to target devai-harness specifically, and it is in the answer for anyone reading
the report; a generic early exit, the attack a model stumbles on or an answer tuned to an exit-code grader
uses, cannot pass.
"""

from __future__ import annotations

import ast
import json
import re
import secrets
from dataclasses import dataclass, field
from typing import IO, Any

from harness.core.markers import marked_lines

__all__ = ["NODE_RUNNER", "PYTHON_BOOTSTRAP", "Proof", "expected_tests", "new_nonce", "read_proof", "strip_markers"]

PREFIX = b"@@devai-"
_CHUNK = 1 << 20  # the output file is scanned in pieces: a run may print up to its file-size limit

# Run with ``python -I -u -c``; argv: the pytest arguments. The guard is an audit hook (an inner layer under the
# sandbox): no network, no subprocess, no exec. Everything the report needs is bound before the case's code loads.
PYTHON_BOOTSTRAP = r"""
def _devai_run():
    import json, os, sys
    read, write, dumps, exit_now = os.read, os.write, json.dumps, os._exit
    nonce = b""
    while not nonce.endswith(b"\n") and len(nonce) < 128:
        byte = read(0, 1)
        if not byte:
            break
        nonce += byte
    mark = b"\n@@devai-" + nonce.strip() + b" "
    def say(what, **more):
        write(1, mark + dumps({"what": what, **more}).encode() + b"\n")
    refused = ("socket.connect", "socket.getaddrinfo", "subprocess.Popen", "os.system", "os.fork", "os.forkpty",
               "os.exec", "os.posix_spawn", "os.spawn")
    def guard(event, args):
        if event in refused:
            raise PermissionError(f"sandbox: {event} is not allowed")
    import pytest
    passed, failed = [], []
    class Tally:
        def pytest_runtest_logreport(self, report):
            if report.failed:
                failed.append(report.nodeid)
            elif report.when == "call" and report.passed:
                passed.append(report.nodeid)
        def pytest_collectreport(self, report):
            if report.failed:
                failed.append(report.nodeid or "collection")
    sys.addaudithook(guard)
    say("started")
    code = int(pytest.main(sys.argv[1:], plugins=[Tally()]))
    sys.stdout.flush()
    say("finished", exit=code, passed=list(passed), failed=list(failed))
    exit_now(code)
_devai_run()
"""

# node runner.js main.js: the case's code (with its tests appended) is required; finishing it without a throw is
# the proof. ``fs.writeSync`` and the finished line are taken before the code loads, so patching them is too late.
NODE_RUNNER = r"""
"use strict";
const fs = require("fs");
const path = require("path");
const writeSync = fs.writeSync;
let nonce = "";
const byte = Buffer.alloc(1);
while (!nonce.endsWith("\n") && nonce.length < 128) {
  if (fs.readSync(0, byte, 0, 1, null) !== 1) break;
  nonce += byte.toString("latin1");
}
const mark = "\n@@devai-" + nonce.trim() + " ";
const finished = mark + '{"what": "finished", "exit": 0}\n';
const threw = mark + '{"what": "finished", "exit": 1, "failed": ["main.js"]}\n';
writeSync(1, mark + '{"what": "started"}\n');
try {
  require(path.resolve(process.argv[2]));
} catch (error) {
  writeSync(2, `${(error && error.stack) || error}\n`);
  writeSync(1, threw);
  process.exitCode = 1;
  return;
}
writeSync(1, finished);
"""


@dataclass(frozen=True, slots=True)
class Proof:
    """What the runner reported: whether it started, and its ``finished`` record (None: it never got there)."""

    started: bool = False
    finished: dict[str, Any] | None = None
    forged: list[str] = field(default_factory=list)  # marker lines with our nonce that did not parse

    def passed(self, expected: set[str]) -> str | None:
        """None when the run proved a pass of every ``expected`` test, else why not."""
        done = self.finished
        if done is None:
            return "the run ended before reporting"
        failed, passed = list(done.get("failed") or []), list(done.get("passed") or [])
        if failed:
            return f"{len(failed)} failed: {', '.join(failed[:5])}"
        if done.get("exit") != 0:
            code = done.get("exit")
            return f"pytest stopped with exit {code}" + (f" ({_PYTEST_EXITS[code]})" if code in _PYTEST_EXITS else "")
        names = {_base(n) for n in passed}
        if missing := sorted(expected - names):
            return f"expected tests did not pass: {', '.join(missing[:5])}"
        if "passed" in done and not passed:
            return "no test ran"
        return None


_PYTEST_EXITS = {
    2: "interrupted: a collection error",
    3: "internal error: the code exited or broke pytest",
    4: "usage error",
    5: "no tests were collected",
}


def new_nonce() -> str:
    return secrets.token_hex(16)


def read_proof(out: IO[bytes], nonce: str) -> Proof:
    """Every marker line of ours in the whole output, read in bounded chunks."""
    started, finished, odd = False, None, []
    for line in marked_lines(out, PREFIX + nonce.encode() + b" ", chunk=_CHUNK):
        try:
            record = json.loads(line)
        except ValueError:
            odd.append(line[:200].decode("utf-8", "replace"))
            continue
        if not isinstance(record, dict):
            continue
        started = started or record.get("what") == "started"
        if record.get("what") == "finished" and started and finished is None:
            finished = record
    return Proof(started, finished, odd)


def strip_markers(text: str) -> str:
    """The output as the user should see it: without our marker lines (of any nonce)."""
    return _MARKER_LINE.sub("", text)


_MARKER_LINE = re.compile(r"^@@devai-[0-9a-f]* .*\n?", re.M)


def expected_tests(source: str) -> set[str]:
    """The test names pytest would collect from ``source`` (top-level test_* and Test*.test_*)."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return set()
    names = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name.startswith("test"):
            names.add(node.name)
        elif isinstance(node, ast.ClassDef) and node.name.startswith("Test"):
            names |= {
                f"{node.name}::{m.name}"
                for m in node.body
                if isinstance(m, (ast.FunctionDef, ast.AsyncFunctionDef)) and m.name.startswith("test")
            }
    return names


def _base(nodeid: str) -> str:
    """``test_solution.py::TestX::test_y[1]`` -> ``TestX::test_y``."""
    return nodeid.split("::", 1)[-1].split("[", 1)[0]
