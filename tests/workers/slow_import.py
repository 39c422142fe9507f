"""A worker whose import takes 2 s (made by us): a heavy module-level load."""

import time

import runpod

time.sleep(2.0)  # stands in for loading a model at import time


def handler(job):
    return {"ok": True}


runpod.serverless.start({"handler": handler})
