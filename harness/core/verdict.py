"""The one verdict vocabulary of every command and report (no I/O).

* PASS — checked, and it held;
* FAIL — a finding: the endpoint (or the worker, the dataset...) fell short;
* ERROR — the check could not run for a reason of ours or the run's (a target that is down, a full disk, a sandbox
  that cannot start): never the endpoint's verdict;
* NOT CHECKED — nothing was checked (no tests ran, all skipped, no suite): never a pass;
* N/A — does not apply to this target, with the reason.
"""

from __future__ import annotations

import enum

__all__ = ["Verdict"]


class Verdict(enum.StrEnum):
    PASS = "PASS"
    FAIL = "FAIL"
    ERROR = "ERROR"
    NOT_CHECKED = "NOT CHECKED"
    NA = "N/A"
