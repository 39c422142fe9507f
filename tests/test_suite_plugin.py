"""The conformance-suite side of the plugin, black-box with pytester, and replay's network isolation."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

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
    # Each group in its own order: which plugin's group comes first is pytest-recording's affair (0.15 moved it).
    result.stdout.fnmatch_lines(["*--record-mode=*", '*Default to "none"*'])
    result.stdout.fnmatch_lines(
        [
            "devai-harness: endpoint conformance:",
            "*--target={replay,emulator,runpod,runpod-local,openai}*",
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
        result.stdout.fnmatch_lines(["*NOT CHECKED*", "*needs RUNPOD_API_KEY and RUNPOD_ENDPOINT_ID*"])
        assert result.ret == 1  # nothing ran: never a pass
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


ECHO_SECRET = "rp_BAREPROJECT0123456789SECRET"


def _echo_app() -> Any:
    """Replies with everything it was sent (so the secret is in the response too)."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    async def echo(request: Request) -> JSONResponse:
        body = (await request.body()).decode()
        return JSONResponse(
            {"headers": dict(request.headers), "query": str(request.url.query), "body": body},
            headers={"Set-Cookie": f"session={ECHO_SECRET}"},
        )

    return Starlette(routes=[Route("/{path:path}", echo, methods=["GET", "POST"])])


def test_a_bare_project_records_scrubbed_cassettes(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    """No conftest, no vcr_config, pytest-asyncio in its default strict mode: the plugin alone scrubs."""
    from harness.emulator.serving import BackgroundServer

    monkeypatch.setenv("RUNPOD_API_KEY", ECHO_SECRET)
    with BackgroundServer(_echo_app()) as srv:
        pytester.makepyfile(
            f"""
            import os
            import httpx
            import pytest

            @pytest.mark.asyncio
            @pytest.mark.vcr
            async def test_call():
                key = os.environ["RUNPOD_API_KEY"]
                async with httpx.AsyncClient() as http:
                    r = await http.post(
                        "{srv.url}/other/api?api_key=" + key + "&page=2",
                        headers={{"Authorization": "Bearer " + key, "X-Api-Key": key, "Cookie": "s=" + key}},
                        json={{"token": key, "text": "hi " + key}},
                    )
                assert r.status_code == 200
            """
        )
        result = pytester.runpytest_subprocess("--record-mode=once", *COMMON)
    result.assert_outcomes(passed=1)
    (cassette,) = pytester.path.rglob("*.yaml")
    text = cassette.read_text()
    assert ECHO_SECRET not in text
    for header in ("authorization", "x-api-key", "cookie"):
        assert f"{header}:" not in text.lower()
    assert "page=2" in text and "made_by" in text  # the rest is kept, and the cassette says how it was made


REWRITE_TEST = """
import pytest

pytestmark = pytest.mark.devai_cassette


@pytest.mark.emulator(cold_start=0.0)
async def test_job(runpod_client):
    job = await runpod_client.run({"prompt": "hi"}, timeout=30)
    assert job.status == "COMPLETED"
"""


def test_rewrite_replaces_cassettes_that_exist(pytester: pytest.Pytester) -> None:
    """`devai-harness record` (rewrite mode) on a tree that already has cassettes: the new cassette replaces the
    old one (it used to be appended to, and replay then asked the new job's status of the old job id)."""
    pytester.makeini("[pytest]\nasyncio_mode = auto\nasyncio_default_fixture_loop_scope = function\n")
    scenarios = pytester.mkpydir("scenarios")  # this project's own cassette layout, as `record` uses it
    (scenarios / "conftest.py").write_text((ROOT / "scenarios" / "conftest.py").read_text())
    (scenarios / "test_rewrite.py").write_text(REWRITE_TEST)
    cassette = pytester.path / "cassettes" / "test_rewrite" / "test_job.yaml"
    job_ids = []
    for _ in range(2):
        result = pytester.runpytest_subprocess("--target", "emulator", "--record-mode", "rewrite", *COMMON)
        result.assert_outcomes(passed=1)
        job_ids.append(set(re.findall(r"/status(?:-sync)?/([0-9a-f-]+-e1)", cassette.read_text())))
    assert len(job_ids[1]) == 1 and job_ids[1] != job_ids[0], "the old recording was replayed, not replaced"
    pytester.runpytest_subprocess(*COMMON).assert_outcomes(passed=1)  # replay


BOMB = "\n".join(
    ["a: &a [x, x, x, x, x, x, x, x, x]"]
    + [
        f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}]"
        for i in range(12)
    ]
    + ["interactions: [*m]"]
)
BOMBED_TEST = """
import pytest

@pytest.mark.devai_cassette
async def test_polled(runpod_client):
    await runpod_client.health()
"""


def test_a_cassette_alias_bomb_is_one_line_naming_the_file(pytester: pytest.Pytester) -> None:
    """A 400-byte cassette whose aliases expand to millions of nodes: refused by name, not a MemoryError."""
    pytester.makeini("[pytest]\nasyncio_mode = auto\nasyncio_default_fixture_loop_scope = function\n")
    pytester.makeconftest(
        "import pytest\n@pytest.fixture(scope='module')\ndef vcr_cassette_dir():\n    return 'cassettes'\n"
    )
    pytester.makepyfile(test_bombed=BOMBED_TEST)
    (pytester.path / "cassettes").mkdir()
    (pytester.path / "cassettes" / "test_polled.yaml").write_text(BOMB + "\n")
    (pytester.path / "cassettes" / "test_polled.clock.yaml").write_text("readings: [0.0, 0.1, 0.2]\n")
    assert len(BOMB) < 600
    result = pytester.runpytest_subprocess(*COMMON)
    out = result.stdout.str() + result.stderr.str()
    assert result.ret != 0 and "MemoryError" not in out
    assert re.search(r"cassette \S*test_polled\.yaml: .*(YAML|alias|nodes)", out), out[-3000:]
