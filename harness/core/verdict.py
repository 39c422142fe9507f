"""The one verdict vocabulary of every command and report (no I/O).

* PASS — checked, and it held;
* FAIL — a finding: the endpoint (or the worker, the dataset...) fell short;
* ERROR — the check could not run for a reason of ours or the run's (a target that is down, a full disk, a sandbox
  that cannot start): never the endpoint's verdict;
* NOT CHECKED — nothing was checked (no tests ran, all skipped, no suite): never a pass;
* N/A — does not apply to this target, with the reason.

:func:`combine` is the one rule for many checks: any FAIL fails; else any ERROR is an error; else any check that
could not run makes the whole NOT CHECKED (a partly checked run is not a pass); else, when something passed, PASS
— N/A checks count for nothing, so all N/A (nothing ran) is NOT CHECKED too. The pre-flight commands keep words
of their own for these verdicts (worker-check: OK / NOT READY, train-check: READY / NOT READY), by :data:`WORDS`.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable

__all__ = ["WORDS", "Verdict", "combine"]


class Verdict(enum.StrEnum):
    PASS = "PASS"
    FAIL = "FAIL"
    ERROR = "ERROR"
    NOT_CHECKED = "NOT CHECKED"
    NA = "N/A"


def combine(verdicts: Iterable[Verdict]) -> Verdict:
    """The verdict of many checks, by the rule above."""
    seen = set(verdicts)
    for worst in (Verdict.FAIL, Verdict.ERROR, Verdict.NOT_CHECKED):
        if worst in seen:
            return worst
    return Verdict.PASS if Verdict.PASS in seen else Verdict.NOT_CHECKED


# A command's own word for a combined verdict (the rule stays combine's).
WORDS: dict[str, dict[Verdict, str]] = {
    "worker-check": {Verdict.PASS: "OK", Verdict.FAIL: "NOT READY"},
    "train-check": {Verdict.PASS: "READY", Verdict.FAIL: "NOT READY"},
}
