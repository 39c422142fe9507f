"""A worker that dies while it is imported, before runpod.serverless.start (made by us; field report 002)."""

import runpod

raise RuntimeError("model load failed at import time: no CUDA device")


def handler(job):  # never reached
    return job["input"]


runpod.serverless.start({"handler": handler})
