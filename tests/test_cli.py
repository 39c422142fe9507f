"""The command line with bad input (one line, non-zero, no traceback, nothing left behind), the main job's
verdicts on every target (NOT CHECKED is a verdict; a failing stage never costs the report), and the plugin's
all-skipped rule."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.check import CheckRun, StageResult
from harness.check.report import write_check_report
from harness.targets import Target, resolve_target
from tests.realsystems import tiny_tmpfs

ROOT = Path(__file__).parent.parent
pytest_plugins = ["pytester"]


def run_cli(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("RUNPOD_", "OPENAI_"))} | (env or {})
    return subprocess.run(
        [sys.executable, "-m", "harness", *args],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    binary = tmp_path / "binary.bin"
    binary.write_bytes(bytes(range(256)) * 4)
    typo = tmp_path / "typo.yaml"
    typo.write_text("emulator:\n  worker: {engin: scripted}\n")
    bad_yaml = tmp_path / "bad.yaml"
    bad_yaml.write_text("emulator: [unclosed\n")
    notes = tmp_path / "notes.txt"
    notes.write_text("just some words\n")
    return {"binary": binary, "typo": typo, "bad_yaml": bad_yaml, "notes": notes, "missing": tmp_path / "nope.json"}


BAD_INPUTS = {
    "shapes-binary": (["shapes", "{binary}"], "not UTF-8 text"),
    "shapes-missing": (["shapes", "{missing}"], "cannot read"),
    "shapes-not-json": (["shapes", "{notes}"], "neither JSON nor an SSE stream"),
    "emulate-port": (["emulate", "--port", "99999"], "ports are 0..65535"),
    "emulate-typo": (["emulate", "--config", "{typo}", "--port", "0"], "worker: unknown key(s) engin; known:"),
    "emulate-yaml": (["emulate", "--config", "{bad_yaml}", "--port", "0"], "invalid YAML"),
    "emulate-missing": (["emulate", "--config", "{missing}", "--port", "0"], "cannot read emulator config"),
    "emulate-binary": (["emulate", "--config", "{binary}", "--port", "0"], "not UTF-8 text"),
    "train-check-binary": (["train-check", "{binary}"], "not UTF-8 text"),
    "train-check-missing": (["train-check", "{missing}"], "cannot read"),
    "train-check-typo": (["train-check", "{typo}"], "unknown key(s)"),
    "emulate-cold": (["emulate", "--cold-start", "-1"], "must be a non-negative number"),
    "check-no-endpoint": (["check", "--target", "runpod"], "needs an endpoint"),
    "check-no-key": (["check", "--target", "runpod", "--endpoint-id", "ep1"], "needs an API key in $RUNPOD_API_KEY"),
    "check-bad-id": (["check", "--target", "runpod", "--endpoint-id", "..", "--api-key-env", "PATH"], "invalid"),
    "check-bad-url": (["check", "--target", "openai", "--base-url", "localhost:8000"], "must be an http://"),
    "check-no-openai": (["check", "--target", "openai"], "needs --base-url"),
    "check-timeout": (["check", "--timeout", "0"], "must be a positive number"),
    "check-suite": (["check", "--suite", "{missing}"], "no test_devai_tasks.py there"),
    "report-missing": (["report", "{missing}"], "no such run directory"),
    "report-glob": (["report", "/nonexistent-dir-*"], "matches no run directory"),
    "worker-check-none": (["worker-check"], "give a worker file"),
    "unknown-command": (["frobnicate"], "invalid choice"),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input_is_one_line_and_a_non_zero_exit(case: str, files: dict[str, Path], tmp_path: Path) -> None:
    argv, expected = BAD_INPUTS[case]
    args = [a.format(**{k: str(v) for k, v in files.items()}) for a in argv]
    proc = run_cli(*args, cwd=tmp_path)
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr + proc.stdout
    assert expected in proc.stderr, proc.stderr
    error_lines = [line for line in proc.stderr.splitlines() if "error" in line]
    assert len(error_lines) == 1, proc.stderr
    assert not (tmp_path / "runs").exists()  # validated before anything ran: no empty run folder


def test_the_key_is_read_from_the_variable_named_and_never_printed(tmp_path: Path) -> None:
    target = resolve_target("runpod", endpoint_id="ep1", api_key_env="MY_KEY", env={"MY_KEY": "rp_SECRET123456789"})
    assert target.api_key({"MY_KEY": "rp_SECRET123456789"}) == "rp_SECRET123456789"
    assert "rp_SECRET" not in repr(target) and "rp_SECRET" not in target.describe()


def test_a_missing_suite_is_not_checked_and_fails_the_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from harness.check.stages import suite_stage

    stage = suite_stage(Target("emulator"), tmp_path, None, "emulator", lambda _: None)
    assert stage.verdict == "NOT CHECKED" and "no conformance suite found" in stage.summary
    run = CheckRun(Target("emulator"), tmp_path, "now", [stage, StageResult("shapes", "PASS", "ok")])
    assert not run.ok and run.verdict == "NOT CHECKED"


def test_an_unreachable_endpoint_still_gets_a_full_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Every stage fails or errors, the run goes on, and report.json/html/junit hold every stage."""
    env = {"RUNPOD_API_KEY": "rp_NOT_A_REAL_KEY_123"}
    run = tmp_path / "run"
    args = ["check", "-q", "--target", "runpod", "--endpoint-id", "ep1", "--base-url", "http://127.0.0.1:9/v2"]
    proc = run_cli(*args, "--run-dir", str(run), "--timeout", "5", "--no-suite", env=env, cwd=ROOT)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stdout
    data = json.loads((run / "report.json").read_text())
    assert [s["name"] for s in data["stages"]] == ["suite", "shapes", "latency"] or [
        s["name"] for s in data["stages"]
    ] == ["suite", "shapes and latency"]
    failed = [s for s in data["stages"] if s["verdict"] in ("FAIL", "ERROR")]
    assert failed and all(s["summary"] for s in failed)
    assert "127.0.0.1:9/v2/ep1" in json.dumps(data)  # the full URL: a base-URL mistake shows
    assert (run / "report.html").exists() and (run / "junit.xml").read_text().count("<testcase") >= 2
    assert "rp_NOT_A_REAL_KEY" not in (run / "report.json").read_text() + proc.stdout + proc.stderr


def test_the_check_report_is_written_even_when_a_stage_raised(tmp_path: Path) -> None:
    run = CheckRun(Target("emulator"), tmp_path, "now", [StageResult("suite", "ERROR", "boom", error="Traceback...")])
    paths = write_check_report(run)
    data = json.loads(paths["json"].read_text())
    # the harness's own failure is ERROR, never the endpoint's FAIL
    assert data["verdict"] == "ERROR" and data["stages"][0]["error"] == "Traceback..."
    assert "Error in suite" in paths["html"].read_text()


ALL_SKIPPED = """
import pytest

def test_a():
    pytest.skip("no credentials for the target")

def test_b():
    pytest.skip("no credentials for the target")
"""


def test_everything_skipped_is_not_checked_and_exits_1(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(ALL_SKIPPED)
    result = pytester.runpytest_subprocess("-p", "no:locust", "-p", "no:cacheprovider")
    result.assert_outcomes(skipped=2)
    assert result.ret == 1
    result.stdout.fnmatch_lines(
        ["*NOT CHECKED: all 2 selected test(s) were skipped (2 x no credentials for the target)*"]
    )
    allowed = pytester.runpytest_subprocess("-p", "no:locust", "-p", "no:cacheprovider", "--allow-all-skipped")
    assert allowed.ret == 0


def test_some_skipped_is_fine(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(ALL_SKIPPED + "\ndef test_c():\n    pass\n")
    result = pytester.runpytest_subprocess("-p", "no:locust", "-p", "no:cacheprovider")
    assert result.ret == 0


def test_naming_a_live_target_selects_its_live_tests(pytester: pytest.Pytester) -> None:
    """`pytest --target openai` runs the openai scenarios even under a project's `-m "not live"` addopts."""
    pytester.makeini('[pytest]\naddopts = -m "not live and not load"\n')
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.live
        def test_live(target):
            assert target == "openai"

        def test_offline():
            pass
        """
    )
    result = pytester.runpytest_subprocess("--target", "openai", "-p", "no:locust", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)
    plain = pytester.runpytest_subprocess("-p", "no:locust", "-p", "no:cacheprovider")
    plain.assert_outcomes(passed=1, deselected=1)


def test_one_set_of_emulator_defaults() -> None:
    """emulate, check and the plugin's fixture start from the same EmulatorConfig defaults, and say them."""
    from harness.emulator import EmulatorConfig, load_config
    from harness.emulator.config import describe

    cfg = load_config(None)
    assert cfg == EmulatorConfig()
    line = describe(cfg)
    for words in ("cold start 2 s", "idle timeout 5 s", "FlashBoot on", "warm pickup 1 s", "40 tokens/s"):
        assert words in line


def test_a_failed_recording_leaves_the_old_cassettes_and_clocks(tmp_path: Path) -> None:
    """`record` in rewrite mode deletes a module's cassettes before it records: when the recording fails, the old
    ones (and their clocks) come back as they were; when it passes, the new ones stay."""
    (tmp_path / "scenarios").mkdir()
    old = tmp_path / "cassettes" / "test_x"
    old.mkdir(parents=True)
    (old / "test_a.yaml").write_text("old cassette\n")
    (old / "test_a.clock.yaml").write_text("old clock\n")
    module = tmp_path / "scenarios" / "test_x.py"
    module.write_text(
        "from pathlib import Path\n"
        "def test_a():\n"
        "    Path('cassettes/test_x/test_a.yaml').write_text('half-recorded\\n')\n"
        "    Path('cassettes/test_x/test_a.clock.yaml').unlink()\n"
        "    assert False, 'the endpoint failed'\n"
    )
    failed = run_cli("record", "scenarios/test_x.py", cwd=tmp_path)
    assert failed.returncode == 1 and "the cassettes and clocks were left as they were" in failed.stdout
    assert (old / "test_a.yaml").read_text() == "old cassette\n" and (old / "test_a.clock.yaml").exists()
    module.write_text(module.read_text().replace("    assert False, 'the endpoint failed'\n", ""))
    passed = run_cli("record", "scenarios/test_x.py", cwd=tmp_path)
    assert passed.returncode == 0, passed.stdout + passed.stderr
    assert (old / "test_a.yaml").read_text() == "half-recorded\n" and not (old / "test_a.clock.yaml").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cassettes", "scenarios"]  # no backup left behind


@pytest.fixture
def full_disk(tmp_path: Path) -> Iterator[Path]:
    with tiny_tmpfs(tmp_path / "full") as place:
        yield place


@pytest.mark.system  # a whole check run (10 s): a slow hostile case
def test_a_full_disk_is_one_line_naming_the_folder(full_disk: Path, tmp_path: Path) -> None:
    config = tmp_path / "fast.yaml"
    config.write_text("emulator:\n  cold_start: 0.2\n  idle_timeout_s: 1\n  worker: {tokens_per_s: 1000}\n")
    run = full_disk / "run"
    proc = run_cli("check", "-q", "--config", str(config), "--no-suite", "--idle-timeout", "1", "--run-dir", str(run))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert f"error: cannot write to {run}: No space left on device" in proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr


def test_report_on_a_full_disk_is_one_line_and_leaves_no_torn_file(full_disk: Path) -> None:
    from harness.load.records import LoadRecord, RecordWriter

    run = full_disk / "run"
    with RecordWriter(run) as w:
        for _ in range(3):
            seq = w.next_seq()
            w.write(LoadRecord(process=w.pid, seq=seq, label="capacity", phase="c1", start_unix=1e9 + seq, e2e_s=0.1))
    with pytest.raises(OSError, match="No space left"), open(full_disk / "filler", "wb") as f:  # fill the rest
        while True:
            f.write(b"x" * 1024)
            f.flush()
    proc = run_cli("report", str(run))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert proc.stderr.strip() == f"error: cannot write to {run}: No space left on device"
    assert sorted(p.name for p in run.iterdir()) == sorted(p.name for p in run.glob("[rp]*-*.json*")), "torn file"


CTRL_C_WHILE_LOADING = """
import sys


class CtrlC:  # a Ctrl-C that lands while the command line's modules load
    def find_spec(self, name, path=None, target=None):
        if name == "harness.check.run":
            raise KeyboardInterrupt


sys.meta_path.insert(0, CtrlC())
from harness.__main__ import main

sys.exit(main(["--help"]))
"""


def test_ctrl_c_while_the_command_starts_is_one_line_and_130() -> None:
    proc = subprocess.run([sys.executable, "-c", CTRL_C_WHILE_LOADING], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 130 and proc.stderr == "interrupted (Ctrl-C) while starting\n", proc.stderr


def test_unsafe_run_model_code_reaches_the_suite_without_changing_our_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--unsafe-run-model-code is passed to the suite's subprocess in its environment, and only there."""
    from harness.check import stages
    from harness.conformance.isolation import OPT_IN_ENV
    from harness.conformance.suite import find_suite

    monkeypatch.delenv(OPT_IN_ENV, raising=False)
    seen: list[dict[str, str]] = []

    def fake_suite(cmd: list[str], cwd: Path, env: dict[str, str], log: Path) -> int:
        seen.append(env)
        return 5

    monkeypatch.setattr(stages, "_run_suite", fake_suite)
    for unsafe in (False, True):
        stages.suite_stage(
            Target("emulator"), tmp_path, find_suite(), "emulator", lambda _: None, unsafe_run_model_code=unsafe
        )
    assert [OPT_IN_ENV in env for env in seen] == [False, True] and OPT_IN_ENV not in os.environ
