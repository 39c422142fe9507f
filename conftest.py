"""Root conftest: hypothesis profiles. The harness pytest plugin is loaded through its pytest11
entry point once the package is installed (pip install -e .)."""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

settings.register_profile("dev", max_examples=200, deadline=None)
settings.register_profile(
    "ci",
    max_examples=200,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev"))


def pytest_xdist_auto_num_workers(config: object) -> int:
    """``-n auto``: at least 4 workers. Most slow tests wait on timers (cold starts, timed locust runs), so on a
    2-core machine 4 workers overlap the waits: 135 s -> 103 s for the offline suite here (6 workers: 108 s)."""
    return max(4, os.cpu_count() or 1)
