"""A worker that asks for a fresh worker after every job (made by us): refresh_worker."""

import os

import runpod


def handler(job):
    return {"pid": os.getpid()}


runpod.serverless.start({"handler": handler, "refresh_worker": True})
