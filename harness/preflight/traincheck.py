"""``devai-harness train-check CONFIG``: catch field report 004's failures before a training pod bills.

The dataset source (can a pod download it?), its content (does every row fit the method, which method does it
fit, how long are the rows in tokens?), the checksum, the training script (does it stop — and stop billing — when
something fails? does its download fail on HTTP errors?), and the image (does it have the Python the script runs?
asked of the image itself when a Docker engine is reachable). Each check is PASS, WARN, FAIL or NOT CHECKED (with
why); the verdict is READY only when nothing failed and everything was checked. The report ends with the money at
stake: what a failure of this run would bill before anyone notices.
"""

from __future__ import annotations

import importlib.util
import math
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from harness.core.errors import ConfigError
from harness.core.verdict import WORDS, combine
from harness.preflight.datasource import Bounds, Download, LineTooLong, Source, classify, probe_url, stream_lines
from harness.preflight.report import CheckResult
from harness.preflight.trainconfig import TrainConfig, load_config
from harness.preflight.trainingdata import DataReport, check_rows, load_tokenizer, read_parquet, read_rows
from harness.preflight.trainscript import ScriptFacts, read_script, syntax_error

__all__ = ["TrainReport", "check_training"]

MARKS = {"pass": "PASS", "warn": "WARN", "fail": "FAIL", "skip": "NOT CHECKED"}
PROGRESS_EVERY_S = 5.0


@dataclass(slots=True)
class TrainReport:
    config: str
    checks: list[CheckResult] = field(default_factory=list)
    money: str = ""
    failure_cost: float | None = None  # $ a failed run bills before anyone notices

    def add(self, name: str, status: str, summary: str, details: list[str] | None = None) -> None:
        self.checks.append(CheckResult(name, status, summary, details or []))

    @property
    def verdict(self) -> str:
        """READY only when nothing failed and everything was checked (core.verdict.combine)."""
        combined = combine(c.verdict for c in self.checks)
        return WORDS["train-check"].get(combined, str(combined))

    def to_json(self) -> dict[str, Any]:
        return {
            "config": self.config,
            "verdict": self.verdict,
            "checks": [asdict(c) for c in self.checks],
            "money_at_stake": self.money,
            "failure_cost_usd": self.failure_cost,
        }

    def render(self) -> str:
        out = [f"train-check {self.config}"]
        for c in self.checks:
            out.append(f"  {MARKS[c.status]:11s} {c.name}: {c.summary}")
            out.extend(f"              {line}" for line in c.details)
        out.append(f"money at stake: {self.money}")
        counts = {s: sum(c.status == s for c in self.checks) for s in MARKS}
        said = ", ".join(f"{n} {MARKS[s]}" for s, n in counts.items() if n)
        out.append(f"verdict: {self.verdict} ({said})")
        return "\n".join(out)


def check_training(
    path: Path,
    *,
    allow_local_urls: bool = False,
    timeout: float = 10.0,
    progress: Callable[[str], None] | None = None,
    bounds: Bounds | None = None,
) -> TrainReport:
    cfg = load_config(path)
    if cfg.script is not None and not cfg.script.is_file():
        raise ConfigError(f"{path}: script {cfg.script} does not exist")
    report = TrainReport(str(path))
    source = classify(cfg.dataset, cfg.base)
    readable = _check_source(report, cfg, source, allow_local_urls, timeout)
    if readable:
        _check_content(report, cfg, source, Reading(timeout, allow_local_urls, bounds or Bounds(), progress))
    else:
        report.add("dataset content", "skip", "the dataset could not be read (see its source)")
    facts = _check_script(report, cfg, source)
    _check_image(report, cfg, facts)
    report.money, report.failure_cost = _money(cfg, facts)
    return report


# --- the dataset -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Reading:
    """How the content check reads the dataset."""

    timeout: float
    allow_local: bool
    bounds: Bounds
    progress: Callable[[str], None] | None


def _check_source(report: TrainReport, cfg: TrainConfig, source: Source, allow_local: bool, timeout: float) -> bool:
    """The source check; True when the content can be read (a URL that answered, or a local copy)."""
    if source.kind == "local":
        exists = Path(source.value).is_file()
        also = "; the content check reads the local copy" if exists else " (and it does not exist here either)"
        report.add(
            "dataset source",
            "fail",
            f"{cfg.dataset} is a local path: the pod cannot download it (field report 004){also}",
            ["serve it at a URL the pod can reach (object storage, a presigned URL, the Hugging Face Hub)"],
        )
        return exists
    if source.kind == "hub":
        report.add("dataset source", "skip", f"{cfg.dataset} looks like a Hugging Face dataset id: not checked here")
        return False
    if source.kind == "unsupported":
        report.add("dataset source", "skip", f"{source.value}:// URLs are not checked here (http and https are)")
        return False
    verdict = probe_url(source.value, allow_local=allow_local, timeout=timeout)
    report.add("dataset source", verdict.status, verdict.summary)
    return verdict.status != "fail"


def _rows(
    cfg: TrainConfig, source: Source, download: Download, timeout: float, allow_local: bool
) -> Iterator[tuple[int, Any]]:
    chunks = download.chunks(source, timeout=timeout, allow_local=allow_local)
    if cfg.format != "parquet":
        for n, row in read_rows(stream_lines(chunks, download.bounds.line_bytes), cfg.format):
            if n > download.bounds.max_rows:
                download.stopped = f"the first {download.bounds.max_rows} rows were read (--max-rows)"
                return
            yield n, row
        return
    with tempfile.NamedTemporaryFile(suffix=".parquet") as f:  # Parquet is read from its end: the whole file
        for chunk in chunks:
            f.write(chunk)
        f.flush()
        yield from read_parquet(Path(f.name))


def _with_progress(
    rows: Iterable[tuple[int, Any]], download: Download, progress: Callable[[str], None] | None
) -> Iterator[tuple[int, Any]]:
    last = time.monotonic()
    for n, row in rows:
        if progress is not None and time.monotonic() - last >= PROGRESS_EVERY_S:
            last = time.monotonic()
            progress(f"dataset: {n} rows, {download.size / 1e6:.0f} MB read")
        yield n, row


def _check_content(report: TrainReport, cfg: TrainConfig, source: Source, how: Reading) -> None:
    if cfg.format == "parquet" and not _has_pyarrow():
        report.add("dataset content", "skip", "a Parquet dataset and no pyarrow installed: `pip install pyarrow`")
        return
    download = Download(how.bounds)
    tokenizer = load_tokenizer([cfg.tokenizer and str(cfg.base / cfg.tokenizer), cfg.base_model])
    try:
        rows = _with_progress(_rows(cfg, source, download, how.timeout, how.allow_local), download, how.progress)
        data = check_rows(rows, cfg.method, max_seq_length=cfg.max_seq_length, tokenizer=tokenizer)
    except LineTooLong as exc:
        report.add("dataset content", "fail", f"after {download.size >> 20} MB: {exc}")
        return
    except Exception as exc:  # a download that broke off, an unreadable Parquet file: say which, do not crash
        report.add("dataset content", "skip", f"could not read the dataset: {type(exc).__name__}: {exc}")
        return
    if download.stopped is not None:
        report.add("dataset content", "warn", f"only part was checked: {download.stopped}; the rest was not read")
    _report_fit(report, data)
    _report_rows(report, data)
    if cfg.sha256:
        got = download.sha256.hexdigest()
        ok = got == cfg.sha256
        report.add("dataset checksum", "pass" if ok else "fail", f"sha256 {got}" + ("" if ok else f" != {cfg.sha256}"))


def _report_fit(report: TrainReport, data: DataReport) -> None:
    method = data.method.upper()
    readable = data.rows - data.empty - data.unreadable
    if data.rows == 0 or readable == 0:
        report.add("dataset fits the method", "fail", f"no rows to train on ({data.rows} lines read)")
        return
    if data.fitting == data.rows:
        report.add("dataset fits the method", "pass", f"all {data.rows} rows fit {method}")
        return
    details = list(data.first_errors)
    counted = [f"{n} x {kind}" for kind, n in data.error_counts.most_common()]
    details.append("errors by kind: " + "; ".join(counted))
    summary = f"{data.rows - data.fitting} of {data.rows} rows do not fit {method}"
    if others := data.fitting_methods:
        names = " or ".join(m.upper() for m in others)
        summary += f"; every row fits {names}: set method: {others[0]} (or convert the data)"
    report.add("dataset fits the method", "fail", summary, details)


def _report_rows(report: TrainReport, data: DataReport) -> None:
    if data.duplicates:
        report.add("dataset rows", "warn", f"{data.duplicates} duplicate row(s) of {data.rows}")
    status = "warn" if data.over_share > 0 else "pass"
    extra = [] if status == "pass" else ["rows over max_seq_length are truncated (or dropped) by the trainer"]
    report.add("dataset token lengths", status, data.length_summary(), extra)


def _has_pyarrow() -> bool:
    return importlib.util.find_spec("pyarrow") is not None


# --- the script and the image ------------------------------------------------------------------------


def _check_script(report: TrainReport, cfg: TrainConfig, source: Source) -> ScriptFacts | None:
    if cfg.script is None:
        report.add("training script", "skip", "no script in the config")
        return None
    text = cfg.script.read_text(encoding="utf-8", errors="replace")
    if (err := syntax_error(text)) is not None:
        report.add("script syntax (bash -n)", "fail", err)
    else:
        report.add("script syntax (bash -n)", "pass", "parses")
    facts = read_script(text)
    if facts.errexit:
        report.add("script stops on errors", "pass", "set -e" + (" and pipefail" if facts.pipefail else ""))
    else:
        report.add("script stops on errors", "fail", "no `set -euo pipefail`: a failing step does not stop the script")
    if not facts.trainers:
        report.add("trainer exit status", "warn", "no trainer command recognised (python FILE, accelerate, ...)")
    for line, why in facts.unchecked:
        report.add("trainer exit status", "fail", f"line {line.number}: {why}", [line.text[:160]])
    if facts.unchecked == [] and facts.trainers:
        report.add("trainer exit status", "pass", f"checked (line {facts.trainers[0].number})")
    for line, seconds in facts.failure_sleeps:
        how_long = "forever" if math.isinf(seconds) else f"{seconds:g} s"
        bills = ""
        if cfg.price_per_hour is not None and not math.isinf(seconds):
            bills = f" (≈ ${seconds / 3600 * cfg.price_per_hour * cfg.gpu_count:.2f} per failed run)"
        report.add(
            "no keep-alive after a failure",
            "fail",
            f"line {line.number} keeps the pod up {how_long} even after a failure{bills}: a failed run bills like "
            "a good one",
            [line.text[:160]],
        )
    _check_fetch(report, facts, source)
    _check_stop(report, facts)
    return facts


def _check_fetch(report: TrainReport, facts: ScriptFacts, source: Source) -> None:
    for line, why in facts.bad_fetches:
        report.add("dataset download", "fail", f"line {line.number}: {why}", [line.text[:160]])
    if facts.fetches and not facts.bad_fetches:
        report.add("dataset download", "pass", f"fails on HTTP errors (line {facts.fetches[0].number})")
    if not facts.fetches and source.kind == "url":
        report.add("dataset download", "warn", "the script downloads nothing itself: does the trainer load the URL?")


def _check_stop(report: TrainReport, facts: ScriptFacts) -> None:
    if facts.stops_pod_on_failure:
        report.add("pod stopped when the script ends", "pass", "also after a failure")
    elif facts.stops_pod:
        report.add("pod stopped when the script ends", "warn", "only after success: a failure leaves it billing")
    else:
        report.add(
            "pod stopped when the script ends",
            "warn",
            "never (runpodctl stop pod $RUNPOD_POD_ID in an EXIT trap): the pod bills until someone stops it",
        )


def _check_image(report: TrainReport, cfg: TrainConfig, facts: ScriptFacts | None) -> None:
    if cfg.image is None:
        report.add("image has Python", "skip", "no image in the config")
        return
    if facts is not None and not facts.needs_python:
        report.add("image has Python", "pass", "the script runs no Python")
        return
    from harness.emulator.processes import docker_available

    ok, why = docker_available()
    if not ok:
        if cfg.image.startswith(("nvidia/cuda:", "docker.io/nvidia/cuda:")):
            report.add("image has Python", "fail", f"{cfg.image}: nvidia/cuda images ship without Python")
        else:
            report.add("image has Python", "skip", f"unverified: cannot look inside {cfg.image}: {why}")
        return
    status, summary = _python_in_image(cfg.image)
    report.add("image has Python", status, summary)


def _python_in_image(image: str) -> tuple[str, str]:
    present = subprocess.run(["docker", "image", "inspect", image], capture_output=True, check=False, timeout=60)
    if present.returncode != 0:
        pulled = subprocess.run(["docker", "pull", image], capture_output=True, text=True, check=False, timeout=900)
        if pulled.returncode != 0:
            last = (pulled.stderr.strip().splitlines() or ["docker pull failed"])[-1]
            return "skip", f"unverified: cannot pull {image}: {last[:200]}"
    probe = "for p in python3 python; do command -v $p >/dev/null && exec $p --version; done; exit 127"
    cmd = ["docker", "run", "--rm", "--network", "none", "--entrypoint", "sh", image, "-c", probe]
    ran = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=300)
    if ran.returncode == 0:
        return "pass", f"{image}: {(ran.stdout + ran.stderr).strip()}"
    return "fail", f"{image} has no python3 or python on PATH: the script's python lines cannot run"


# --- money -------------------------------------------------------------------------------------------


def _money(cfg: TrainConfig, facts: ScriptFacts | None) -> tuple[str, float | None]:
    if cfg.price_per_hour is None:
        return "not estimated: no price_per_hour in the config", None
    rate = cfg.price_per_hour * cfg.gpu_count
    keep_alive = facts.keep_alive_on_failure_s / 3600 if facts is not None else 0.0
    if facts is not None and facts.stops_pod_on_failure and not math.isinf(keep_alive):
        hours, why = keep_alive, "the script stops the pod after a failure"
    elif math.isinf(keep_alive):
        hours, why = cfg.notice_hours, f"kept alive forever after a failure; noticed after {cfg.notice_hours:g} h"
    else:
        hours = max(keep_alive, cfg.notice_hours)
        why = f"the pod is not stopped after a failure; noticed after {cfg.notice_hours:g} h (notice_hours)"
    gpus = f"{cfg.gpu_count} x {cfg.gpu or 'GPU'} at ${cfg.price_per_hour:g}/h"
    cost = hours * rate
    return f"a failure here would bill ~{hours * cfg.gpu_count:.2f} GPU-hours ≈ ${cost:.2f} ({gpus}; {why})", cost


def progress_to_stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)
