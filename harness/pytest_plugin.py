"""The devai-harness pytest plugin (registered by the ``pytest11`` entry point).

Options (group "devai-harness"; precedence: default < environment < command line), markers, and fixtures:

* ``emulator``: a RunPod emulator on 127.0.0.1 for one test, configured by
  ``@pytest.mark.emulator(cold_start=0.1, faults={...})`` (EmulatorConfig keys; a config path may come first);
* ``mock_openai``: the loopback OpenAI-compatible mock (harness.emulator.mockopenai),
  ``@pytest.mark.mock_openai(**MockConfig)``;
* ``openai_target``: a real OpenAI-compatible server from ``--openai-base-url`` / OPENAI_BASE_URL; tests that
  use it are skipped, with the reason, when none is given;
* ``target`` and ``runpod_client``: the endpoint a scenario talks to (``--target``): ``replay`` (default;
  cassettes, nothing else reachable), ``emulator`` (the embedded emulator; with ``--record-mode`` it records
  cassettes), ``runpod`` (live: RUNPOD_API_KEY, RUNPOD_ENDPOINT_ID), ``runpod-local`` (runpod-python's
  ``--rp_serve_api`` server: --base-url or RUNPOD_LOCAL_URL), ``openai`` (OpenAI-compatible only). Naming a
  live target (runpod, runpod-local, openai) selects the live tests: ``-m "not live"`` from the project's
  addopts no longer hides them;
* ``devai_comparison``: ``devai-harness compare`` over the ``--devai-compare NAME=SPEC`` targets, run once per
  session, its report written (``--devai-compare-dir``); assert on it with
  :func:`harness.conformance.verdicts.worse_than` (skipped, saying why, without targets);
* ``harness_results``: rows for the terminal summary table and ``--harness-report PATH`` (.json and .xml).

A run in which every selected test was skipped checked nothing: the plugin says NOT CHECKED, with the most common
reasons, and makes the exit status 1 (``--allow-all-skipped`` turns that off).

Scenario modules mark themselves ``@pytest.mark.devai_cassette``; the plugin turns that into pytest-recording's
``vcr`` marker when replaying or recording (``--record-mode`` is pytest-recording's, default ``none``). Every
cassette recorded in a session with this plugin is scrubbed by the plugin itself (its
``pytest_recording_configure`` hook; :func:`harness.conformance.replay.configure_vcr`): a project needs no
conftest of its own for that.
"""

from __future__ import annotations

import os
import re
from collections import Counter
from collections.abc import AsyncIterator, Generator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from harness.targets import LIVE, TARGET_KINDS, Target, resolve_target

if TYPE_CHECKING:
    from harness.clients.runpod import RunPodClient
    from harness.conformance.compare import Comparison
    from harness.conformance.results import Results
    from harness.emulator.serving import BackgroundServer, Emulator

MARKERS = {
    "live": "talks to a real endpoint (RunPod or OpenAI-compatible); skipped without credentials",
    "load": "a load test (locust); run on its own with -m load",
    "slow": "takes more than a few seconds",
    "gpu": "needs an NVIDIA GPU",
    "emulator": "emulator(config=None, **overrides): configure the `emulator` fixture (EmulatorConfig keys)",
    "mock_openai": "mock_openai(**config): configure the `mock_openai` fixture (MockConfig keys)",
    "devai_cassette": "the test replays (or records) a cassette under cassettes/<module>/",
    "runpod_client": "runpod_client(**kwargs): extra RunPodClient arguments for the `runpod_client` fixture",
}
TARGETS = ("replay", *TARGET_KINDS)
LIVE_TARGETS = LIVE
RESULTS = pytest.StashKey["Results"]()
VLLM_VERSION = pytest.StashKey[str | None]()


@dataclass(frozen=True, slots=True)
class OpenAITarget:
    base_url: str
    api_key: str | None
    model: str

    def __repr__(self) -> str:
        return f"OpenAITarget(base_url={self.base_url!r}, model={self.model!r}, api_key=<redacted>)"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("devai-harness", "devai-harness: endpoint conformance")
    group.addoption(
        "--openai-base-url",
        default=None,
        help="OpenAI-compatible base URL for live streaming checks (env OPENAI_BASE_URL)",
    )
    group.addoption("--model", default=None, help="model to request (env OPENAI_MODEL; default: the first listed)")
    group.addoption("--ttft-budget", type=float, default=10.0, help="seconds to the first content (default 10)")
    group.addoption(
        "--keepalive-max-gap",
        type=float,
        default=15.0,
        help="most seconds of silence allowed before the first content (default 15)",
    )
    group.addoption("--stall-timeout", type=float, default=30.0, help="seconds without a byte = stalled (default 30)")
    group.addoption(
        "--target",
        choices=TARGETS,
        default=None,
        help="replay (default: cassettes) | emulator | runpod | runpod-local | openai (env DEVAI_TARGET)",
    )
    group.addoption(
        "--base-url",
        default=None,
        help="the target's base URL: runpod-local (env RUNPOD_LOCAL_URL, default http://127.0.0.1:8000), "
        "runpod (env RUNPOD_ENDPOINT_BASE_URL), openai (same as --openai-base-url)",
    )
    group.addoption(
        "--allow-all-skipped",
        action="store_true",
        help="exit 0 even when every selected test was skipped (default: that is NOT CHECKED, exit 1)",
    )
    group.addoption(
        "--endpoint-id", default=None, help="RunPod endpoint id for --target runpod (env RUNPOD_ENDPOINT_ID)"
    )
    group.addoption(
        "--harness-report", default=None, metavar="PATH", help="write the results as PATH.json and PATH.xml (JUnit)"
    )
    group.addoption(
        "--unsafe-run-model-code",
        action="store_true",
        help="run model-written code even where no sandbox (bubblewrap, a container) is available",
    )
    group.addoption(
        "--sandbox-timeout",
        type=float,
        default=None,
        metavar="S",
        help="cap each sandboxed run of model-written code at S seconds (default: each case's own, 10 s)",
    )
    group.addoption(
        "--devai-compare",
        action="append",
        default=None,
        metavar="NAME=KIND:WHERE[#MODEL]",
        help="a target for the `devai_comparison` fixture (repeat it; see `devai-harness compare`)",
    )
    group.addoption("--devai-compare-repeats", type=int, default=3, help="repeats per case for devai_comparison")
    group.addoption("--devai-compare-dir", default=None, help="where devai_comparison writes its report")
    group.addoption("--devai-compare-tasks", default=None, help="only these tasks, comma-separated (default: all)")


@pytest.hookimpl(optionalhook=True)  # pytest-recording's hook: absent when that plugin is not installed
def pytest_recording_configure(config: pytest.Config, vcr: object) -> None:
    """Every cassette: our format and scrubbing, whatever the project's vcr_config says."""
    from harness.conformance.replay import configure_vcr

    configure_vcr(vcr)


def pytest_configure(config: pytest.Config) -> None:
    from harness.conformance.results import Results
    from harness.core.scrub import register, secrets_in

    for name, doc in MARKERS.items():
        config.addinivalue_line("markers", f"{name}: {doc}")
    config.stash[RESULTS] = Results()
    register(*secrets_in(os.environ))  # a key an endpoint echoes is masked in reports, JUnit and cassettes
    from harness.conformance.isolation import OPT_IN_ENV, TIMEOUT_ENV

    if config.getoption("--unsafe-run-model-code", False):
        os.environ[OPT_IN_ENV] = "1"
    if (cap := config.getoption("--sandbox-timeout", None)) is not None:
        os.environ[TIMEOUT_ENV] = str(cap)
    if url := os.environ.get("DEVAI_VLLM_URL"):  # asked here, before any cassette records: for their metadata
        from harness.emulator.relay import server_version

        config.stash[VLLM_VERSION] = server_version(url)
    expr = str(config.getoption("markexpr", "") or "")
    if config.getoption("--target", None) in LIVE_TARGETS and expr == _addopts_markexpr(config):
        # A live target was named: its live tests are the point, whatever the project's addopts hide.
        # An -m given on the command line is the user's own and stays.
        config.option.markexpr = _without_not_live(expr)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """A failing assertion may quote what the endpoint sent, key and all: the report (terminal, JUnit, xdist's
    wire) carries the scrubbed text."""
    from harness.core.scrub import scrub

    report = yield
    if report.longrepr is not None:
        text = str(report.longrepr)
        if (clean := scrub(text)) != text:
            report.longrepr = clean
    report.sections = [(name, scrub(body)) for name, body in report.sections]
    return report


def _addopts_markexpr(config: pytest.Config) -> str | None:
    opts = [str(o) for o in config.getini("addopts")]
    values = [opts[i + 1] for i, o in enumerate(opts[:-1]) if o == "-m"]
    return values[-1] if values else None


def _without_not_live(expr: str) -> str:
    for pattern in (r"\bnot live and ", r" and not live\b", r"\bnot live\b"):
        expr = re.sub(pattern, "", expr)
    return expr.strip()


def _target(config: pytest.Config) -> str:
    """--target > DEVAI_TARGET > runpod when ``-m live`` selects live tests > replay."""
    live = "live" in str(config.getoption("markexpr", "")).replace("not live", "")
    value = config.getoption("--target") or os.environ.get("DEVAI_TARGET") or ("runpod" if live else "replay")
    if value not in TARGETS:
        raise pytest.UsageError(f"DEVAI_TARGET={value!r}: expected one of {', '.join(TARGETS)}")
    return str(value)


def _recording(config: pytest.Config) -> bool:
    return (config.getoption("--record-mode", default="none") or "none") != "none"


@pytest.hookimpl(tryfirst=True)  # before -m deselects: a scenario on a live target is a live test
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    target = _target(config)
    ours = [item for item in items if item.get_closest_marker("devai_cassette")]
    if ours and _recording(config) and target not in ("emulator", "runpod"):  # other projects' cassettes: theirs
        raise pytest.UsageError("--record-mode records from --target emulator or --target runpod, not " + target)
    for item in items:
        if item.get_closest_marker("devai_cassette") and (target == "replay" or _recording(config)):
            item.add_marker(pytest.mark.vcr)
        if item.get_closest_marker("devai_cassette") and target in ("runpod", "runpod-local"):
            item.add_marker(pytest.mark.live)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Under pytest-xdist, a worker hands its rows to the controller, which prints and reports them. On the
    controller, a run where everything was skipped is NOT CHECKED: exit 1."""
    output = getattr(session.config, "workeroutput", None)
    if output is not None:
        from dataclasses import asdict

        output["devai_rows"] = [asdict(r) for r in session.config.stash[RESULTS].rows]
        return
    if exitstatus == 0 and _not_checked(session.config) is not None:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def _not_checked(config: pytest.Config) -> str | None:
    """Why nothing was checked (every selected test skipped), or None."""
    if config.getoption("--allow-all-skipped", False):
        return None
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    stats = getattr(reporter, "stats", {})
    ran = sum(len(stats.get(k, [])) for k in ("passed", "failed", "error", "xfailed", "xpassed"))
    skipped = [r for r in stats.get("skipped", []) if getattr(r, "when", "") in ("setup", "call")]
    if ran or not skipped:
        return None
    reasons = Counter(
        str(r.longrepr[-1]).removeprefix("Skipped: ") if isinstance(r.longrepr, tuple) else "" for r in skipped
    )
    top = "; ".join(f"{n} x {reason}" for reason, n in reasons.most_common(2))
    return f"NOT CHECKED: all {len(skipped)} selected test(s) were skipped ({top})"


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: object, error: object) -> None:
    from harness.conformance.results import ResultRow

    rows = getattr(node, "workeroutput", {}).get("devai_rows", [])
    config: pytest.Config = node.config  # type: ignore[attr-defined]
    config.stash[RESULTS].rows.extend(ResultRow(**r) for r in rows)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    why = _not_checked(config) if getattr(config, "workeroutput", None) is None else None
    if why is not None:
        terminalreporter.write_sep("=", why, red=True)
    results = config.stash.get(RESULTS, None)
    if results is None or not results.rows:
        return
    terminalreporter.write_sep("=", f"devai-harness: {len(results.rows)} task run(s) on target {_target(config)}")
    terminalreporter.write_line(results.table())
    from harness.conformance.sandbox import sandbox_in_use

    terminalreporter.write_line(f"model-written code ran in: {sandbox_in_use()}")
    path = config.getoption("--harness-report")
    if path:
        json_path, xml_path = results.write(path)
        terminalreporter.write_line(f"report: {json_path} and {xml_path}")


@pytest.fixture
def harness_results(request: pytest.FixtureRequest) -> Results:
    return request.config.stash[RESULTS]


@pytest.fixture
def target(request: pytest.FixtureRequest) -> str:
    return _target(request.config)


@pytest.fixture
async def runpod_client(request: pytest.FixtureRequest, target: str) -> AsyncIterator[RunPodClient]:
    """A RunPodClient for the chosen target. Replay hands back the recorded clock, so polling decisions
    (and timeouts, and zombie verdicts) are the recorded ones, in milliseconds."""
    from harness.clients.runpod import RunPodClient
    from harness.conformance.replay import (
        REPLAY_BASE_URL,
        REPLAY_ENDPOINT,
        REPLAY_KEY,
        CassetteYAML,
        RecordingClock,
        ReplayClock,
    )
    from harness.core.clock import Clock, SystemClock

    marker = request.node.get_closest_marker("runpod_client")
    kwargs = dict(marker.kwargs) if marker else {}
    clock_path = None
    if request.node.get_closest_marker("devai_cassette"):
        folder = Path(request.getfixturevalue("vcr_cassette_dir"))
        clock_path = folder / f"{request.getfixturevalue('default_cassette_name')}.clock.yaml"
    if target == "openai":
        pytest.skip("--target openai has no RunPod job API: RunPod protocol scenarios do not apply")
    clock: Clock
    if target == "replay":
        if clock_path is None or not clock_path.exists():
            pytest.fail(f"no cassette recorded for this test ({clock_path}): run `devai-harness record`", pytrace=False)
        clock = ReplayClock(clock_path)
        client = RunPodClient(REPLAY_ENDPOINT, REPLAY_KEY, base_url=REPLAY_BASE_URL, clock=clock, **kwargs)
    elif target == "emulator":
        emu = request.getfixturevalue("emulator")
        clock = RecordingClock() if _recording(request.config) else SystemClock()
        client = RunPodClient.of(emu, clock=clock, **kwargs)
        cfg = emu.config
        CassetteYAML.meta = {
            "source": "devai-harness emulator (made by us, not a live endpoint)",
            "emulator": {
                "handler": cfg.handler,
                "cold_start_s": cfg.cold_start.seconds,
                "max_workers": cfg.max_workers,
                "faults": str(cfg.faults),
                "worker_era": cfg.worker.get("era", "native"),
            },
        }
        if cfg.worker.get("engine") == "vllm":  # the worker relayed a real server: say which
            version = request.config.stash.get(VLLM_VERSION, None)
            CassetteYAML.meta["emulator"]["upstream"] = (
                f"a real vLLM {version or '(version unknown)'} OpenAI server on loopback, relayed as worker-vllm does "
                f"(openai_era {cfg.worker.get('openai_era', 'E')}); its model was built by .ci/tiny_model.py "
                "(random weights, a tokenizer trained on the spot)"
            )
    elif target == "runpod-local":
        clock = SystemClock()
        client = RunPodClient.local(_live_target(request.config, target).base_url or "", clock=clock, **kwargs)
    else:
        live = _live_target(request.config, "runpod")
        clock = RecordingClock() if _recording(request.config) else SystemClock()
        CassetteYAML.meta = {"source": "live RunPod endpoint (scrubbed)"}
        kwargs.setdefault("base_url", live.base_url)
        client = RunPodClient(live.endpoint_id or "", live.api_key(), clock=clock, **kwargs)
    async with client:
        yield client
    if isinstance(clock, RecordingClock) and clock_path is not None:
        clock.save(clock_path)


def _live_target(config: pytest.Config, kind: str) -> Target:
    """The live target the options and the environment name, resolved as ``devai-harness check`` resolves it
    (harness.targets). Missing credentials skip the test, saying so; a malformed value is a usage error."""
    from harness.core.errors import ConfigError

    if kind == "runpod" and not (
        os.environ.get("RUNPOD_API_KEY") and (config.getoption("--endpoint-id") or os.environ.get("RUNPOD_ENDPOINT_ID"))
    ):
        pytest.skip("live RunPod target needs RUNPOD_API_KEY and RUNPOD_ENDPOINT_ID (or --endpoint-id)")
    try:
        return resolve_target(
            kind, base_url=config.getoption("--base-url"), endpoint_id=config.getoption("--endpoint-id")
        )
    except ConfigError as exc:
        raise pytest.UsageError(f"--target {kind}: {exc}") from None


@pytest.fixture
def emulator(request: pytest.FixtureRequest) -> Iterator[Emulator]:
    """A running emulator (uvicorn on a background thread, a free loopback port), stopped after the test."""
    from harness.core.errors import ConfigError
    from harness.emulator import Emulator

    marker = request.node.get_closest_marker("emulator")
    args, kwargs = (marker.args, dict(marker.kwargs)) if marker else ((), {})
    if len(args) > 1:
        raise pytest.UsageError("@pytest.mark.emulator takes at most one positional argument (a config)")
    source = args[0] if args else kwargs.pop("config", None)
    try:
        emu = Emulator(source, **kwargs)
    except ConfigError as exc:
        raise pytest.UsageError(f"@pytest.mark.emulator: {exc}") from None
    with emu:
        yield emu


@pytest.fixture
def mock_openai(request: pytest.FixtureRequest) -> Iterator[BackgroundServer]:
    """The mock OpenAI-compatible server on a free loopback port; ``.url``; ``.app.state.sent`` logs chunks."""
    from harness.emulator.mockopenai import MockConfig, create_mock_openai
    from harness.emulator.serving import BackgroundServer

    marker = request.node.get_closest_marker("mock_openai")
    try:
        config = MockConfig(**(marker.kwargs if marker else {}))
    except TypeError as exc:
        raise pytest.UsageError(f"@pytest.mark.mock_openai: {exc}") from None
    with BackgroundServer(create_mock_openai(config)) as server:
        yield server


@pytest.fixture
def openai_target(request: pytest.FixtureRequest) -> OpenAITarget:
    """A live OpenAI-compatible server: --openai-base-url / --base-url / OPENAI_BASE_URL, or — on target runpod —
    the endpoint's own /openai/v1 route. Skips (saying why) when there is none."""
    config = request.config
    model = config.getoption("--model") or os.environ.get("OPENAI_MODEL") or ""
    if _target(config) == "runpod":
        live = _live_target(config, "runpod")
        route = f"{(live.base_url or '').rstrip('/')}/{live.endpoint_id}/openai/v1"
        return OpenAITarget(base_url=route, api_key=live.api_key(), model=model)
    base = (
        config.getoption("--openai-base-url")
        or (config.getoption("--base-url") if _target(config) == "openai" else None)
        or os.environ.get("OPENAI_BASE_URL")
    )
    if not base and _target(config) == "runpod-local":
        pytest.skip("runpod-python's local test server has no OpenAI-compatible route (--openai-base-url adds one)")
    if not base:
        pytest.skip("no OpenAI-compatible server: pass --openai-base-url or set OPENAI_BASE_URL")
    return OpenAITarget(base_url=base.rstrip("/"), api_key=os.environ.get("OPENAI_API_KEY"), model=model)


@pytest.fixture(scope="session")
def devai_comparison(request: pytest.FixtureRequest) -> Comparison:
    """``devai-harness compare`` in a CI test: ``assert not worse_than(devai_comparison, "candidate")``."""
    import asyncio

    from harness.conformance.compare import Settings, run_compare, select_cases
    from harness.conformance.comparereport import summarize, write_comparison
    from harness.conformance.contenders import parse_contender, unique
    from harness.core.errors import ConfigError

    config = request.config
    specs = config.getoption("--devai-compare")
    if not specs:
        pytest.skip("no targets to compare: pass --devai-compare NAME=KIND:WHERE[#MODEL] (twice or more)")
    try:
        contenders = [parse_contender(s) for s in specs]
        unique(contenders)
        settings = Settings(repeats=config.getoption("--devai-compare-repeats"))
        out = Path(config.getoption("--devai-compare-dir") or "runs/compare-pytest")
        cases = select_cases(None, config.getoption("--devai-compare-tasks"))
        run = asyncio.run(run_compare(contenders, cases, settings, out))
    except ConfigError as exc:
        raise pytest.UsageError(f"--devai-compare: {exc}") from None
    write_comparison(run, out, {}, *summarize(run, {}))
    return run
