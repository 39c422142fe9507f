"""A worker that dies after two jobs (made by us): the process exits in the middle of its third job."""

import os

import runpod

COUNT = {"jobs": 0}


def handler(job):
    COUNT["jobs"] += 1
    if COUNT["jobs"] >= 3:
        os._exit(3)
    return {"job": COUNT["jobs"]}


runpod.serverless.start({"handler": handler})
