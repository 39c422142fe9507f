"""Closed-loop concurrency sweep (--steps 1,2,4,8 users, --step-seconds each) until the SLO breaks;
`devai-harness report RUN_DIR --slo-p95 S` finds the max sustainable step and the goodput.
For open-loop arrivals use locustfiles/arrivals.py."""

from harness.load.users import CapacityUser, StepShape

__all__ = ["CapacityUser", "StepShape"]
