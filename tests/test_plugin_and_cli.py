"""The pytest plugin black-box with pytester, and the CLI's commands."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.cli import main

pytest_plugins = ["pytester"]


def test_emulator_fixture_configured_by_marker(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nasyncio_mode = auto\nasyncio_default_fixture_loop_scope = function\n")
    pytester.makepyfile(
        """
        import pytest
        from harness import RunPodClient

        @pytest.mark.emulator(cold_start=0.0, max_workers=1, endpoint_id="my-endpoint")
        async def test_runs_a_job(emulator):
            assert emulator.endpoint_id == "my-endpoint"
            async with RunPodClient.of(emulator) as rp:
                job = await rp.run({"prompt": "hi"}, timeout=10)
            assert job.status == "COMPLETED"

        def test_defaults_are_runpods(emulator):
            cfg = emulator.config
            assert (cfg.max_workers, cfg.idle_timeout_s, cfg.cold_start.seconds) == (3, 5.0, 2.0)
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:locust", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)


def test_bad_marker_config_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.emulator(max_workers=-1)
        def test_x(emulator):
            pass
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:locust", "-p", "no:cacheprovider")
    result.stdout.fnmatch_lines(["*@pytest.mark.emulator*min_workers <= max_workers*"])
    assert result.ret != 0


def test_markers_are_registered(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest_subprocess("--markers", "-p", "no:locust")
    for name in ("live", "load", "slow", "gpu", "emulator"):
        result.stdout.fnmatch_lines([f"@pytest.mark.{name}*"])


def test_shapes_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    job = {
        "id": "j",
        "status": "COMPLETED",
        "output": [{"choices": [{"tokens": ["def f", "(): pass"]}], "usage": {"input": 3, "output": 2}}],
    }
    path = tmp_path / "job.json"
    path.write_text(json.dumps(job))
    assert main(["shapes", str(path)]) == 0
    out = capsys.readouterr().out
    assert "shape: vllm-native-tokens" in out and "def f(): pass" in out
    path.write_text(json.dumps({"id": "j", "status": "FAILED", "error": "CUDA out of memory"}))
    assert main(["shapes", str(path)]) == 1
    assert "worker error: CUDA out of memory" in capsys.readouterr().out


@pytest.mark.system  # the README's main job end to end (about 25 s on 2 cores): CI's system stage, not the offline one
def test_check_main_job_on_the_emulator(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "fast.yaml"
    config.write_text(
        "emulator:\n  cold_start: 0.5\n  idle_timeout_s: 1\n  idle_pickup_s: 0.3\n  worker: {tokens_per_s: 1000}\n"
    )
    report, run = tmp_path / "check.json", tmp_path / "run"
    args = ["check", "-q", "--config", str(config), "--json", str(report), "--run-dir", str(run)]
    assert main([*args, "--suite-target", "replay", "--idle-timeout", "1"]) == 0
    out = capsys.readouterr().out
    assert "PASS        suite: 54 passed" in out
    assert "verdict: PASS (3 PASS)" in out
    data = json.loads(report.read_text())
    shapes, latency = data["stages"][1], data["stages"][2]
    assert [c["ok"] for c in shapes["rows"]] == [True] * 11
    assert [row["phase"] for row in latency["rows"]] == ["cold", "hot", "hot", "warm", "warm"]
    assert all(row["confirmed"] for row in latency["rows"])
    assert latency["rows"][0]["delay_ms"] >= 500  # the cold start, as measured by the emulator
    assert data["requests"]["records"] == 5 and all(c["ok"] for c in data["requests"]["checks"])
    assert {"report.html", "report.json", "records.csv", "junit.xml", "suite.json", "suite-junit.xml"} <= {
        p.name for p in run.iterdir()
    }
    html = (run / "report.html").read_text()
    assert "<title>devai-harness check: the embedded RunPod emulator" in html and "Load report" not in html
    junit = (run / "junit.xml").read_text()
    assert junit.count("<testcase") >= 3 + 54 + 11  # every stage, every suite test, every shape case


def test_check_fails_loudly_when_the_worker_is_broken(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "broken.yaml"
    # every case expects its own era
    config.write_text("emulator:\n  cold_start: 0.0\n  idle_timeout_s: 1\n  worker: {era: era-b, tokens_per_s: 0}\n")
    run = tmp_path / "run"
    assert main(["check", "-q", "--config", str(config), "--timeout", "10", "--no-suite", "--run-dir", str(run)]) == 1
    assert "FAIL" in capsys.readouterr().out
