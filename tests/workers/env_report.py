"""A worker that reports what it was given (made by us): which keys are in its environment."""

import os

import runpod


def handler(job):
    return {
        "user_key_present": "RUNPOD_API_KEY" in os.environ,
        "worker_key": os.environ.get("RUNPOD_AI_API_KEY", ""),
        "pod_id": os.environ.get("RUNPOD_POD_ID", ""),
    }


runpod.serverless.start({"handler": handler})
