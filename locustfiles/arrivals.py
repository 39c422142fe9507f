"""Open-loop arrivals: requests arrive at each step's rate whatever the endpoint does (each in its own
greenlet: no coordinated omission), Poisson or gamma.

    locust -f locustfiles/arrivals.py --headless --host http://127.0.0.1:8000/v2 --endpoint-id emulator \\
        --steps 0.5,1,2 --step-seconds 30 --arrivals gamma --burstiness 0.5 --run-dir runs/arrivals

Flags (locust's own --help cannot list them: it is printed before a locustfile loads):
  --host URL            the RunPod API base, e.g. https://api.runpod.ai/v2 (or the emulator's .../v2)
  --endpoint-id ID      the endpoint (default $RUNPOD_ENDPOINT_ID, else "emulator")
  --api-key-env NAME    the environment variable holding the API key (default RUNPOD_API_KEY)
  --steps R,R,...       arrivals per second, per step (default 1,2,4,8)
  --step-seconds S      seconds per step (default 10)
  --arrivals KIND       poisson (default) or gamma
  --burstiness K        gamma shape: below 1 is burstier (default 1)
  --job-timeout S       deadline per job (default 300)
  --run-dir DIR         where the records go (default runs/latest)
"""

from harness.load.users import ArrivalUser

__all__ = ["ArrivalUser"]
