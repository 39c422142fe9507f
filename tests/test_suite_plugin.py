"""The conformance-suite side of the plugin, black-box with pytester, and replay's network isolation."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import vcr
from vcr.errors import CannotOverwriteExistingCassetteException

from harness.clients.runpod import RunPodClient
from harness.conformance.replay import REPLAY_BASE_URL, REPLAY_ENDPOINT, REPLAY_KEY, CassetteYAML, ReplayClock

pytest_plugins = ["pytester"]
ROOT = Path(__file__).parent.parent
COMMON = ("-p", "no:cacheprovider", "-p", "no:locust")


def test_options_in_one_group_with_safe_defaults(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest_subprocess("--help", *COMMON)
    result.stdout.fnmatch_lines(
        [
            "*--record-mode=*",
            '*Default to "none"*',
            "devai-harness: endpoint conformance:",
            "*--target={replay,emulator,runpod,openai}*",
            "*--harness-report=PATH*",
        ]
    )


LIVE_TEST = """
import pytest

@pytest.mark.devai_cassette
async def test_live(runpod_client):
    await runpod_client.health()
"""


def test_live_target_without_credentials_skips_with_the_reason(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("RUNPOD_API_KEY", raising=False)
    monkeypatch.delenv("RUNPOD_ENDPOINT_ID", raising=False)
    pytester.makeini("[pytest]\nasyncio_mode = auto\nasyncio_default_fixture_loop_scope = function\n")
    pytester.makepyfile(LIVE_TEST)
    for args in (["-m", "live"], ["--target", "runpod", "-m", "live"]):  # -m live alone means live RunPod
        result = pytester.runpytest_subprocess(*args, "-rs", *COMMON)
        result.assert_outcomes(skipped=1)
        result.stdout.fnmatch_lines(["*needs RUNPOD_API_KEY and RUNPOD_ENDPOINT_ID*"])
    result = pytester.runpytest_subprocess("--target", "runpod", "-m", "not live", *COMMON)
    result.assert_outcomes(deselected=1)  # on a live target, scenarios are live tests


def test_replay_never_records(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(LIVE_TEST)
    result = pytester.runpytest_subprocess("--record-mode", "once", *COMMON)
    result.stderr.fnmatch_lines(["*records from --target emulator or --target runpod*"])
    assert result.ret != 0


@pytest.mark.parametrize("workers", ["0", "2"])
def test_summary_table_and_report_files(pytester: pytest.Pytester, tmp_path: Path, workers: str) -> None:
    report = tmp_path / "out" / "report"
    result = pytester.runpytest_subprocess(
        str(ROOT / "scenarios" / "test_devai_tasks.py"),
        "-c",
        str(ROOT / "pyproject.toml"),
        "--rootdir",
        str(ROOT),
        "-n",
        workers,
        "-k",
        "fix-py-average-empty",
        "--harness-report",
        str(report),
        *COMMON,
    )
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(
        ["*devai-harness: 2 task run(s) on target replay*", "*fix*py-average-empty*native*7/7 ok*vllm-native-tokens*"]
    )
    rows = json.loads(report.with_suffix(".json").read_text())
    assert [r["form"] for r in rows] == ["native", "openai-route"]
    suite = ET.parse(report.with_suffix(".xml")).getroot()
    assert suite.get("tests") == "14" and suite.get("failures") == "0"


async def test_replay_cannot_reach_the_network() -> None:
    """An interaction that is not in the cassette fails instead of going out."""
    folder = ROOT / "cassettes" / "test_protocol"
    my_vcr = vcr.VCR(record_mode="none")
    my_vcr.register_serializer("harness", CassetteYAML)
    with my_vcr.use_cassette(str(folder / "test_polling_until_completed.yaml"), serializer="harness"):
        clock = ReplayClock(folder / "test_polling_until_completed.clock.yaml")
        async with RunPodClient(REPLAY_ENDPOINT, REPLAY_KEY, base_url=REPLAY_BASE_URL, clock=clock) as rp:
            with pytest.raises(CannotOverwriteExistingCassetteException):
                await rp.purge_queue()  # never recorded
