"""worker-check on example handler functions (``FILE:function``, in-process; each made by us): every one gets the
verdict it deserves. Worker files run under the real runpod SDK are in test_workercheck_real.py (system stage)."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest

from harness.cli import main
from harness.preflight.containers import check_container, docker_available
from harness.preflight.workercheck import WorkerReport, check_worker

HANDLERS = Path(__file__).parent / "handlers"


def run(name: str, **kwargs: object) -> WorkerReport:
    options: dict[str, object] = {"jobs": 2, "stuck_after_s": 1.5, "slow_import_s": 0.3, **kwargs}
    spec = name if ":" in name else f"{name}:handler"
    return check_worker(str(HANDLERS / spec), **options)  # type: ignore[arg-type]


def status(report: WorkerReport, name: str) -> str:
    return next(c.status for c in report.checks if c.name == name)


def test_good_handler() -> None:
    report = run("good_handler.py")
    assert report.ok, report.render()
    assert [c.status for c in report.checks] == ["pass"] * len(report.checks)
    assert [j["shape"] for j in report.jobs] == ["vllm-native-tokens"] * 2
    assert [j["phase"] for j in report.jobs] == ["cold", "warm"]


def test_heavy_import_time_work_is_named_by_line() -> None:
    report = run("heavy_import.py")
    assert report.ok  # warnings, not failures: it works, but every cold start pays for it
    text = report.render()
    for title, line in [
        ("weight file opened at import time", "heavy_import.py:11"),
        ("socket bound (a server?) at import time", "heavy_import.py:15"),
        ("network access at import time", "heavy_import.py:18"),
        ("import time", "heavy_import.py:20"),
    ]:
        assert status(report, title) == "warn"
        assert line in text, (line, text)
    assert "Load lazily on the first request" in text
    assert report.jobs[0]["delay_ms"] >= 500  # the cold start includes the 0.6 s import


def test_crash_at_import_shows_the_crash_loop_and_traceback() -> None:
    report = run("crash_at_import.py")
    assert not report.ok
    assert status(report, "import") == "fail"
    assert status(report, "run under the emulator") == "fail"
    text = report.render()
    assert "crash loop" in text
    assert "model load failed at import time: no GPU" in text
    assert report.jobs[0]["status"] == "STUCK"


def test_exit_at_import() -> None:
    report = run("exits_at_import.py", jobs=1)
    assert status(report, "import") == "fail"
    assert "SystemExit" in report.render()


def test_hang_at_import_names_the_line() -> None:
    report = run("hangs_at_import.py", import_timeout=1.5)
    assert not report.ok
    assert "hung at hangs_at_import.py:8" in report.render()


@pytest.mark.parametrize(
    ("spec", "shape"),
    [("generator_handler.py:handler", "text-chunks"), ("async_generator_handler.py:text_stream", "text-chunks")],
)
def test_generators_are_drained_and_aggregated(spec: str, shape: str) -> None:
    report = run(spec, job_input='{"input": {"text": "a b c"}}')
    assert report.ok, report.render()
    assert report.jobs[0]["shape"] == shape


@pytest.mark.parametrize(
    ("spec", "check", "text"),
    [
        ("generator_handler.py:yields_error", "job #1 (cold)", "yielded error after one chunk"),
        ("unknown_shape_handler.py:handler", "output shape", "no known output shape"),
        ("async_generator_handler.py:handler", "output shape", "no known output shape"),
        ("sync_handler.py:nope", "handler", "no callable 'nope'"),
    ],
)
def test_failing_handlers(spec: str, check: str, text: str) -> None:
    report = run(spec)
    assert not report.ok
    assert status(report, check) == "fail"
    assert text in report.render()


def test_test_input_json_beside_the_handler_and_json_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    shutil.copy(HANDLERS / "good_handler.py", tmp_path / "handler.py")
    (tmp_path / "test_input.json").write_text(json.dumps({"input": {"prompt": "from the file"}}))
    assert main(["worker-check", f"{tmp_path / 'handler.py'}:handler", "--jobs", "1", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["ok"] is True
    assert any(c["summary"] == "from test_input.json" for c in data["checks"])
    assert data["jobs"][0]["shape"] == "vllm-native-tokens"
    assert main(["worker-check", f"{HANDLERS / 'exits_at_import.py'}:handler", "--jobs", "1", "--json"]) == 1


@pytest.mark.parametrize(
    ("argv", "error"),
    [
        (["no/such/handler.py"], "no/such/handler.py: no such file"),
        ([str(HANDLERS)], "is a directory: give the worker file"),
        (["good_handler.py:handler", "--input", "{not json"], "--input is not valid JSON"),
        (["good_handler.py:handler", "--python", "python3"], "--python applies to a worker FILE"),
        (["good_handler.py", "--python", "/no/such/python"], "--python /no/such/python: no such interpreter"),
    ],
)
def test_what_cannot_be_checked_is_one_line_at_once(
    argv: list[str], error: str, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = [str(HANDLERS / a) if a.startswith("good_handler") else a for a in argv]
    assert main(["worker-check", *argv]) == 2
    err = capsys.readouterr().err
    assert error in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_a_missing_function_is_reported_without_running_the_emulator() -> None:
    report = run("sync_handler.py:nope")
    assert [(c.name, c.status) for c in report.checks] == [("import", "pass"), ("handler", "fail")]
    assert "no callable 'nope' in sync_handler.py" in report.render() and report.jobs == []


def test_a_plain_function_file_given_as_a_worker_file_never_starts_the_sdk() -> None:
    report = check_worker(str(HANDLERS / "good_handler.py"), python=sys.executable, jobs=1)
    assert not report.ok and report.jobs == []  # nothing is run: it would never take a job
    (start,) = [c for c in report.checks if c.name == "runpod.serverless.start"]
    assert start.status == "fail" and "never calls runpod.serverless.start" in start.summary
    assert "handler.py:function" in start.summary or "FILE:function" in start.summary


@pytest.mark.skipif(docker_available()[0], reason="a Docker engine is here: the skip path cannot be exercised")
def test_container_target_without_docker_is_not_checked_with_the_reason() -> None:
    report = check_container("python:3.11-slim")
    assert [c.status for c in report.checks] == ["skip"]
    assert "no Docker engine" in report.checks[0].summary or "not installed" in report.checks[0].summary
    assert not report.ok  # nothing was checked: never a silent pass
    assert "NOT CHECKED" in report.render()


def test_a_daemon_forked_at_import_is_killed_and_said() -> None:
    report = run("forks_daemon_at_import.py", jobs=1)
    check = next(c for c in report.checks if c.name == "processes left running")
    assert check.status == "warn" and "1 process(es)" in check.summary and "killed" in check.summary
    assert status(report, "import") == "pass"


def test_a_flood_of_output_at_import_is_capped_not_held() -> None:
    import resource

    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    report = run("floods_at_import.py", jobs=1)
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert status(report, "import") == "pass", report.render()  # imported, and not a crash loop
    assert len(report.logs) <= 200 and "bytes of output left out" in report.logs[0]
    assert grown_mb < 100, f"the harness grew {grown_mb:.0f} MB reading a 200 MB flood"


def test_a_worker_with_modules_named_like_the_harnesss_own_passes(tmp_path: Path) -> None:
    """The import probe once ran with its own folder first on sys.path: a worker's own datasource.py, report.py
    or trainscript.py — installed, or in a folder it appends to its path — was shadowed by the harness's files
    beside the probe."""
    (tmp_path / "lib").mkdir()
    for name in ("datasource", "report", "trainscript"):
        (tmp_path / "lib" / f"{name}.py").write_text(f"WHO = 'the worker {name}'\n")
    (tmp_path / "handler.py").write_text(
        "import pathlib, sys\nsys.path.append(str(pathlib.Path(__file__).parent / 'lib'))\n"
        "from datasource import WHO as A\nfrom report import WHO as B\nfrom trainscript import WHO as C\n\n\n"
        "def handler(job):\n    return [{'choices': [{'tokens': [A, B, C]}], 'usage': {'input': 1, 'output': 3}}]\n"
    )
    report = check_worker(f"{tmp_path / 'handler.py'}:handler", jobs=1, stuck_after_s=1.5, slow_import_s=2.0)
    assert report.ok, report.render()
