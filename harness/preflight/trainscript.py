"""Will the training script stop — and stop billing — when something fails? Read, not run (``bash -n`` only).

Field report 004's generated script had no error handling and slept 3,600 s whatever happened, so a failed run
cost as much as a good one. What is read here, line by line (continuations joined, comments dropped):

* errexit (``set -e``, ``set -o errexit``, ``#!/bin/bash -e``) and pipefail;
* the trainer's line (python with a script or module, accelerate, torchrun, deepspeed, axolotl, ...): is its exit
  status checked (errexit, ``if``, ``||``, ``$?``), or swallowed (``|| true``, a pipe into tee without pipefail)?
* long sleeps and keep-alives (``sleep N`` of a minute or more, ``sleep infinity``, ``tail -f /dev/null``): do
  they run after a failure (in a trap, after ``||``, or anywhere in a script without errexit)?
* the dataset download: ``curl`` without ``--fail`` saves an HTTP error page as the dataset; ``wget``/``curl`` of a
  local path cannot work on a pod;
* whether the script stops its pod (``runpodctl stop|remove pod``, the API's podStop/podTerminate) when it ends.

Heuristics over shell text, not a shell parser: each finding quotes its line, so a wrong one is easy to judge.
"""

from __future__ import annotations

import math
import re
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["LONG_SLEEP_S", "ScriptFacts", "read_script", "syntax_error"]

LONG_SLEEP_S = 60.0
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
_ERREXIT = re.compile(r"^set\s+(?:-\w*e\w*\b|.*-o\s+errexit\b)")
_PIPEFAIL = re.compile(r"^set\s.*\bpipefail\b")
_TRAINER = re.compile(
    r"(?:^|[;&|]\s*|\bif\s+!?\s*|\bthen\s+|\bexec\s+)"
    r"(?:python3?(?:\.\d+)?\s+(?!-m\s+pip\b|-c\b|--version\b|-V\b)\S+|accelerate\s+launch|torchrun|deepspeed"
    r"|axolotl|llamafactory-cli\s+train|tune\s+run|trl\s+\w+)"
)
_PYTHON = re.compile(r"(?:^|[\s;&|(])(?:python3?(?:\.\d+)?|pip3?|accelerate|torchrun|deepspeed|axolotl)\b")
_SLEEP = re.compile(r"\bsleep\s+(infinity|\d+(?:\.\d+)?)([smhd]?)\b|\btail\s+-f\s+/dev/null\b")
_FETCH = re.compile(r"(?:^|[\s;&|(])(wget|curl)\s")
_STOP_POD = re.compile(r"runpodctl\s+(?:stop|remove)\s+pods?\b|\bpodStop\b|\bpodTerminate\b|/pods/\S+/stop\b")
_SWALLOWED = re.compile(r"\|\|\s*(?:true|:)\s*$|;\s*true\s*$")
_CHECKED = re.compile(r"^if\s|\|\|\s*(?:\{|exit|return|echo|\()|&&\s*(?:\{|echo)|\bthen\b")


@dataclass(frozen=True, slots=True)
class Line:
    number: int
    text: str


@dataclass(slots=True)
class ScriptFacts:
    errexit: bool = False
    pipefail: bool = False
    trainers: list[Line] = field(default_factory=list)
    unchecked: list[tuple[Line, str]] = field(default_factory=list)  # trainer lines and why the status is lost
    needs_python: bool = False
    failure_sleeps: list[tuple[Line, float]] = field(default_factory=list)  # seconds (inf: forever)
    fetches: list[Line] = field(default_factory=list)
    bad_fetches: list[tuple[Line, str]] = field(default_factory=list)
    stops_pod: bool = False
    stops_pod_on_failure: bool = False

    @property
    def keep_alive_on_failure_s(self) -> float:
        return max((s for _, s in self.failure_sleeps), default=0.0)


def logical_lines(text: str) -> list[Line]:
    """Lines with continuations joined and comments (outside quotes, roughly) dropped."""
    out: list[Line] = []
    pending, start = "", 0
    for n, raw in enumerate(text.splitlines(), 1):
        if n == 1 and raw.startswith("#!"):
            out.append(Line(1, raw))
            continue
        line = re.sub(r"(^|\s)#(?![!{]).*$", "", raw) if "'" not in raw and '"' not in raw else raw
        if not pending:
            start = n
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        joined = (pending + line).strip()
        pending = ""
        if joined and not joined.startswith("#"):
            out.append(Line(start, joined))
    return out


def syntax_error(text: str) -> str | None:
    """``bash -n``'s complaint, or None."""
    with tempfile.NamedTemporaryFile("w", suffix=".sh", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        proc = subprocess.run(["bash", "-n", f.name], capture_output=True, text=True, timeout=30, check=False)
    if proc.returncode == 0:
        return None
    return proc.stderr.replace(f.name, "script").strip().splitlines()[-1] if proc.stderr.strip() else "bash -n failed"


def _sleep_seconds(text: str) -> float:
    found = 0.0
    for m in _SLEEP.finditer(text):
        if m.group(0).startswith("tail") or m.group(1) == "infinity":
            return math.inf
        found = max(found, float(m.group(1)) * _UNITS[m.group(2)])
    if re.search(r"\bwhile\s+(?:true|:)\b", text) and found:
        return math.inf
    return found


def read_script(text: str) -> ScriptFacts:
    lines = logical_lines(text)
    facts = ScriptFacts()
    first = lines[0].text if lines else ""
    facts.errexit = first.startswith("#!") and bool(re.search(r"\s-\w*e", first))
    for i, line in enumerate(lines):
        t = line.text
        facts.errexit |= bool(_ERREXIT.search(t))
        facts.pipefail |= bool(_PIPEFAIL.search(t))
        facts.needs_python |= bool(_PYTHON.search(t)) and not t.startswith("#!")
        in_trap = t.startswith("trap ")
        if _STOP_POD.search(t):
            facts.stops_pod = True
            facts.stops_pod_on_failure |= in_trap or not facts.errexit or "||" in t
        if _TRAINER.search(t) and not in_trap:
            facts.trainers.append(line)
            why = _status_lost(t, lines[i + 1].text if i + 1 < len(lines) else "", facts)
            if why:
                facts.unchecked.append((line, why))
        seconds = _sleep_seconds(t)
        if seconds >= LONG_SLEEP_S and (in_trap or "||" in t or not facts.errexit):
            facts.failure_sleeps.append((line, seconds))
        if _FETCH.search(t):
            facts.fetches.append(line)
            if why := _bad_fetch(t):
                facts.bad_fetches.append((line, why))
    return facts


def _status_lost(text: str, following: str, facts: ScriptFacts) -> str | None:
    if _SWALLOWED.search(text):
        return "its failure is swallowed (`|| true`)"
    if _CHECKED.search(text) or "$?" in following:
        return None
    piped = re.search(r"[^|]\|[^|]", text) is not None
    if piped and not facts.pipefail:
        return "it is piped (into tee?) without `set -o pipefail`: the pipe's status is the last command's"
    if not facts.errexit:
        return "no `set -e`, no `if`, `||` or `$?`: the script carries on after the trainer fails"
    return None


def _bad_fetch(text: str) -> str | None:
    tool = _FETCH.search(text)
    assert tool is not None
    args = text[tool.end() :].split()
    if tool.group(1) == "curl":
        short = [a for a in args if re.fullmatch(r"-[a-zA-Z]+", a)]
        if not any("f" in a for a in short) and not any(a in ("--fail", "--fail-with-body") for a in args):
            return "curl without --fail (-f) saves an HTTP error page as the dataset and exits 0"
    if _SWALLOWED.search(text):
        return "a failed download is swallowed (`|| true`)"
    plain = [a.strip("'\"") for a in args if not a.startswith("-") and a not in ("|", "||", "&&", ">")]
    local = [a for a in plain if a.startswith(("/", "./", "~"))]
    if local and not any("://" in a or "$" in a for a in plain):
        return f"{tool.group(1)} of a local path ({local[-1]}): the pod has no such file (field report 004)"
    return None


def script_text(path: Path) -> str:
    return path.read_text(encoding="utf-8", errors="replace")
