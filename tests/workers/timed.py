"""A worker that reports its own timings (made by us, for benchmarks/real_workers.py): monotonic marks printed at
start, after `import runpod`, and before start(); the handler returns when it was entered and when it returned
(time.monotonic is one clock for every process on a Linux machine, the emulator's included)."""

import os
import time

print(f"devai-mark start {time.monotonic()}", flush=True)


def handler(job):
    entered = time.monotonic()
    if job["input"].get("sleep_s"):
        time.sleep(job["input"]["sleep_s"])
    return {"entered": entered, "returned": time.monotonic()}


if __name__ == "__main__":
    import runpod

    print(f"devai-mark runpod {time.monotonic()}", flush=True)
    concurrency = int(os.environ.get("TIMED_CONCURRENCY", "1"))
    runpod.serverless.start({"handler": handler, "concurrency_modifier": lambda _current: concurrency})
