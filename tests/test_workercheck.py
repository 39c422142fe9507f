"""worker-check on example handlers (each made by us): every one gets the verdict it deserves."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from harness.cli import main
from harness.preflight.containers import check_container, docker_available
from harness.preflight.workercheck import WorkerReport, check_worker

HANDLERS = Path(__file__).parent / "handlers"


def run(name: str, **kwargs: object) -> WorkerReport:
    options: dict[str, object] = {"jobs": 2, "stuck_after_s": 1.5, "slow_import_s": 0.3, **kwargs}
    return check_worker(str(HANDLERS / name), **options)  # type: ignore[arg-type]


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
        ("unknown_shape_handler.py", "output shape", "no known output shape"),
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
    assert main(["worker-check", str(tmp_path / "handler.py"), "--jobs", "1", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["ok"] is True
    assert any(c["summary"] == "from test_input.json" for c in data["checks"])
    assert data["jobs"][0]["shape"] == "vllm-native-tokens"
    assert main(["worker-check", str(HANDLERS / "exits_at_import.py"), "--jobs", "1", "--json"]) == 1


def test_missing_handler_and_bad_input(capsys: pytest.CaptureFixture[str]) -> None:
    assert not check_worker("no/such/handler.py").ok
    assert main(["worker-check", str(HANDLERS / "good_handler.py"), "--input", "{not json"]) == 2  # bad input
    assert "not valid JSON" in capsys.readouterr().err


@pytest.mark.skipif(docker_available()[0], reason="a Docker engine is here: the skip path cannot be exercised")
def test_container_target_without_docker_is_skipped_with_the_reason() -> None:
    report = check_container("python:3.11-slim")
    assert [c.status for c in report.checks] == ["skip"]
    assert "no Docker engine" in report.checks[0].summary or "not installed" in report.checks[0].summary
    assert not report.ok  # nothing was checked: never a silent pass
    assert "NOT CHECKED" in report.render()


@pytest.mark.skipif(not docker_available()[0], reason=f"needs a Docker engine: {docker_available()[1]}")
def test_container_stays_up_and_answers() -> None:  # pragma: no cover - runs only where Docker exists
    report = check_container("vllm/vllm-openai:latest", crash_window_s=10)
    assert report.ok, report.render()
