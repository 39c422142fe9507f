"""A worker that hangs while it is imported (made by us): waiting on something that never comes."""

import threading

import runpod

threading.Event().wait()  # never set


def handler(job):
    return {"ok": True}


runpod.serverless.start({"handler": handler})
