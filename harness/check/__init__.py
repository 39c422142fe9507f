"""The main job, ``devai-harness check``: the conformance suite, the output shapes, latency and the engine's
semantics on one target, one report. It sits above the rooms it draws on (conformance, load, preflight), which
never import each other."""

from __future__ import annotations

from harness.check.results import CheckRun, StageResult
from harness.check.run import run_check

__all__ = ["CheckRun", "StageResult", "run_check"]
