"""Cold, warm and hot latency by design (see harness.load.phases). Thin: the logic lives in harness.load.

    locust -f locustfiles/latency.py --headless --host http://127.0.0.1:8000/v2 --endpoint-id emulator \\
        --idle-timeout 5 --run-dir runs/latency && devai-harness report runs/latency
"""

from harness.load.users import LatencyUser

__all__ = ["LatencyUser"]
