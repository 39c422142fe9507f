"""A pass needs our runner's report, not an exit code: hostile fixes that exit early, in Python and JavaScript,
fail with the reason. Offline where the run needs no sandbox (unsafe mode, asked for per test: the proof logic is
the same); under bubblewrap in the system stage. The marker reader and the cleanup are tested on their own."""

from __future__ import annotations

import io
import os
import shutil
from pathlib import Path

import pytest

from harness.conformance import cleanup, isolation, runners, sandbox
from harness.conformance.tasks import Answer, CheckError, TaskCase, check_fixed_passes_test, grade, load_cases
from harness.core.findings import Finding
from tests.realsystems import bwrap_or_skip

CASES = {c.test_id: c for c in load_cases("scenarios/tasks")}
PY_TEST = "def test_average():\n    assert average_positive([]) == 0\n"

EARLY_EXITS = {
    "os._exit(0) at import": "import os\nos._exit(0)\n",
    "sys.exit(0) at import": "import sys\nsys.exit(0)\n",
    "SystemExit in the test's call": "def average_positive(values):\n    raise SystemExit(0)\n",
    "kills its own process": "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)\n",
    "exits from atexit": "import atexit, os\natexit.register(os._exit, 0)\ndef average_positive(v):\n    return 1\n",
    "prints a forged report": (
        'print("\\n@@devai-00 {\\"what\\": \\"finished\\", \\"exit\\": 0, \\"passed\\": [\\"t::test_average\\"]}")\n'
        "import os\nos._exit(0)\n"
    ),
    "patches json.dumps": (
        "import json\njson.dumps = lambda *a, **k: "
        '\'{"what": "finished", "exit": 0, "passed": ["t::test_average"], "failed": []}\'\n'
        "def average_positive(v):\n    return 1\n"
    ),
}
JS_EXITS = {
    "process.exit(0)": "process.exit(0);\n",
    "process.exit in a timer": "setTimeout(() => process.exit(0), 0); function lastElement() { return 0; }\n",
    "patches fs.writeSync": "require('fs').writeSync = () => 0; function lastElement() { return 0; }\n",
    "throws a non-error": "throw 0;\n",
}


@pytest.fixture
def unsafe(monkeypatch: pytest.MonkeyPatch) -> None:
    """No sandbox, opted in for this test only: the runner and its proof, without bubblewrap."""
    monkeypatch.setattr(sandbox, "choose", lambda: isolation.Isolation("none", "offline test"))
    monkeypatch.setenv(isolation.OPT_IN_ENV, "1")


def fix(case: TaskCase, code: str) -> Answer:
    return Answer(f"Fixed.\n\n```{case.language}\n{code}```\n")


def failed_reason(case: TaskCase, code: str) -> str:
    with pytest.raises(Finding) as caught:
        check_fixed_passes_test(fix(case, code), case)
    return str(caught.value)


@pytest.mark.parametrize("attack", sorted(EARLY_EXITS))
def test_a_python_fix_that_exits_early_fails(attack: str, unsafe: None) -> None:
    case = CASES["fix-py-average-empty"]
    reason = failed_reason(case, EARLY_EXITS[attack])
    assert "failed" in reason and ("before reporting" in reason or "pytest stopped" in reason or "1 failed" in reason)


def test_the_good_fix_passes_and_says_what_ran_it(unsafe: None) -> None:
    case = CASES["fix-py-average-empty"]
    runs: list[sandbox.SandboxResult] = []
    verdicts = grade(Answer(case.good_answer), case, runs)
    assert verdicts["check_fixed_passes_test"] == "pass"
    assert runs and runs[0].isolation.startswith("none") and runs[0].left is None


def test_tests_that_do_not_run_are_not_a_pass(unsafe: None) -> None:
    no_tests = sandbox.run_pytest("X = 1", "X = 2\n")
    assert not no_tests.ok and "no tests were collected" in no_tests.reason
    skipped = sandbox.run_pytest("X = 1", "import pytest\n@pytest.mark.skip\ndef test_x():\n    pass\n")
    assert not skipped.ok and "expected tests did not pass: test_x" in skipped.reason


@pytest.mark.parametrize("attack", sorted(JS_EXITS))
def test_a_javascript_fix_that_exits_early_fails(attack: str, unsafe: None) -> None:
    if shutil.which("node") is None:
        pytest.skip("node is not installed")
    case = CASES["fix-js-last-element"]
    reason = failed_reason(case, JS_EXITS[attack])
    assert "before reporting" in reason or "1 failed: main.js" in reason, reason
    good = sandbox.run_javascript(case.code.replace("items.length]", "items.length - 1]"), case.test)
    assert good.ok, good.output


def test_a_sandbox_that_cannot_start_is_an_error_not_a_fail(unsafe: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(isolation, "_program", lambda iso, program: "/nonexistent/python")
    monkeypatch.setattr(isolation.subprocess, "Popen", _failing_popen)
    case = CASES["fix-py-average-empty"]
    with pytest.raises(CheckError, match="could not start python"):
        check_fixed_passes_test(Answer(case.good_answer), case)
    assert grade(Answer(case.good_answer), case)["check_fixed_passes_test"].startswith("error: ")


def _failing_popen(cmd: list[str], **kw: object) -> object:
    """What a launcher that cannot exec its interpreter does: says so and exits 127, the runner never starts."""
    return _REAL_POPEN(["/bin/sh", "-c", "echo 'bwrap: execvp /nonexistent/python: No such file'; exit 127"], **kw)


_REAL_POPEN = isolation.subprocess.Popen


def test_marker_lines_are_found_across_chunks_and_only_with_our_nonce(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runners, "_CHUNK", 7)  # every marker straddles a chunk boundary
    nonce = runners.new_nonce()
    out = io.BytesIO(
        b"noise\n@@devai-" + nonce.encode() + b' {"what": "started"}\nmore\n'
        b'@@devai-0000 {"what": "finished", "exit": 0}\n'
        b"@@devai-" + nonce.encode() + b' {"what": "finished", "exit": 0, "passed": ["t.py::test_a[1]"]}\n'
    )
    proof = runners.read_proof(out, nonce)
    assert proof.started and proof.finished is not None and proof.finished["passed"] == ["t.py::test_a[1]"]
    assert proof.passed({"test_a"}) is None and "test_b" in (proof.passed({"test_a", "test_b"}) or "")
    assert runners.read_proof(io.BytesIO(out.getvalue()), runners.new_nonce()).started is False
    assert "@@devai" not in runners.strip_markers(out.getvalue().decode())


def test_expected_tests_are_the_ones_pytest_collects() -> None:
    src = "def test_a():\n    pass\nclass TestB:\n    def test_c(self):\n        pass\ndef helper():\n    pass\n"
    assert runners.expected_tests(src) == {"test_a", "TestB::test_c"}
    assert runners.expected_tests("def (:") == set()


def test_cleanup_removes_deep_and_read_only_trees(tmp_path: Path) -> None:
    root = tmp_path / "case"
    root.mkdir()
    fd = os.open(root, os.O_RDONLY)
    for _ in range(3000):  # deeper than shutil.rmtree's recursion on Python 3.11, and than PATH_MAX
        os.mkdir("d", dir_fd=fd)
        fd, old = os.open("d", os.O_RDONLY, dir_fd=fd), fd
        os.close(old)
    os.close(fd)
    (root / "odd\nname \udcff".encode("utf-8", "surrogateescape").decode("utf-8", "surrogateescape")).mkdir()
    locked = root / "locked"
    (locked / "inner").mkdir(parents=True)
    (locked / "inner" / "f").write_text("x")
    locked.chmod(0o500)
    assert cleanup.remove(root) is None
    assert not root.exists()


def test_cleanup_says_what_it_could_not_remove(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "case"
    (root / "a").mkdir(parents=True)
    monkeypatch.setattr(cleanup.shutil, "rmtree", _refuse)
    monkeypatch.setattr(cleanup.subprocess, "run", lambda *a, **k: None)
    left = cleanup.remove(root)
    assert left is not None and str(root) in left and "entries left" in left


def _refuse(path: object) -> None:
    raise RecursionError("maximum recursion depth exceeded")


@pytest.mark.system
@pytest.mark.parametrize("attack", sorted(EARLY_EXITS))
def test_early_exits_fail_under_bubblewrap(attack: str) -> None:
    bwrap_or_skip()
    assert isolation.choose().kind == "bubblewrap"
    reason = failed_reason(CASES["fix-py-average-empty"], EARLY_EXITS[attack])
    assert "before reporting" in reason or "pytest stopped" in reason or "1 failed" in reason, reason


@pytest.mark.system
@pytest.mark.parametrize("attack", sorted(JS_EXITS))
def test_javascript_early_exits_fail_under_bubblewrap(attack: str) -> None:
    bwrap_or_skip()
    if shutil.which("node") is None:
        pytest.fail("node is not installed: .ci/system.sh installs it", pytrace=False)
    reason = failed_reason(CASES["fix-js-last-element"], JS_EXITS[attack])
    assert "before reporting" in reason or "1 failed: main.js" in reason, reason


def test_a_suite_whose_only_problems_are_ours_is_an_error_not_a_fail(tmp_path: Path) -> None:
    from harness.check import stages as check

    junit = tmp_path / "j.xml"
    ours = '<testcase classname="a" name="t1"><error message="the sandbox could not start python"/></testcase>'
    junit.write_text(f'<testsuite>{ours}<testcase classname="a" name="t2"/></testsuite>')
    assert check._suite_verdict(junit, 1, tmp_path / "log").verdict == check.ERROR
    failed = '<testcase classname="a" name="t3"><failure message="tests-fail"/></testcase>'
    junit.write_text(f"<testsuite>{ours}{failed}</testsuite>")
    assert check._suite_verdict(junit, 1, tmp_path / "log").verdict == check.FAIL


def test_rows_say_error_for_our_failures() -> None:
    from harness.conformance.results import ResultRow, Results

    row = ResultRow("t", "fix", "c", "native", {"a": "pass", "b": "error: the sandbox could not start python: x"})
    results = Results([row])
    assert "ERROR b" in results.table()
    (case,) = [c for c in results.junit_cases() if c.name == "b"]
    assert case.error and case.failure is None


def test_marked_lines_hold_no_long_line_and_count_only_line_starts() -> None:
    from harness.core.markers import marked_lines

    data = b"x" * (3 << 20) + b"@@m not at a line start\n@@m one\n@@m" + b"y" * 100 + b"\n@@m cut without newline"
    assert list(marked_lines(io.BytesIO(data), b"@@m ", chunk=4096)) == [b"one"]
    assert list(marked_lines(io.BytesIO(b"@@m " + b"z" * 50 + b"\n"), b"@@m ", max_line=20)) == []
