"""devai-harness compare: the intervals (known values, coverage by simulation), the verdicts, the fair run
(pre-flight, warm-up, interleaving, shared seeds, a target dying mid-run), the CLI's one-line errors, and the
report in a headless browser. Offline: the emulator (scripted good answers) and the mock OpenAI server.
The same against real vLLM servers: tests/test_compare_real.py (system stage)."""

from __future__ import annotations

import json
import random
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest

from harness.conformance.compare import Attempt, Comparison, Settings, TargetInfo, run_compare, unit_seed
from harness.conformance.contenders import Contender, Reply, Sampling, parse_contender, unique
from harness.conformance.tasks import TaskCase, load_cases
from harness.conformance.verdicts import OVERALL, pair_rows, target_rows, worse_than
from harness.core.errors import ConfigError, ConnectError
from harness.core.intervals import mcnemar_exact, median_shift, paired_difference, wilson
from harness.core.shapes import Usage
from harness.emulator.mockopenai import create_mock_openai
from harness.emulator.serving import BackgroundServer

ROOT = Path(__file__).parent.parent
CASES = load_cases(ROOT / "scenarios" / "tasks")


# --- intervals ---------------------------------------------------------------------------------


def test_wilson_known_values() -> None:
    half = wilson(5, 10)
    assert (half.low, half.high) == (pytest.approx(0.2366, abs=1e-4), pytest.approx(0.7634, abs=1e-4))
    assert wilson(0, 10).low == 0.0 and wilson(0, 10).high == pytest.approx(0.2775, abs=1e-4)
    assert wilson(10, 10).low == pytest.approx(0.7225, abs=1e-4) and wilson(10, 10).high == 1.0
    assert wilson(0, 0).n == 0 and (wilson(0, 0).low, wilson(0, 0).high) == (0.0, 1.0)


def _coverage(trials: int, sample: object) -> float:
    hits = sum(bool(sample()) for _ in range(trials))  # type: ignore[operator]
    return hits / trials


def test_wilson_keeps_its_coverage_at_small_n() -> None:
    rng = random.Random(1)

    def covered() -> bool:
        k = sum(rng.random() < 0.3 for _ in range(20))
        i = wilson(k, 20)
        return i.low <= 0.3 <= i.high

    assert 0.92 <= _coverage(3000, covered) <= 0.99


def test_paired_difference_covers_the_true_difference() -> None:
    """Correlated pairs (a hard case is hard for both): cells both 0.4, A only 0.2, B only 0.1, neither 0.3."""
    rng = random.Random(2)

    def covered() -> bool:
        cells = [0, 0, 0, 0]
        for _ in range(40):
            r = rng.random()
            cells[0 if r < 0.4 else 1 if r < 0.6 else 2 if r < 0.7 else 3] += 1
        i = paired_difference(*cells)
        return i.low <= 0.1 <= i.high

    assert 0.92 <= _coverage(3000, covered) <= 0.99


def test_paired_difference_signs_and_bounds() -> None:
    assert paired_difference(10, 0, 0, 10).estimate == 0.0
    strong = paired_difference(0, 30, 0, 0)
    assert strong.above_zero and strong.high <= 1.0
    assert paired_difference(0, 0, 30, 0).below_zero
    assert paired_difference(0, 0, 0, 0).n == 0


def test_mcnemar_needs_six_discordant_pairs() -> None:
    assert mcnemar_exact(2, 0) == 0.5
    assert mcnemar_exact(5, 0) == pytest.approx(0.0625)
    assert mcnemar_exact(6, 0) == pytest.approx(0.03125)
    assert mcnemar_exact(0, 0) == 1.0 and mcnemar_exact(3, 3) == 1.0


def test_median_shift_interval_covers_the_median() -> None:
    rng = random.Random(3)

    def covered() -> bool:
        i = median_shift([rng.gauss(0.5, 1.0) for _ in range(25)])
        return i.low <= 0.5 <= i.high

    assert 0.94 <= _coverage(2000, covered) <= 0.995
    small = median_shift([1.0, 2.0, 3.0, 4.0, 5.0])
    assert small.estimate == 3.0 and small.low == float("-inf")  # under 6 pairs: nothing can be said


# --- verdicts over made-up attempts --------------------------------------------------------------


def _attempts(target: str, outcomes: Sequence[bool], e2e: float = 1.0) -> list[Attempt]:
    return [
        Attempt(target, "fix", f"c{i}", "python", "chat", 1, i, answered=True, passed=ok, e2e_s=e2e + i / 1000)
        for i, ok in enumerate(outcomes)
    ]


def _run(*groups: list[Attempt]) -> Comparison:
    names = list(dict.fromkeys(a.target for g in groups for a in g))
    infos = [TargetInfo(n, n, "openai", None, ("chat",)) for n in names]
    return Comparison(Settings(), infos, ("chat",), 1, attempts=[a for g in groups for a in g])


def test_two_discordant_pairs_are_no_verdict_twenty_are() -> None:
    few = pair_rows(_run(_attempts("a", [True, True]), _attempts("b", [False, False])))
    assert few[-1].task == OVERALL and few[-1].verdict == "no detectable difference at n=2"
    many = pair_rows(_run(_attempts("a", [True] * 20), _attempts("b", [False] * 20, e2e=0.5)))
    assert many[-1].verdict == "a better" and many[-1].speed_verdict == "b faster"
    assert worse_than(_run(_attempts("a", [True] * 20), _attempts("b", [False] * 20)), "b")
    assert not worse_than(_run(_attempts("a", [True] * 20), _attempts("b", [False] * 20)), "a")


def test_pairs_are_matched_by_unit_only() -> None:
    """A target that answered 5 of 20 units is compared on those 5, not on 20."""
    run = _run(_attempts("a", [True] * 20), _attempts("b", [True] * 5))
    assert pair_rows(run)[-1].pass_diff.n == 5
    rows = {r.target: r for r in target_rows(run, {"a": 3.6}) if r.task == OVERALL}
    assert rows["a"].n == 20 and rows["b"].n == 5
    assert rows["a"].usd_per_success == pytest.approx(sum(1 + i / 1000 for i in range(20)) / 1000 / 20)
    assert rows["b"].usd_per_success is None  # no price given for b


# --- the run, with contenders made up here --------------------------------------------------------


class Scripted(Contender):
    """Answers each case with its good answer (or an empty one); may die after some asks; records seeds."""

    kind = "openai"
    forms = ("chat",)

    def __init__(self, name: str, *, good: bool = True, dies_after: int | None = None, sick: str | None = None):
        super().__init__(name, None, "m")
        self.good, self.dies_after, self.sick = good, dies_after, sick
        self.asked: list[tuple[str, int | None]] = []

    async def start(self, cases: Sequence[TaskCase], timeout: float) -> None:
        pass

    async def preflight(self) -> str | None:
        return self.sick

    async def ask(self, case: TaskCase, form: str, sampling: Sampling, timeout: float) -> Reply:
        self.asked.append((case.test_id, sampling.seed))
        if self.dies_after is not None and len(self.asked) > self.dies_after:
            raise ConnectError("connection refused", method="POST", path="/v1/chat/completions")
        text = case.good_answer if self.good else ""
        return Reply(text, "stop", Usage(10, 20, "openai"), 0.01)


CHAT_FIX = [c for c in CASES if c.task in ("chat", "explain")]


async def test_run_is_interleaved_seeded_and_shares_sampling_seeds(tmp_path: Path) -> None:
    a, b = Scripted("a"), Scripted("b", good=False)
    run = await run_compare([a, b], CHAT_FIX, Settings(repeats=3, seed=7), tmp_path)
    measured = run.measured
    assert len(measured) == 2 * 3 * len(CHAT_FIX) and [x.warmup for x in run.attempts[:2]] == [True, True]
    firsts = {measured[i].target for i in range(0, len(measured), 2)}
    assert firsts == {"a", "b"}  # each unit's target order is shuffled, not always a then b
    assert sorted(a.asked) == sorted(b.asked)  # every unit asked of both with the same sampling seed
    again = await run_compare(
        [Scripted("a"), Scripted("b", good=False)], CHAT_FIX, Settings(repeats=3, seed=7), tmp_path
    )
    assert [(x.target, x.unit) for x in again.attempts] == [(x.target, x.unit) for x in run.attempts]
    lines = (tmp_path / "attempts.jsonl").read_text().splitlines()
    assert len(lines) == len(again.attempts)  # every attempt journalled as it happened
    assert (
        unit_seed(7, ("chat", "x", "chat", 1))
        == unit_seed(7, ("chat", "x", "chat", 1))
        != unit_seed(8, ("chat", "x", "chat", 1))
    )


async def test_unhealthy_target_is_excluded_not_averaged(tmp_path: Path) -> None:
    run = await run_compare(
        [Scripted("a"), Scripted("b"), Scripted("zombie", sick="zombie-worker: 2 worker(s) 'running' but no job")],
        CHAT_FIX,
        Settings(repeats=1),
        tmp_path,
    )
    assert run.compared == ["a", "b"] and not any(x.target == "zombie" for x in run.attempts)
    assert "zombie-worker" in (run.targets[2].excluded or "")


async def test_target_dying_mid_run_keeps_its_partial_results(tmp_path: Path) -> None:
    dying = Scripted("dying", dies_after=5)  # the warm-up, then 4 measured answers
    run = await run_compare([Scripted("a"), dying], CHAT_FIX, Settings(repeats=3), tmp_path)
    info = run.targets[1]
    assert info.stopped and "3 ConnectErrors in a row" in info.stopped
    answered = [x for x in run.measured if x.target == "dying" and x.answered]
    assert len(answered) == 4 and len(dying.asked) == 5 + 3  # stopped being asked after 3 failures
    overall = pair_rows(run)[-1]
    assert overall.pass_diff.n == len([x for x in run.measured if x.target == "dying"])


async def test_failed_warm_up_excludes_and_leaves_nothing_to_compare(tmp_path: Path) -> None:
    run = await run_compare([Scripted("a"), Scripted("b", dies_after=0)], CHAT_FIX, Settings(repeats=1), tmp_path)
    assert run.compared == ["a"] and not run.measured
    assert "warm-up request failed: ConnectError" in (run.targets[1].excluded or "")


# --- bad input ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "says"),
    [
        ("nameless", "write NAME=KIND"),
        ("a b=openai:http://x:1/v1", "write NAME=KIND"),
        ("a=ollama:http://x", "unknown kind 'ollama'"),
        ("a=openai:localhost:8000", "target a must be an http:// or https:// URL"),
        ("a=emulator:/no/such.yaml", "does not exist"),
    ],
)
def test_bad_target_specs_are_one_line(spec: str, says: str) -> None:
    with pytest.raises(ConfigError, match=says):
        parse_contender(spec)


def test_runpod_target_needs_a_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RUNPOD_API_KEY", raising=False)
    with pytest.raises(ConfigError, match=r"RUNPOD_API_KEY"):
        parse_contender("q=runpod:abc123")
    monkeypatch.setenv("RUNPOD_API_KEY", "k")
    assert parse_contender("q=runpod:abc123").forms == ("native",)
    assert parse_contender("q=runpod:abc123#Qwen/Qwen2.5").forms == ("native", "chat")


def test_names_must_differ_and_be_two() -> None:
    with pytest.raises(ConfigError, match="two targets are named 'a'"):
        unique([parse_contender("a=emulator"), parse_contender("a=emulator")])
    with pytest.raises(ConfigError, match="at least two targets"):
        unique([parse_contender("a=emulator")])


def _cli(*args: str, cwd: Path = ROOT, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "harness", "compare", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=timeout,
        check=False,
    )


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["a=emulator", "b=ollama:x"], "unknown kind 'ollama'"),
        (["a=emulator", "b=emulator", "--tasks", "chat,poetry"], "unknown task poetry"),
        (["a=emulator", "b=emulator", "--forms", "grpc"], "grpc is not a form"),
        (["a=emulator", "b=emulator", "--price-per-hour", "c=1"], "no target is named 'c'"),
        (["a=emulator", "b=emulator", "--price-per-hour", "cheap"], "expected PRICE or NAME=PRICE"),
        (["a=emulator", "b=emulator", "--fail-if-worse", "c"], "no target is named so"),
        (["a=runpod-local:http://127.0.0.1:9", "b=openai:http://127.0.0.1:9/v1"], "no input form in common"),
        (["a=emulator", "b=emulator", "--cases", "/no/such/dir"], "no such folder"),
        (["a=emulator", "b=emulator", "--cases", "{tmp}/broken"], "broken/x.yaml: invalid YAML (line 3)"),
        (["a=emulator", "b=emulator", "--cases", "{tmp}/empty"], "empty: no task case files (*.yaml) in it"),
    ],
)
def test_cli_bad_input_is_one_line_exit_2(args: list[str], says: str, tmp_path: Path) -> None:
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "x.yaml").write_text("task: fix\nid: [1, 2\n")
    (tmp_path / "empty").mkdir()
    got = _cli(*[a.replace("{tmp}", str(tmp_path)) for a in args], "--run-dir", str(tmp_path / "run"))
    assert got.returncode == 2, got.stderr
    assert got.stderr.count("\n") == 1 and says in got.stderr and "Traceback" not in got.stderr
    assert not (tmp_path / "run").exists()  # refused before anything was made


def test_cli_model_not_listed_and_unreachable_target(tmp_path: Path) -> None:
    with BackgroundServer(create_mock_openai()) as mock:
        got = _cli("a=emulator", f"b=openai:{mock.url}/v1#llama-9b", "--run-dir", str(tmp_path / "r1"), "-q")
    assert got.returncode == 2 and "does not list model 'llama-9b'" in got.stderr and got.stderr.count("\n") == 1
    got = _cli("a=emulator", "b=openai:http://127.0.0.1:9/v1", "--run-dir", str(tmp_path / "r2"), "-q")
    assert got.returncode == 1, got.stdout + got.stderr
    assert "b EXCLUDED" in got.stdout and "ConnectError" in got.stdout
    assert "NOT CHECKED: fewer than two healthy targets" in got.stdout


def test_cli_ranks_the_reference_above_a_canned_server_and_renders(tmp_path: Path) -> None:
    """The emulator's scripted good answers against the mock server (one canned answer for everything), on the
    chat and fix cases: the reference is detectably better; the report renders in a real browser."""
    with BackgroundServer(create_mock_openai()) as mock:
        got = _cli(
            "ref=emulator",
            f"canned=openai:{mock.url}/v1#normal",
            "--tasks",
            "chat,fix",
            "--repeats",
            "3",
            "--run-dir",
            str(tmp_path),
            "--price-per-hour",
            "2.49",
            "--fail-if-worse",
            "canned",
            "--unsafe-run-model-code",
        )
    assert got.returncode == 1, got.stdout + got.stderr  # --fail-if-worse canned: it is worse
    assert "FAIL  canned is worse than ref on pass rate" in got.stdout
    data = json.loads((tmp_path / "compare.json").read_text())
    assert data["verdict"] == "COMPARED" and data["forms"] == ["chat"]
    overall = {r["target"]: r for r in data["targets_rows"] if r["task"] == OVERALL}
    assert overall["ref"]["pass_rate"]["low"] > overall["canned"]["pass_rate"]["high"]  # intervals apart
    assert [p["verdict"] for p in data["pairs"] if p["task"] == OVERALL] == ["ref better"]
    assert sum(a["warmup"] for a in data["attempts"]) == 2
    if shutil.which("chromium") is None:
        pytest.skip("Debian chromium is not installed: the page was written but not rendered")
    shot = tmp_path / "shot.png"
    page = (tmp_path / "compare.html").as_uri()
    cmd = ["chromium", "--headless", "--no-sandbox", "--disable-gpu", f"--screenshot={shot}", "--window-size=1100,2600"]
    subprocess.run([*cmd, page], capture_output=True, timeout=120, check=False)
    png = shot.read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 40_000  # tables and two plots, not a blank page


def test_cli_null_test_two_identical_targets(tmp_path: Path) -> None:
    got = _cli("a=emulator", "b=emulator", "--tasks", "chat,explain", "--repeats", "3", "--run-dir", str(tmp_path))
    assert got.returncode == 0, got.stdout + got.stderr
    data = json.loads((tmp_path / "compare.json").read_text())
    overall = next(p for p in data["pairs"] if p["task"] == OVERALL)
    assert data["forms"] == ["native", "chat"]  # both targets offer both: 4 cases x 2 forms x 3 repeats
    assert overall["verdict"] == "no detectable difference at n=24"
    assert overall["pass_diff"]["low"] < 0 < overall["pass_diff"]["high"]


def test_pytest_form_devai_comparison_fixture(tmp_path: Path) -> None:
    """The plugin's fixture in a CI test: it runs once, writes its report, and feeds worse_than; without targets
    the test skips and the run says NOT CHECKED (exit 1)."""
    (tmp_path / "test_models.py").write_text(
        "from harness.conformance.verdicts import worse_than\n\n"
        "def test_candidate_not_worse(devai_comparison):\n"
        "    assert devai_comparison.compared == ['base', 'candidate']\n"
        "    assert not worse_than(devai_comparison, 'candidate')\n",
        encoding="utf-8",
    )
    base = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:locust", "test_models.py"]
    opts = ["--devai-compare", "base=emulator", "--devai-compare", "candidate=emulator", "--devai-compare-repeats", "1"]
    opts += ["--devai-compare-tasks", "chat", "--devai-compare-dir", str(tmp_path / "report")]
    got = subprocess.run([*base, *opts], capture_output=True, text=True, cwd=tmp_path, timeout=180, check=False)
    assert got.returncode == 0, got.stdout + got.stderr
    assert json.loads((tmp_path / "report" / "compare.json").read_text())["verdict"] == "COMPARED"
    got = subprocess.run(base, capture_output=True, text=True, cwd=tmp_path, timeout=180, check=False)
    assert got.returncode == 1 and "NOT CHECKED" in got.stdout and "--devai-compare" in got.stdout


def test_ctrl_c_writes_the_report_of_what_was_measured(tmp_path: Path) -> None:
    import signal
    import time

    cmd = [sys.executable, "-m", "harness", "compare", "a=emulator", "b=emulator", "--repeats", "50"]
    proc = subprocess.Popen([*cmd, "--run-dir", str(tmp_path), "-q"], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    journal, deadline = tmp_path / "attempts.jsonl", time.monotonic() + 120  # a loaded CI machine starts slowly
    while time.monotonic() < deadline and (not journal.exists() or len(journal.read_text().splitlines()) < 8):
        time.sleep(0.1)
    measured = len(journal.read_text().splitlines()) if journal.exists() else 0
    proc.send_signal(signal.SIGINT)
    try:
        out, _ = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
        pytest.fail(f"compare did not stop 60 s after Ctrl-C ({measured} attempts before it):\n{out[-3000:]}")
    assert proc.returncode == 130, f"{measured} attempts before Ctrl-C:\n{out}"
    data = json.loads((tmp_path / "compare.json").read_text())
    assert data["interrupted"] and len(data["attempts"]) >= 8 and "INTERRUPTED" in out
