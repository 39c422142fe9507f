"""A worker that reports progress while it runs (made by us): runpod.serverless.progress_update."""

import time

import runpod


def handler(job):
    for step in ("loading", "thinking"):
        runpod.serverless.progress_update(job, step)
        time.sleep(0.6)
    return {"done": True}


runpod.serverless.start({"handler": handler})
