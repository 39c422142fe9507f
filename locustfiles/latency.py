"""Cold, warm and hot latency by design (harness.load.phases): one user waits past the idle timeout before a
cold request, pauses inside the idle window before warm ones, and sends hot ones back to back; /health and
delayTime confirm each label. Thin: the logic lives in harness.load.

    locust -f locustfiles/latency.py --headless --host http://127.0.0.1:8000/v2 --endpoint-id emulator \\
        --idle-timeout 5 --run-dir runs/latency && devai-harness report runs/latency --idle-timeout 5

Flags (locust's own --help cannot list them: it is printed before a locustfile loads):
  --host URL            the RunPod API base, e.g. https://api.runpod.ai/v2 (or the emulator's .../v2)
  --endpoint-id ID      the endpoint (default $RUNPOD_ENDPOINT_ID, else "emulator")
  --api-key-env NAME    the environment variable holding the API key (default RUNPOD_API_KEY)
  --idle-timeout S      the endpoint's idle timeout in seconds (default 5)
  --rounds N            cold/hot/warm rounds (default 2)
  --hot-gap S           the most seconds between two "hot" requests (default 0.5)
  --job-timeout S       deadline per job (default 300)
  --run-dir DIR         where the records go (default runs/latest)
"""

from harness.load.users import LatencyUser

__all__ = ["LatencyUser"]
