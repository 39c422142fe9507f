"""``devai-harness compare``: the same devai task cases, the same sampling settings, against several targets.

Fair by construction:

* every target must pass a pre-flight (its /health, the model listed, a zombie snapshot) and a warm-up request
  per input form before the measured run; a target that does not is reported as excluded, never averaged in;
* the measured units (case x form x repeat) are shuffled with a recorded seed and each unit goes to every target
  in its own shuffled order, so drift over time (a neighbour's load, a warming cache) falls on all targets alike;
* each unit carries one sampling seed shared by every target, so two identical deployments give identical answers;
* warm-up requests are kept, labelled, and reported apart;
* a target that fails mid-run (3 transport failures in a row) stops being asked; what it answered stays.

Every attempt is appended to ``attempts.jsonl`` as it happens, so an interrupted run loses nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import random
import signal
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from harness.conformance.contenders import Contender, Reply, Sampling
from harness.conformance.suite import find_suite
from harness.conformance.tasks import TASKS, Answer, TaskCase, grade, load_cases
from harness.core.errors import ConfigError, ConnectError, DiagnosedTimeout, HarnessError, RequestTimeout
from harness.core.scrub import scrub
from harness.reporting.files import output_error

__all__ = ["Attempt", "Comparison", "Settings", "TargetInfo", "check_inputs", "run_compare", "select_cases"]

Progress = Callable[[str], None]
GONE = (ConnectError, RequestTimeout, DiagnosedTimeout)  # the target itself is gone, not one answer
STOP_AFTER = 3


@dataclass(frozen=True, slots=True)
class Settings:
    repeats: int = 3
    temperature: float = 0.7
    max_tokens: int = 512
    seed: int = 0
    timeout: float = 120.0
    forms: tuple[str, ...] | None = None  # None: every form all targets offer


@dataclass(slots=True)
class Attempt:
    target: str
    task: str
    case: str
    language: str
    form: str
    repeat: int
    order: int  # position in the run: the interleaving, as it happened
    warmup: bool = False
    answered: bool = False
    passed: bool = False
    checks: dict[str, str] = field(default_factory=dict)
    error: str | None = None  # the cause: an exception class name
    unreachable: bool = False  # the error says the target itself is gone (connect, timeout, zombie)
    detail: str = ""
    e2e_s: float | None = None
    ttft_s: float | None = None
    output_tokens: int | None = None
    input_tokens: int | None = None  # the prompt as the server counted it: a broken chat template shows here
    answer_chars: int | None = None
    queue_ms: int | None = None
    execution_ms: int | None = None
    started_at: float = 0.0

    @property
    def unit(self) -> tuple[str, str, str, int]:
        return (self.task, self.case, self.form, self.repeat)

    @property
    def tokens_per_s(self) -> float | None:
        return self.output_tokens / self.e2e_s if self.output_tokens and self.e2e_s else None


@dataclass(slots=True)
class TargetInfo:
    name: str
    describe: str
    kind: str
    model: str | None
    forms: tuple[str, ...]
    excluded: str | None = None  # not healthy before the run: why
    stopped: str | None = None  # failed mid-run: when and why


@dataclass(slots=True)
class Comparison:
    settings: Settings
    targets: list[TargetInfo]
    forms: tuple[str, ...]
    cases: int
    attempts: list[Attempt] = field(default_factory=list)
    started_at: str = ""
    seconds: float = 0.0
    interrupted: bool = False

    @property
    def compared(self) -> list[str]:
        """Targets with measured results (a target stopped mid-run keeps its partial ones)."""
        return [t.name for t in self.targets if t.excluded is None]

    @property
    def measured(self) -> list[Attempt]:
        return [a for a in self.attempts if not a.warmup]

    def to_json(self) -> dict[str, Any]:
        return {
            "settings": asdict(self.settings),
            "targets": [asdict(t) for t in self.targets],
            "forms": list(self.forms),
            "cases": self.cases,
            "started_at": self.started_at,
            "seconds": round(self.seconds, 1),
            "interrupted": self.interrupted,
        }


def select_cases(folder: str | None, tasks: str | None) -> list[TaskCase]:
    """The task cases of ``folder`` (default: the suite's scenarios/tasks), only ``tasks`` (comma-separated) when
    given; ConfigError with one line for a missing folder, an unknown task, or a task with no case."""
    suite = find_suite()
    where = Path(folder) if folder else suite / "tasks" if suite else None
    if where is None:
        raise ConfigError("no task cases found: give --cases DIR (a folder of task YAML files)")
    if not where.is_dir():
        raise ConfigError(f"--cases {folder}: no such folder")
    cases = load_cases(where)
    if not cases:  # said before a run folder is made
        raise ConfigError(f"{where}: no task case files (*.yaml) in it")
    if not tasks:
        return cases
    wanted = [t.strip() for t in tasks.split(",") if t.strip()]
    unknown = [t for t in wanted if t not in TASKS]
    if unknown:
        raise ConfigError(f"--tasks: unknown task {', '.join(unknown)} (the tasks: {', '.join(TASKS)})")
    missing = [t for t in wanted if not any(c.task == t for c in cases)]
    if missing:
        raise ConfigError(f"--tasks: {where} has no case for {', '.join(missing)}")
    return [c for c in cases if c.task in wanted]


def unit_seed(run_seed: int, unit: tuple[str, str, str, int]) -> int:
    """One sampling seed per unit, the same for every target (stable across Python runs: not ``hash``)."""
    digest = hashlib.sha256(f"{run_seed}|{'|'.join(map(str, unit))}".encode()).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF


def _answer(reply: Reply, max_tokens: int) -> Answer:
    return Answer(reply.text, reply.finish_reason, reply.usage, max_tokens=max_tokens)


async def _attempt(c: Contender, case: TaskCase, form: str, repeat: int, order: int, s: Settings) -> Attempt:
    a = Attempt(c.name, case.task, case.id, case.language, form, repeat, order, started_at=time.time())
    sampling = Sampling(s.temperature, s.max_tokens, unit_seed(s.seed, a.unit))
    t0 = time.perf_counter()
    try:
        reply = await c.ask(case, form, sampling, s.timeout)
    except HarnessError as exc:
        a.error, a.detail, a.e2e_s = type(exc).__name__, str(exc).splitlines()[0][:300], time.perf_counter() - t0
        a.checks, a.unreachable = {"answer": f"fail: {a.error}"}, isinstance(exc, GONE)
        return a
    a.answered, a.e2e_s, a.ttft_s = True, reply.e2e_s, reply.ttft_s
    a.output_tokens = reply.usage.output_tokens if reply.usage else None
    a.input_tokens = reply.usage.input_tokens if reply.usage else None
    a.answer_chars, a.queue_ms, a.execution_ms = len(reply.text), reply.queue_ms, reply.execution_ms
    a.checks = grade(_answer(reply, s.max_tokens), case)
    verdicts = list(a.checks.values())
    a.passed = "pass" in verdicts and not any(v.startswith("fail") for v in verdicts)
    return a


class _Journal:
    """attempts.jsonl, one scrubbed line per attempt as it happens; a write that fails is OutputError naming the
    folder (a full disk stops the run once, with what was measured kept)."""

    def __init__(self, path: Path) -> None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._f = path.open("w", encoding="utf-8")
        except OSError as exc:
            raise output_error(path.parent, exc) from None
        self._folder = path.parent

    def write(self, a: Attempt) -> None:
        try:
            self._f.write(scrub(json.dumps(asdict(a))) + "\n")
            self._f.flush()
        except OSError as exc:
            raise output_error(self._folder, exc) from None

    def close(self) -> None:
        self._f.close()


async def _prepare(contenders: Sequence[Contender], cases: Sequence[TaskCase], s: Settings, show: Progress) -> None:
    for c in contenders:
        show(f"{c.name}: pre-flight ({c.describe()})")
        await c.start(cases, s.timeout)


async def _preflight(c: Contender) -> str | None:
    try:
        return await c.preflight()
    except ConfigError:
        raise
    except HarnessError as exc:
        return f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"


def _info(c: Contender, excluded: str | None = None) -> TargetInfo:
    return TargetInfo(c.name, c.describe(), c.kind, c.model, c.forms, excluded=excluded)


def _common_forms(infos: list[TargetInfo], wanted: tuple[str, ...] | None) -> tuple[str, ...]:
    live = [t for t in infos if t.excluded is None]
    common = [f for f in ("native", "chat") if all(f in t.forms for t in live) and (wanted is None or f in wanted)]
    if not common and live:
        offers = "; ".join(f"{t.name} offers {', '.join(t.forms)}" for t in live)
        hint = " (a RunPod target offers chat when its model is named: NAME=runpod:ID#MODEL)"
        given = " with --forms" if wanted else ""
        raise ConfigError(f"the targets have no input form in common{given}: {offers}{hint}")
    return tuple(common)


def check_inputs(contenders: Sequence[Contender], cases: Sequence[TaskCase], settings: Settings) -> None:
    """ConfigError for what can be told wrong before anything is asked (the command says it before it makes its
    run folder): no cases, no input form the targets share."""
    if not cases:
        raise ConfigError("no task cases to compare on")
    _common_forms([_info(c) for c in contenders], settings.forms)


async def run_compare(
    contenders: Sequence[Contender],
    cases: Sequence[TaskCase],
    settings: Settings,
    run_dir: Path,
    show: Progress = lambda _: None,
    on_start: Callable[[Comparison], None] = lambda _: None,
) -> Comparison:
    """Pre-flight, warm-up, then the interleaved measured run. ConfigError (bad input) before anything is asked.
    ``on_start`` receives the comparison as soon as it exists: a caller interrupted (Ctrl-C) still has it."""
    check_inputs(contenders, cases, settings)
    started = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    t0 = time.monotonic()
    ctrl_c = _CtrlC()
    try:
        await _prepare(contenders, cases, settings, show)
        infos = []
        for c in contenders:
            why = await _preflight(c)
            infos.append(_info(c, why))
            if why:
                show(f"{c.name}: EXCLUDED before the run: {why}")
        forms = _common_forms(infos, settings.forms)
        run = Comparison(settings, infos, forms, len(cases), started_at=started)
        on_start(run)
        journal = _Journal(run_dir / "attempts.jsonl")
        try:
            asking = _Asking(run, contenders, cases, journal, show, ctrl_c)
            await _warm_up(asking)
            if len(run.compared) >= 2:
                await _measure(asking)
        except (KeyboardInterrupt, asyncio.CancelledError):
            run.interrupted = True
            show("interrupted: the report holds what was measured")
        finally:
            journal.close()
    finally:
        ctrl_c.remove()
        for c in contenders:
            await c.close()
    run.seconds = time.monotonic() - t0
    return run


class _CtrlC:
    """Ctrl-C stops the run at the next attempt for certain: the task is cancelled at once, and because Python
    3.11's ``asyncio.wait_for`` can swallow a cancellation (gh-86296), a flag is also checked between attempts.
    A second Ctrl-C raises KeyboardInterrupt as usual."""

    def __init__(self) -> None:
        self.requested = False
        self._loop = asyncio.get_running_loop()
        self._task = asyncio.current_task()
        self._installed = False
        with contextlib.suppress(ValueError, RuntimeError, NotImplementedError):  # not the main thread; Windows
            self._loop.add_signal_handler(signal.SIGINT, self._on_sigint)
            self._installed = True

    def _on_sigint(self) -> None:
        self.requested = True
        self.remove()  # the next Ctrl-C is Python's KeyboardInterrupt
        if self._task is not None:
            self._task.cancel()

    def check(self) -> None:
        if self.requested:
            raise asyncio.CancelledError

    def remove(self) -> None:
        if self._installed:
            self._installed = False
            self._loop.remove_signal_handler(signal.SIGINT)


@dataclass(slots=True)
class _Asking:
    """One comparison being asked: every attempt is checked for Ctrl-C first, then kept and journaled."""

    run: Comparison
    contenders: Sequence[Contender]
    cases: Sequence[TaskCase]
    journal: _Journal
    show: Progress
    ctrl_c: _CtrlC

    async def ask(self, c: Contender, case: TaskCase, form: str, repeat: int, *, warmup: bool = False) -> Attempt:
        self.ctrl_c.check()
        a = await _attempt(c, case, form, repeat, len(self.run.attempts), self.run.settings)
        a.warmup = warmup
        self.run.attempts.append(a)
        self.journal.write(a)
        return a


async def _warm_up(asking: _Asking) -> None:
    """One request per target and form before measuring (the cold start, a lazy load): labelled, kept apart; a
    target whose warm-up fails is excluded."""
    run, show = asking.run, asking.show
    probe = next((c for c in asking.cases if c.task == "chat"), asking.cases[0])
    by_name = {t.name: t for t in run.targets}
    for c in asking.contenders:
        info = by_name[c.name]
        for form in run.forms:
            if info.excluded:
                break
            show(f"{c.name}: warm-up ({form})")
            a = await asking.ask(c, probe, form, 0, warmup=True)
            if a.error:
                info.excluded = f"the warm-up request failed: {a.error}: {a.detail}"
                show(f"{c.name}: EXCLUDED: {info.excluded}")


async def _measure(asking: _Asking) -> None:
    run, show = asking.run, asking.show
    s = run.settings
    rng = random.Random(s.seed)
    units = [(case, form, r) for r in range(1, s.repeats + 1) for case in asking.cases for form in run.forms]
    rng.shuffle(units)
    by_name = {t.name: t for t in run.targets}
    live = [c for c in asking.contenders if by_name[c.name].excluded is None]
    failures_in_a_row = dict.fromkeys(by_name, 0)
    total = len(units) * len(live)
    for i, (case, form, repeat) in enumerate(units, 1):
        for c in rng.sample(live, len(live)):
            info = by_name[c.name]
            if info.stopped:
                continue
            a = await asking.ask(c, case, form, repeat)
            failures_in_a_row[c.name] = failures_in_a_row[c.name] + 1 if a.unreachable else 0
            if failures_in_a_row[c.name] >= STOP_AFTER:
                info.stopped = f"stopped after unit {i} of {len(units)}: {STOP_AFTER} {a.error}s in a row ({a.detail})"
                show(f"{c.name}: {info.stopped}")
            verdict = "pass" if a.passed else (a.error or "fail")
            e2e = f"{a.e2e_s:.2f} s" if a.e2e_s is not None else "-"
            show(f"[{len(run.measured)}/{total}] {c.name} {case.test_id}[{form}]#{repeat}: {verdict} {e2e}")
        if all(by_name[c.name].stopped for c in live):
            break
