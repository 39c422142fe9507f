"""Closed-loop concurrency sweep: each step runs N users back to back until the SLO breaks;
`devai-harness report RUN_DIR --slo-p95 S` finds the max sustainable step and the goodput.
For open-loop arrivals use locustfiles/arrivals.py.

    locust -f locustfiles/capacity.py --headless --host http://127.0.0.1:8000/v2 --endpoint-id emulator \\
        --steps 1,2,4,8 --step-seconds 30 --run-dir runs/capacity && devai-harness report runs/capacity

Flags (locust's own --help cannot list them: it is printed before a locustfile loads):
  --host URL            the RunPod API base, e.g. https://api.runpod.ai/v2 (or the emulator's .../v2)
  --endpoint-id ID      the endpoint (default $RUNPOD_ENDPOINT_ID, else "emulator")
  --api-key-env NAME    the environment variable holding the API key (default RUNPOD_API_KEY)
  --steps N,N,...       users per step (default 1,2,4,8)
  --step-seconds S      seconds per step (default 10)
  --job-timeout S       deadline per job (default 300)
  --run-dir DIR         where the records go (default runs/latest)
A user whose requests all fail backs off and stops the run, saying why.
"""

from harness.load.users import CapacityUser, StepShape

__all__ = ["CapacityUser", "StepShape"]
