"""worker-check on worker files (tests/workers, made by us) run as real workers: the runpod SDK (1.12, its own
venv) in a subprocess, with the interpreter chosen the way a user's would be. System stage."""

from __future__ import annotations

import shutil
import sys
import time
from pathlib import Path

import pytest

from harness.cli import main
from harness.preflight.workercheck import WorkerReport, check_worker
from tests.realsystems import WORKERS, runpod_python

pytestmark = pytest.mark.system


def check(name: str, **kwargs: object) -> WorkerReport:
    options: dict[str, object] = {"python": runpod_python(), "jobs": 2, "stuck_after_s": 3.0, **kwargs}
    return check_worker(str(WORKERS / f"{name}.py"), **options)  # type: ignore[arg-type]


def by_name(report: WorkerReport) -> dict[str, str]:
    return {c.name: c.status for c in report.checks}


def test_the_canonical_worker_file_passes(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["worker-check", str(WORKERS / "canonical.py"), "--python", runpod_python(), "--jobs", "2"]) == 0
    out = capsys.readouterr().out
    assert "verdict: OK (0 failed, 0 warnings)" in out, out
    assert f"{runpod_python()} (Python 3." in out and "from --python" in out
    assert "sync handler, no options; runpod 1.12.0" in out
    assert "#1 cold COMPLETED" in out and "#2 warm COMPLETED" in out
    assert "Load lazily" not in out  # `import runpod` does its own import-time work: not the user's


def test_a_venv_beside_the_worker_is_used_and_named(tmp_path: Path) -> None:
    shutil.copy(WORKERS / "canonical.py", tmp_path / "handler.py")
    (tmp_path / ".venv").symlink_to(Path(runpod_python()).parent.parent)
    report = check_worker(str(tmp_path / "handler.py"), jobs=1)
    assert report.ok, report.render()
    assert f"the venv beside the handler ({tmp_path / '.venv'})" in report.render()


def test_a_module_the_interpreter_lacks_is_one_line_and_immediate() -> None:
    t0 = time.monotonic()
    report = check_worker(str(WORKERS / "canonical.py"), python=sys.executable, jobs=1)
    took = time.monotonic() - t0
    assert by_name(report) == {"interpreter": "pass", "missing module": "fail"} and report.jobs == []
    (missing,) = [c for c in report.checks if c.name == "missing module"]
    assert missing.summary.startswith("No module named 'runpod' (imported at canonical.py:3) in ")
    assert sys.executable in missing.summary and missing.details == []
    assert "Load lazily" not in report.render()
    assert took < 5, f"{took:.1f} s: no waiting for a crash loop that cannot help"


def test_a_file_that_never_starts_the_sdk_has_its_own_finding() -> None:
    report = check("no_start")
    assert by_name(report)["runpod.serverless.start"] == "fail" and report.jobs == []
    assert "never calls runpod.serverless.start" in report.render()


def test_an_import_crash_shows_the_real_crash_loop_and_traceback() -> None:
    report = check("import_crash", jobs=1)
    assert by_name(report)["import"] == "fail" and by_name(report)["run under the emulator"] == "fail"
    text = report.render()
    assert "a crash loop" in text and "exited with code 1 before it asked for a job" in text
    assert "RuntimeError: model load failed at import time" in text and 'import_crash.py", line 5' in text
    assert report.jobs[0]["status"] == "STUCK"


def test_a_slow_import_is_named_by_its_line_and_paid_by_the_cold_job() -> None:
    report = check("slow_import", slow_import_s=0.5)
    assert by_name(report)["import time"] == "warn"
    assert "slow_import.py:7" in report.render()
    assert report.jobs[0]["delay_ms"] > 2000  # the 2 s import is in the measured cold start
    assert by_name(report)["output shape"] == "fail"  # {"ok": true} is no output an LLM client can read


def test_a_hang_at_import_names_the_line() -> None:
    report = check("hang_import", import_timeout=3)
    assert "hung at hang_import.py:7" in report.render() and report.jobs == []


def test_a_generator_is_read_from_stream_and_its_empty_status_output_is_a_finding() -> None:
    report = check("generator", job_input='{"prompt": "a b c"}')
    assert report.ok, report.render()
    assert by_name(report)["/status output"] == "warn" and "return_aggregate_stream" in report.render()
    assert [j["shape"] for j in report.jobs] == ["text-chunks"] * 2


def test_a_generator_with_aggregate_output_has_no_such_finding() -> None:
    report = check("async_generator_aggregate", jobs=1)
    assert by_name(report)["output shape"] == "fail"  # it yields {"i": n}: no LLM output; the run itself works
    assert report.jobs[0]["status"] == "COMPLETED" and "/status output" not in by_name(report)
    assert "async-generator handler" in report.render()
